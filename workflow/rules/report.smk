# The figures, the analyses, the claims audit and reports/paper_tables.md, for the selected profile. The report
# renders the tables (it computes none) and reads the runs for the figures and analyses. gates.npz is not named: the
# evaluate job that writes predictions.npz writes it beside them, so the predictions stand for it.

# key -> path of everything the report rule writes (figures, report, headline/analysis JSON).
REPORT_OUTPUTS = {key: str(path) for key, path in report_outputs(config, PROFILE).items()}
REPORT_RUNS = report_runs(config, PROFILE)


rule report:
    input:
        tables=all_tables(),
        metrics=run_files(REPORT_RUNS, METRICS),
        predictions=run_files(REPORT_RUNS, PREDICTIONS),
        conventions=run_files(REPORT_RUNS, CONVENTIONS),
        runs=run_files(REPORT_RUNS, RUN_INFO),
        summaries=run_files(REPORT_RUNS, TRAIN_SUMMARY),
        train_index=[str(index_path(PROFILE, d, "train")) for d in sorted(profile_of(config, PROFILE)["datasets"])],
        paper=[
            "src/drmoe_repro/paper/claims.yaml",
            "src/drmoe_repro/paper/audit.yaml",
            "src/drmoe_repro/paper/ambiguities.yaml",
            "src/drmoe_repro/paper/provenance.yaml",
        ],
    output:
        **REPORT_OUTPUTS,
    log:
        str(log_path(PROFILE, "report", "report")),
    params:
        profile=PROFILE,
        reference=REFERENCE_CONFIG,
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro report --config $DRMOE_PLANNED_CONFIG --profile {params.profile} "
        "--reference-config {params.reference} 2>&1 | tee {log}"
