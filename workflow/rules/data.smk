# Data: fetch (download, verify and unpack an archive, take a local copy, or generate the demo data), then build the
# label index of each data set.


rule fetch:
    output:
        str(fetch_marker(profile_of(config, PROFILE), "{asset}")),
    log:
        str(log_path(PROFILE, "fetch", "{asset}")),
    params:
        profile=PROFILE,
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro fetch --config $DRMOE_PLANNED_CONFIG --profile {params.profile} --asset {wildcards.asset} "
        "--no-progress 2>&1 | tee {log}"


rule prepare:
    input:
        fetched_assets,
    output:
        train=str(index_path("{profile}", "{dataset}", "train")),
        test=str(index_path("{profile}", "{dataset}", "test")),
    log:
        str(log_path("{profile}", "prepare", "{dataset}")),
    params:
        dataset=dataset_signature,
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro prepare --config $DRMOE_PLANNED_CONFIG --profile {wildcards.profile} "
        "--dataset {wildcards.dataset} 2>&1 | tee {log}"
