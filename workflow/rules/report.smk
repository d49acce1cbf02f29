# Table 6, the figures, the analyses, the claims audit and reports/paper_tables.md, for the selected profile.
# One command (`drmoe-repro report`) writes them all; this rule only names its inputs and outputs.
# Inputs: the files of every run Tables 1-6 and the recipe comparison read. gates.npz is not named: the evaluate
# job that writes predictions.npz writes it beside them, so the predictions stand for it.

from drmoe_repro.layout import index_path
from drmoe_repro.paper.report import outputs as report_outputs_of

# key -> path of everything the report rule writes (table6.csv, recipes.csv, figures, report, headline/analysis
# JSON).
REPORT_OUTPUTS = {key: str(path) for key, path in report_outputs_of(config, PROFILE).items()}


rule report:
    input:
        tables=all_tables(),
        metrics=report_run_files("metrics.json"),
        predictions=report_run_files("predictions.npz"),
        conventions=report_run_files("conventions.csv"),
        runs=report_run_files("run.json"),
        train_index=[str(index_path(PROFILE, d, "train")) for d in sorted(profile_of(config, PROFILE)["datasets"])],
        paper=[
            "src/drmoe_repro/paper/claims.yaml",
            "src/drmoe_repro/paper/audit.yaml",
            "src/drmoe_repro/paper/ambiguities.yaml",
        ],
    output:
        **REPORT_OUTPUTS,
    log:
        f"results/{PROFILE}/logs/report.log",
    params:
        profile=PROFILE,
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro report --config {PLANNED_CONFIG} --profile {PROFILE} "
        "--reference-config {REFERENCE_CONFIG} 2>&1 | tee {log}"
