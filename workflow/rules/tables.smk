# Every table, for the selected profile: the paper's Tables 1-6 beside its claims, recipes.csv, ablations.csv.


rule table:
    input:
        lambda w: run_files(table_runs(config, PROFILE, table_name(w)), PREDICTIONS if table_name(w) == "6" else METRICS),
    output:
        "results/{stem}.csv",
    wildcard_constraints:
        stem="table[1-6]|recipes|ablations",
    log:
        str(log_path(PROFILE, "table", "{stem}")),
    params:
        # Switching profiles rewrites the tables even though no input file changed.
        profile=PROFILE,
        reference=REFERENCE_CONFIG,
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro table --config $DRMOE_PLANNED_CONFIG --profile {params.profile} "
        "--reference-config {params.reference} --table {wildcards.stem} --out {output} 2>&1 | tee {log}"
