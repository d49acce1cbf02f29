"""`table`: write results/tableN.csv, the paper's table N measured beside the paper's claims."""

from __future__ import annotations

import argparse
from pathlib import Path

from drmoe_repro.commands.common import add_config_arguments, add_reference_argument, config_and_profile
from drmoe_repro.config import load_config
from drmoe_repro.paper.tables import METRIC_TABLES, build_metric_table, write_table

HELP = "Assemble results/tableN.csv from the evaluated runs of the selected profile and the paper's claimed values."


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    add_reference_argument(parser)
    parser.add_argument("--table", type=int, required=True, choices=METRIC_TABLES, help="the paper's table number")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write, e.g. results/table1.csv")


def run(args: argparse.Namespace) -> int:
    config, profile = config_and_profile(args)
    df = build_metric_table(config, profile, args.table, load_config(args.reference_config))
    write_table(df, args.out)
    print(df[["system", "n_seeds", "mAP", "OF1", "CF1", "paper_mAP", "status"]].to_string(index=False))
    return 0
