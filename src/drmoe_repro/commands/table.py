"""`table`: write one of the tables: results/table1.csv ... table6.csv (the paper's tables measured beside its
claims), results/recipes.csv (baselines under their own recipes), results/ablations.csv (this suite's ablations)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from drmoe_repro.commands.common import add_config_arguments, add_reference_argument, config_and_profile
from drmoe_repro.config import load_config
from drmoe_repro.layout import METRIC_TABLES, TABLES, table_path
from drmoe_repro.paper.ablations import build_ablation_table
from drmoe_repro.paper.per_class import build_per_class_table
from drmoe_repro.paper.recipe_table import build_recipe_table
from drmoe_repro.paper.tables import build_metric_table, write_table

HELP = ("Write one table from the evaluated runs of the selected profile: the paper's Tables 1-6 beside its claimed "
        "values, recipes (each baseline under its own recipe) or ablations (this suite's).")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    add_reference_argument(parser)
    parser.add_argument("--table", required=True, choices=list(TABLES), type=lambda name: name.removeprefix("table"),
                        help="1-5 (or table1-table5): the paper's metric tables; 6: its per-class Table 6; recipes; "
                             "ablations")
    parser.add_argument("--out", type=Path, default=None, help="CSV file to write (default: results/<table>.csv)")


def build_table(config: dict, profile: str, name: str, reference: dict) -> pd.DataFrame:
    if name == "recipes":
        return build_recipe_table(config, profile, reference)
    if name == "ablations":
        return build_ablation_table(config, profile, reference)
    if int(name) in METRIC_TABLES:
        return build_metric_table(config, profile, int(name), reference)
    return build_per_class_table(config, profile, reference)


def run(args: argparse.Namespace) -> int:
    config, profile = config_and_profile(args)
    df = build_table(config, profile, args.table, load_config(args.reference_config))
    out = args.out or table_path(args.table)
    write_table(df, out)
    shown = [c for c in ("system", "class", "base", "variant", "n_seeds", "mAP", "OF1", "CF1", "status") if c in df]
    print(f"{out}:")
    print(df[shown].to_string(index=False))
    return 0
