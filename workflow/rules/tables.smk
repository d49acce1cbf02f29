# The paper's tables, measured beside its claims, for the selected profile.


rule table:
    input:
        lambda w: run_files(int(w.n), "metrics.json"),
    output:
        "results/table{n}.csv",
    wildcard_constraints:
        n="[1-5]",
    log:
        f"results/{PROFILE}/logs/table{{n}}.log",
    params:
        # Switching profiles rewrites the tables even though no input file changed.
        profile=PROFILE,
    conda:
        ENV
    shell:
        "PYTHONPATH=src python -m drmoe_repro table --config {PLANNED_CONFIG} --profile {PROFILE} "
        "--reference-config {REFERENCE_CONFIG} --table {wildcards.n} --out {output} 2>&1 | tee {log}"
