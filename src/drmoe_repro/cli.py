"""`drmoe-repro` / `python -m drmoe_repro`: one subcommand per pipeline step.

fetch -> prepare -> train -> evaluate -> table -> report; `metrics` re-scores any predictions.npz, `plan` says what a
target will cost before it runs. Snakemake rules and DVC
stages call exactly these commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable

# Subcommand -> (module in drmoe_repro.commands, one-line summary for `drmoe-repro --help`), in pipeline order.
# The summaries live here so that the top-level help, and every step, imports only the module of the step it runs:
# a table job then never imports torch, and a training job never imports matplotlib (each job is a new process).
COMMANDS = {
    "fetch": ("fetch", "download, verify and unpack one data asset, or generate the demo data"),
    "prepare": ("prepare", "build a data set's label index from its annotation files"),
    "train": ("train", "train one (data set, system, seed) run"),
    "evaluate": ("evaluate", "score a trained run on its test split"),
    "table": ("table", "write one table (1-6, recipes, ablations) from the evaluated runs"),
    "report": ("report", "write reports/paper_tables.md and the figures from the tables and runs"),
    "metrics": ("metrics", "re-score a predictions.npz under chosen metric conventions"),
    "plan": ("plan", "print what a target will cost before it runs"),
    "dvc": ("dvc", "rewrite the generated run list of dvc.yaml from the config"),
}


def build_parser(configured: Iterable[str] = tuple(COMMANDS)) -> argparse.ArgumentParser:
    """The CLI's parser; only the subcommands in `configured` import their module and get their options."""
    parser = argparse.ArgumentParser(
        prog="drmoe-repro",
        description="Reproducibility suite for DR-MoE (Dynamic Routing Mixture of Experts) multi-label "
        "classification. Each subcommand is one step of the pipeline that Snakemake (`snakemake --cores all`) and "
        "DVC (`dvc repro`) run for you; run one by hand to redo or inspect a single step.",
        epilog="`drmoe-repro SUBCOMMAND --help` explains each step's options.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    for name, (module_name, summary) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=summary, description=summary)
        if name in configured:
            module = importlib.import_module(f"drmoe_repro.commands.{module_name}")
            sub.description = module.HELP
            module.configure_parser(sub)
            sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The top-level parser has no options but --help, so a subcommand, if any, is the first argument.
    args = build_parser(argv[:1]).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError, OSError, RuntimeError) as exc:
        # Expected failures (bad config, bad data file, failed download) end with one readable line, no traceback.
        print(f"drmoe-repro {args.command}: error: {exc}", file=sys.stderr)
        return 2
