"""`plan`: what a Snakemake target will cost before anything runs (trainings, epochs, images, disk, device-hours)."""

from __future__ import annotations

import argparse
from pathlib import Path

from drmoe_repro.commands.common import add_config_arguments, config_and_profile
from drmoe_repro.config import assets_for_runs, profile_of
from drmoe_repro.layout import results_dir
from drmoe_repro.plan import (bench_throughputs, free_space_line, run_costs, runs_for_targets, summary_lines,
                              time_lines)

HELP = ("Print what a target (default: everything) will cost before it runs: trainings, epochs, images, disk, and "
        "estimated GPU-hours from a throughput you give or a benchmark CSV.")
DEFAULT_BENCH_CSV = Path("bench/results/train_throughput.csv")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help="Snakemake targets, e.g. results/table2.csv or reports/paper_tables.md (default: the "
                             "default target: every table and the report)")
    parser.add_argument("--images-per-s", type=float, default=None, metavar="N",
                        help="training throughput of one run on one device, for the time estimate")
    parser.add_argument("--bench-csv", type=Path, default=None, metavar="CSV",
                        help="a `python bench/train_throughput.py --out CSV` table: per-model throughput for the "
                             f"estimate (default: {DEFAULT_BENCH_CSV} where it exists)")
    parser.epilog = "example: drmoe-repro plan --profile paper results/table2.csv --images-per-s 400"


def run(args: argparse.Namespace) -> int:
    config, profile = config_and_profile(args)
    runs = runs_for_targets(config, profile, args.targets)
    costs = run_costs(config, profile, runs)
    print(f"Plan for {' '.join(args.targets) or 'the default target (every table and the report)'} on the "
          f"{profile} profile:")
    prof = profile_of(config, profile)
    specs = prof.get("assets", {})
    assets = {name: specs.get(name) for name in assets_for_runs(config, profile, runs)}
    for line in summary_lines(costs, profile, assets):
        print(line)
    data_dir = Path(prof["data_dir"])
    print(free_space_line({"the runs": results_dir(profile), "the data": data_dir}))
    bench_csv = args.bench_csv or (DEFAULT_BENCH_CSV if DEFAULT_BENCH_CSV.is_file() else None)
    bench = bench_throughputs(bench_csv) if bench_csv else {}
    unit = "GPU" if prof["device"] == "cuda" else "CPU"
    for line in time_lines(costs, args.images_per_s, bench, unit):
        print(line)
    print("Runs already trained are not subtracted: `snakemake -n` lists what is left to do.")
    return 0
