# Train and evaluate one (data set, system, seed) run into DESIGN.md's run directory.


rule train:
    input:
        index="results/{profile}/index/{dataset}/train.npz",
        assets=training_assets,
    output:
        model="results/{profile}/runs/{dataset}/{system}/seed{seed}/model.pt",
        summary="results/{profile}/runs/{dataset}/{system}/seed{seed}/train.json",
    log:
        "results/{profile}/logs/train/{dataset}_{system}_seed{seed}.log",
    params:
        run=run_signature,
    threads: lambda w: profile_of(config, w.profile)["torch_threads"]
    resources:
        gpu=gpus,
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro train --config {PLANNED_CONFIG} --profile {wildcards.profile} "
        "--dataset {wildcards.dataset} --system {wildcards.system} --seed {wildcards.seed} --no-progress 2>&1 | tee {log}"


rule evaluate:
    input:
        model="results/{profile}/runs/{dataset}/{system}/seed{seed}/model.pt",
        summary="results/{profile}/runs/{dataset}/{system}/seed{seed}/train.json",
        train_index="results/{profile}/index/{dataset}/train.npz",
        test_index="results/{profile}/index/{dataset}/test.npz",
    output:
        predictions="results/{profile}/runs/{dataset}/{system}/seed{seed}/predictions.npz",
        metrics="results/{profile}/runs/{dataset}/{system}/seed{seed}/metrics.json",
        conventions="results/{profile}/runs/{dataset}/{system}/seed{seed}/conventions.csv",
        run="results/{profile}/runs/{dataset}/{system}/seed{seed}/run.json",
    log:
        "results/{profile}/logs/evaluate/{dataset}_{system}_seed{seed}.log",
    threads: lambda w: profile_of(config, w.profile)["torch_threads"]
    resources:
        gpu=evaluation_gpus,
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro evaluate --config {PLANNED_CONFIG} --profile {wildcards.profile} "
        "--dataset {wildcards.dataset} --system {wildcards.system} --seed {wildcards.seed} --no-progress 2>&1 | tee {log}"
