"""`evaluate`: score a trained run on its test split and write predictions, gates, metrics and run.json."""

from __future__ import annotations

import argparse

from drmoe_repro.commands.common import add_run_arguments, config_and_profile, run_cli_args
from drmoe_repro.engine.devices import run_on_claimed_gpus
from drmoe_repro.config import profile_of, resolve_run
from drmoe_repro.layout import index_path, run_dir
from drmoe_repro.engine.evaluate import evaluate_run
from drmoe_repro.metrics import headline

HELP = ("Evaluate a trained run on the test split: predictions.npz, gates.npz (mixture-of-experts models), "
        "metrics.json, conventions.csv and run.json in its run directory.")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config, profile = config_and_profile(args)
    cfg = resolve_run(config, profile, args.dataset, args.system, args.seed)
    prof = profile_of(config, profile)

    def evaluate() -> int:
        results = evaluate_run(cfg, index_path(profile, args.dataset, "train"),
                               index_path(profile, args.dataset, "test"),
                               run_dir(profile, args.dataset, args.system, args.seed), progress=not args.no_progress)
        top = headline(results)
        print(f"{args.system}/{args.dataset} seed {args.seed}: mAP {100 * top['mAP']:.2f}  "
              f"OF1 {100 * top['OF1']:.2f}  CF1 {100 * top['CF1']:.2f}  "
              f"(label prior mAP {100 * results['reference']['label_prior_mAP']:.2f})")
        return 0

    # Evaluation is one process: it claims one GPU slot however many GPUs its training used.
    return run_on_claimed_gpus(prof, 1, evaluate, run_cli_args("evaluate", args, profile))
