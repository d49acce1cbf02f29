# Shared names and input functions. All logic lives in the package; these only ask it what to build.
import json

from drmoe_repro.config import index_signature, profile_of, resolve_run, signature_text
from drmoe_repro.layout import dataset_assets, fetch_marker, model_assets, run_dir
from drmoe_repro.paper.report import report_runs
from drmoe_repro.paper.tables import METRIC_TABLES, required_runs

PROFILE = config["profile"]
ENV = "../../envs/drmoe.yaml"
# Every job calls the package's CLI as `PYTHONPATH=src python -m drmoe_repro STEP --config {PLANNED_CONFIG} ...`:
# src/ on the path serves the project venv and `--sdm conda` alike. The planned config's path is named in each
# shell command, not in `params`, so that a config change reruns only the jobs whose own inputs or signature change.


def run_files(table, name):
    """The `name` file of every run that table `table` reads, on the selected profile."""
    return [str(run_dir(PROFILE, d, s, k) / name) for d, s, k in required_runs(config, PROFILE, table)]


def report_run_files(name):
    """The `name` file of every run the report reads (Tables 1-6, the recipe comparison), on the selected profile."""
    return [str(run_dir(PROFILE, d, s, k) / name) for d, s, k in report_runs(config, PROFILE)]


def all_tables():
    return [f"results/table{n}.csv" for n in METRIC_TABLES]


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
    """Fetch markers the data set needs (none for the generated demo data)."""
    prof = profile_of(config, wildcards.profile)
    return [str(fetch_marker(prof, asset)) for asset in sorted(set(dataset_assets(prof, wildcards.dataset).values()))]
