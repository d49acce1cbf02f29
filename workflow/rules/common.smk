# Shared names and input functions. All logic lives in the package; these only ask it what to build.
import json

from drmoe_repro.config import profile_of, resolve_run, run_dir
from drmoe_repro.data.prepare import fetched_marker
from drmoe_repro.paper.report import report_runs
from drmoe_repro.paper.tables import METRIC_TABLES, required_runs

PROFILE = config["profile"]
CONFIG_FILE = "workflow/config.yaml"
ENV = "../../envs/drmoe.yaml"
# Every job calls the package's CLI as `PYTHONPATH=src python -m drmoe_repro STEP`: src/ on the path serves the
# project venv and `--sdm conda` alike.


def cli_args(profile):
    return f"--config {CONFIG_FILE} --profile {profile}"


def run_files(table, name):
    """The `name` file of every run that table `table` reads, on the selected profile."""
    return [str(run_dir(PROFILE, d, s, k) / name) for d, s, k in required_runs(config, PROFILE, table)]


def report_run_files(name):
    """The `name` file of every run the report reads (Tables 1-6, the recipe comparison), on the selected profile."""
    return [str(run_dir(PROFILE, d, s, k) / name) for d, s, k in report_runs(config, PROFILE)]


def all_tables():
    return [f"results/table{n}.csv" for n in METRIC_TABLES]


def run_signature(wildcards):
    """The resolved run config: Snakemake reruns a run when any value that reaches it changes."""
    cfg = resolve_run(config, wildcards.profile, wildcards.dataset, wildcards.system, int(wildcards.seed))
    return json.dumps(cfg, sort_keys=True)


def dataset_signature(wildcards):
    return json.dumps(profile_of(config, wildcards.profile)["datasets"][wildcards.dataset], sort_keys=True)


def model_assets(wildcards):
    """Fetch markers of what every training run needs (ImageNet weights, GloVe); none on the demo profile."""
    prof = profile_of(config, wildcards.profile)
    return [str(fetched_marker(prof, asset)) for asset in prof.get("model_assets", [])]


def gpus(wildcards):
    """GPUs a training job asks for; the job claims which ones itself (engine/devices.py)."""
    return profile_of(config, wildcards.profile)["gpus_per_run"]


def evaluation_gpus(wildcards):
    """Evaluation is one process: one GPU on a GPU profile."""
    return min(gpus(wildcards), 1)


def fetched_assets(wildcards):
    """Fetch markers the data set needs (none for the generated demo data)."""
    prof = profile_of(config, wildcards.profile)
    spec = prof["datasets"][wildcards.dataset]
    if spec["source"] != "assets":
        return []
    return [str(fetched_marker(prof, asset)) for asset in spec.get("assets", [])]
