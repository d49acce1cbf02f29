# Data: fetch archives (paper profile), then build the label index of each data set.


rule fetch:
    output:
        str(Path(profile_of(config, PROFILE)["data_dir"]) / "{asset}.fetched.json"),
    log:
        f"results/{PROFILE}/logs/fetch/{{asset}}.log",
    params:
        args=cli_args(PROFILE),
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro fetch {params.args} --asset {wildcards.asset} 2>&1 | tee {log}"


rule prepare:
    input:
        fetched_assets,
    output:
        train="results/{profile}/index/{dataset}/train.npz",
        test="results/{profile}/index/{dataset}/test.npz",
    log:
        "results/{profile}/logs/prepare/{dataset}.log",
    params:
        args=lambda w: cli_args(w.profile),
        dataset=dataset_signature,
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro prepare {params.args} --dataset {wildcards.dataset} 2>&1 | tee {log}"
