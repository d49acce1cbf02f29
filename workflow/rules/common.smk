# Shared names and input functions. All logic lives in the package; these only ask its torch-free config and layout
# modules what to build (parsing the workflow, as every `-n` and every cluster job does, stays light).
import json

from drmoe_repro.config import index_signature, profile_of, resolve_run, signature_text
from drmoe_repro.layout import (
    CONVENTIONS,
    METRICS,
    MODEL,
    PREDICTIONS,
    RUN_INFO,
    TABLES,
    TRAIN_SUMMARY,
    dataset_assets,
    fetch_marker,
    index_path,
    log_path,
    model_assets,
    report_outputs,
    report_runs,
    run_file,
    table_runs,
)

PROFILE = config["profile"]
ENV = "../../envs/drmoe.yaml"
# Every job calls the package's CLI as `PYTHONPATH=src python -m drmoe_repro STEP --config $DRMOE_PLANNED_CONFIG ...`:
# src/ on the path serves the project venv and `--sdm conda` alike. The planned config's path reaches the jobs
# through the environment (the Snakefile sets it, and every cluster job re-parses the Snakefile), not `params`:
# its name changes with any config change, and as a param it would rerun every job, not only those whose own
# inputs or signature change.
RUN = "results/{profile}/runs/{dataset}/{system}/seed{seed}/"


def run_files(runs, name):
    """The `name` file of each (data set, system, seed) run, on the selected profile."""
    return [str(run_file(PROFILE, d, s, k, name)) for d, s, k in runs]


def all_tables():
    return [str(path) for path in TABLES.values()]


def table_name(wildcards):
    """The `--table` name of results/{stem}.csv: table1 -> 1, recipes -> recipes."""
    return wildcards.stem.removeprefix("table")


def resolved_run(wildcards):
    return resolve_run(config, wildcards.profile, wildcards.dataset, wildcards.system, int(wildcards.seed))


def run_signature(wildcards):
    """What changes a run's result: Snakemake reruns a run when any of it changes (paths and count checks do not)."""
    return signature_text(resolved_run(wildcards))


def dataset_signature(wildcards):
    """What changes a data set's label index: prepare (and so every training on it) reruns only when this does."""
    return json.dumps(index_signature(profile_of(config, wildcards.profile), wildcards.dataset), sort_keys=True)


def training_assets(wildcards):
    """Fetch markers of what the run's model settings ask for (ImageNet weights, GloVe); none for pretrained: false."""
    prof = profile_of(config, wildcards.profile)
    return [str(fetch_marker(prof, asset)) for asset in model_assets(resolved_run(wildcards)["model"]).values()]


def gpus(wildcards):
    """GPUs a training job asks for; the job claims which ones itself (engine/devices.py)."""
    return profile_of(config, wildcards.profile)["gpus_per_run"]


def evaluation_gpus(wildcards):
    """Evaluation is one process: one GPU on a GPU profile."""
    return min(gpus(wildcards), 1)


def fetched_assets(wildcards):
    """Fetch markers the data set needs (the generated demo data is an asset too: `demo_<dataset>`)."""
    prof = profile_of(config, wildcards.profile)
    return [str(fetch_marker(prof, asset)) for asset in sorted(set(dataset_assets(prof, wildcards.dataset).values()))]
