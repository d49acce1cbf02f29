# Data: fetch archives (paper profile), then build the label index of each data set.


rule fetch:
    output:
        str(fetch_marker(profile_of(config, PROFILE), "{asset}")),
    log:
        f"results/{PROFILE}/logs/fetch/{{asset}}.log",
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro fetch --config {PLANNED_CONFIG} --profile {PROFILE} --asset {wildcards.asset} "
        "--no-progress 2>&1 | tee {log}"


rule prepare:
    input:
        fetched_assets,
    output:
        train="results/{profile}/index/{dataset}/train.npz",
        test="results/{profile}/index/{dataset}/test.npz",
    log:
        "results/{profile}/logs/prepare/{dataset}.log",
    params:
        dataset=dataset_signature,
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro prepare --config {PLANNED_CONFIG} --profile {wildcards.profile} "
        "--dataset {wildcards.dataset} 2>&1 | tee {log}"
