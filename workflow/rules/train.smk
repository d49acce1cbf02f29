# Train and evaluate one (data set, system, seed) run into its run directory (layout.run_dir).


rule train:
    input:
        index=str(index_path("{profile}", "{dataset}", "train")),
        assets=training_assets,
    output:
        model=RUN + MODEL,
        summary=RUN + TRAIN_SUMMARY,
    log:
        str(log_path("{profile}", "train", "{dataset}_{system}_seed{seed}")),
    params:
        run=run_signature,
    threads: lambda w: profile_of(config, w.profile)["torch_threads"]
    resources:
        gpu=gpus,
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro train --config $DRMOE_PLANNED_CONFIG --profile {wildcards.profile} "
        "--dataset {wildcards.dataset} --system {wildcards.system} --seed {wildcards.seed} --no-progress 2>&1 | tee {log}"


rule evaluate:
    input:
        model=RUN + MODEL,
        summary=RUN + TRAIN_SUMMARY,
        train_index=str(index_path("{profile}", "{dataset}", "train")),
        test_index=str(index_path("{profile}", "{dataset}", "test")),
    output:
        predictions=RUN + PREDICTIONS,
        metrics=RUN + METRICS,
        conventions=RUN + CONVENTIONS,
        run=RUN + RUN_INFO,
    log:
        str(log_path("{profile}", "evaluate", "{dataset}_{system}_seed{seed}")),
    threads: lambda w: profile_of(config, w.profile)["torch_threads"]
    resources:
        gpu=evaluation_gpus,
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro evaluate --config $DRMOE_PLANNED_CONFIG --profile {wildcards.profile} "
        "--dataset {wildcards.dataset} --system {wildcards.system} --seed {wildcards.seed} --no-progress 2>&1 | tee {log}"
