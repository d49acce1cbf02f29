# drmoe-repro pipeline: fetch -> prepare -> train -> evaluate -> tables -> report.
# Thin by design: every step is one command of the package (`python -m drmoe_repro STEP`); this file only wires
# them. Select a profile with `--config profile=paper` after the targets, change anything else with
# `--configfile mine.yaml` (deep-merged over workflow/config.yaml); the demo profile is the default.
import os
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


configfile: "workflow/config.yaml"


# The workflow imports the package (its torch-free config and layout modules) to validate the config and to ask
# which runs a table needs.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from drmoe_repro.config import prepare_planned_config, write_planned_config

# Typed (nested --config values arrive as strings) and validated before anything is planned.
prepare_planned_config(config, source="workflow/config.yaml with the --configfile/--config given")
# Every job reads exactly the config planned with here, from a file named by its content (workflow/rules/common.smk).
os.environ["DRMOE_PLANNED_CONFIG"] = str(write_planned_config(config))


# Passed on to cluster jobs with the rest of the environment they need.
envvars:
    "DRMOE_PLANNED_CONFIG",


# The profiles as shipped: a run whose settings differ from its profile here is marked as deviating.
REFERENCE_CONFIG = "workflow/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/report.smk"


# Downloads, preparation, tables and the report run where Snakemake was started (not as cluster jobs).
localrules:
    all,
    fetch,
    prepare,
    table,
    report,


rule all:
    default_target: True
    input:
        all_tables(),
        sorted(REPORT_OUTPUTS.values()),
