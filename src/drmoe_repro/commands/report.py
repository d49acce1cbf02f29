"""`report`: reports/paper_tables.md, the figures under reports/figures/, results/<profile>/headline.json and
analysis.json, from the tables `drmoe-repro table` wrote and the runs of the selected profile."""

from __future__ import annotations

import argparse
from pathlib import Path

from drmoe_repro.commands.common import add_config_arguments, add_reference_argument, config_and_profile
from drmoe_repro.config import load_config
from drmoe_repro.paper import analysis
from drmoe_repro.paper.report import write_report

HELP = ("Write reports/paper_tables.md (every table beside the paper's, the analyses, the claims audit and the "
        "ambiguities), the figures under reports/figures/, and results/<profile>/headline.json and analysis.json, "
        "from the tables (results/*.csv) and whatever runs of the selected profile exist; missing runs are shown as "
        "missing.")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    add_reference_argument(parser)
    parser.add_argument("--bootstrap-resamples", type=int, default=analysis.N_BOOTSTRAP, metavar="N",
                        help="resamples of the paired bootstrap over test images (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    config, profile = config_and_profile(args)
    if args.bootstrap_resamples < 1:
        raise ValueError("--bootstrap-resamples must be at least 1")
    paths = write_report(config, profile, n_resamples=args.bootstrap_resamples,
                         reference=load_config(args.reference_config))
    for key, path in paths.items():
        print(f"{key:>28}: {Path(path)}")
    return 0
