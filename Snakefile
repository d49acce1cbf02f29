# drmoe-repro pipeline: fetch -> prepare -> train -> evaluate -> tables -> report.
# Thin by design: every step is one command of the package (`python -m drmoe_repro STEP`); this file only wires
# them. Select a profile with `--config profile=paper`; the demo profile is the default.
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


configfile: "workflow/config.yaml"


# The workflow imports the package to validate the config and to ask which runs a table needs.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from drmoe_repro.config import load_schema, validate

validate(config, load_schema(Path("workflow/config.yaml")), source="workflow/config.yaml (with --config overrides)")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_tables(),
        sorted(REPORT_OUTPUTS.values()),
