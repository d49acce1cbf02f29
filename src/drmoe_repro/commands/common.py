"""Options every pipeline subcommand shares: the config file and the profile."""

from __future__ import annotations

import argparse
from pathlib import Path

from drmoe_repro.config import DEFAULT_CONFIG, load_config
from drmoe_repro.progress import NO_PROGRESS_HELP


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="the suite's config file (default: %(default)s)")
    parser.add_argument("--profile", choices=["demo", "paper"], default=None,
                        help="which profile of the config to use (default: the config's `profile` key)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--dataset", required=True, help="data set key of the profile, e.g. coco or voc")
    parser.add_argument("--system", required=True, help="system name from the config's `systems`, e.g. drmoe")
    parser.add_argument("--seed", type=int, required=True, help="random seed of the run")
    parser.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)


def add_reference_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference-config", type=Path, default=DEFAULT_CONFIG,
                        help="the config whose profiles are the recipes runs are compared with: a row whose run "
                             "differs from its profile there is marked as deviating (default: %(default)s)")


def config_and_profile(args: argparse.Namespace) -> tuple[dict, str]:
    """The validated config (the whole of it, before any work) and the selected profile's name."""
    overrides = {"profile": args.profile} if args.profile else None
    config = load_config(args.config, overrides)
    return config, config["profile"]


def run_cli_args(command: str, args: argparse.Namespace, profile: str) -> list[str]:
    """The command line that repeats this run's step (for the data-parallel processes torchrun starts)."""
    return [command, "--config", str(args.config), "--profile", profile, "--dataset", args.dataset,
            "--system", args.system, "--seed", str(args.seed), *(["--no-progress"] if args.no_progress else [])]
