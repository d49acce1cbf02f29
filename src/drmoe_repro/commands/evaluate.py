"""`evaluate`: score a trained run on its test split and write predictions, gates, metrics and run.json."""

from __future__ import annotations

import argparse

from drmoe_repro.commands.common import add_run_arguments, config_and_profile, run_cli_args
from drmoe_repro.engine.devices import run_on_claimed_gpus
from drmoe_repro.config import profile_of, resolve_run
from drmoe_repro.layout import TEST_SCORES, index_path, run_dir
from drmoe_repro.engine.evaluate import evaluate_run, load_test_scores
from drmoe_repro.metrics import headline

HELP = ("Evaluate a trained run on the test split: predictions.npz, gates.npz (mixture-of-experts models), "
        "metrics.json, conventions.csv and run.json in its run directory. The scores are those of the pass that "
        "training made with model.pt over the test split (test_scores.npz) where it matches the run; otherwise this "
        "command makes that pass itself, on a claimed GPU on a GPU profile.")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config, profile = config_and_profile(args)
    cfg = resolve_run(config, profile, args.dataset, args.system, args.seed)
    prof = profile_of(config, profile)
    train_index, test_index = index_path(profile, args.dataset, "train"), index_path(profile, args.dataset, "test")
    run = run_dir(profile, args.dataset, args.system, args.seed)
    # Training ends with a pass of model.pt over the test split: where it matches this run, nothing is left to
    # compute on a GPU (engine/evaluate.py).
    scored = load_test_scores(cfg, test_index, run)

    def evaluate() -> int:
        results = evaluate_run(cfg, train_index, test_index, run, progress=not args.no_progress, scored=scored)
        top = headline(results)
        print(f"{args.system}/{args.dataset} seed {args.seed}: mAP {100 * top['mAP']:.2f}  "
              f"OF1 {100 * top['OF1']:.2f}  CF1 {100 * top['CF1']:.2f}  "
              f"(label prior mAP {100 * results['reference']['label_prior_mAP']:.2f})")
        return 0

    if scored is not None:
        print(f"{args.system}/{args.dataset} seed {args.seed}: the test split as training scored it with model.pt "
              f"({run / TEST_SCORES})", flush=True)
        return evaluate()
    # Evaluation is one process: it claims one GPU slot however many GPUs its training used.
    return run_on_claimed_gpus(prof, 1, evaluate, run_cli_args("evaluate", args, profile))
