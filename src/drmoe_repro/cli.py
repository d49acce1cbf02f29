"""`drmoe-repro` / `python -m drmoe_repro`: one subcommand per pipeline step.

fetch -> prepare -> train -> evaluate -> table -> report; `metrics` re-scores any predictions.npz, `plan` says what a
target will cost before it runs. Snakemake rules and DVC
stages call exactly these commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand name -> module in drmoe_repro.commands, in pipeline order (the order --help lists them in).
COMMANDS = {
    "fetch": "fetch",
    "prepare": "prepare",
    "train": "train",
    "evaluate": "evaluate",
    "table": "table",
    "report": "report",
    "metrics": "metrics",
    "plan": "plan",
    "dvc": "dvc",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drmoe-repro",
        description="Reproducibility suite for DR-MoE (Dynamic Routing Mixture of Experts) multi-label "
        "classification. Each subcommand is one step of the pipeline that Snakemake (`snakemake --cores all`) and "
        "DVC (`dvc repro`) run for you; run one by hand to redo or inspect a single step.",
        epilog="`drmoe-repro SUBCOMMAND --help` explains each step's options.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"drmoe_repro.commands.{module_name}")
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure_parser(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError, OSError, RuntimeError) as exc:
        # Expected failures (bad config, bad data file, failed download) end with one readable line, no traceback.
        print(f"drmoe-repro {args.command}: error: {exc}", file=sys.stderr)
        return 2
