"""`metrics`: re-score any predictions.npz under chosen metric conventions, so anyone can check a run.

    drmoe-repro metrics results/demo/runs/voc/drmoe/seed0/predictions.npz --out metrics.json --sensitivity-out sens.csv

Prints a table of every metric (percentages) to stdout; optionally writes the metrics dict (the same as a run's
metrics.json when the conventions are the defaults) and the side-by-side convention table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from drmoe_repro import metrics
from drmoe_repro.io import load_npz, save_json, write_text

HELP = "Re-score a predictions.npz (mAP, OF1, CF1, top-k, mAP@K) under explicitly chosen metric conventions."

# The arrays a predictions.npz must hold (README, "Outputs").
REQUIRED_KEYS = ("image_ids", "label_names", "targets", "scores")


class PredictionsError(ValueError):
    """A predictions.npz that cannot be scored; the message names the file and the key."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        HELP + " The file must hold image_ids (N), label_names (L), targets (N x L int8: 1 positive, 0 negative, "
        "-1 ignored) and scores (N x L probabilities in [0, 1]). Defaults are the conventions the paper's "
        "baselines were reported with (ML-GCN/ADD-GCN code)."
    )
    parser.add_argument("predictions", type=Path, metavar="PREDICTIONS.npz", help="the predictions file to score")
    parser.add_argument(
        "--ap",
        choices=metrics.AP_CONVENTIONS,
        default=metrics.DEFAULT_AP,
        help="average precision per class: 'noninterp' = mean precision at each positive, as sklearn's "
        "average_precision_score and ML-GCN; 'interp' = VOC 2010+ all-point interpolated (precision envelope, as "
        "Query2Label); '11point' = VOC 2007 11-point interpolated (default: %(default)s)",
    )
    parser.add_argument(
        "--cf1",
        choices=metrics.CF1_CONVENTIONS,
        default=metrics.DEFAULT_CF1,
        help="per-class F1: 'mlgcn' = harmonic mean of class-averaged precision and recall (ML-GCN, ADD-GCN); "
        "'meanf1' = mean of the per-class F1 scores (ASL, torchmetrics macro F1) (default: %(default)s)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=metrics.DEFAULT_THRESHOLD,
        help="a label is predicted where its probability is >= this value, for OP/OR/OF1/CP/CR/CF1 "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=metrics.DEFAULT_TOP_K,
        help="also report the F1 family counting only each image's K highest scores (that are also >= the "
        "threshold), and mAP@K (each class ranked only over images where it is in the image's top K); "
        "0 turns these off (default: %(default)s)",
    )
    parser.add_argument(
        "--ignored-in-f1",
        choices=metrics.IGNORED_IN_F1,
        default=metrics.DEFAULT_IGNORED_IN_F1,
        help="targets marked -1 (e.g. VOC 'difficult'): 'exclude' leaves them out of the F1 counts; 'negative' "
        "counts them as negatives, as ML-GCN does. They are always left out of AP (default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, metavar="METRICS.json",
        help="also write the metrics, keyed by metric and convention, to this JSON file",
    )
    parser.add_argument(
        "--sensitivity-out", type=Path, default=None, metavar="SENSITIVITY.csv",
        help="also write every metric under every convention (metric, convention, value) to this CSV file: "
        "3 AP variants, thresholds 0.5, 0.8 and --threshold, all predictions and top-K, both CF1 definitions, "
        "ignored targets excluded and counted negative; if some images have no positive label (e.g. COCO "
        "images without annotations), everything again without them",
    )
    parser.add_argument(
        "--per-class", action="store_true", help="also print the AP of every class",
    )


def load_predictions(path: Path) -> dict[str, Any]:
    """Read and check a predictions.npz; return scores (float64), targets (int8), label_names and image_ids.

    Raises PredictionsError naming the file and the offending key.
    """
    if not path.exists():
        raise PredictionsError(f"{path}: no such file")
    try:
        arrays = load_npz(path)
    except Exception as exc:  # a truncated or non-zip file, or pickled arrays
        raise PredictionsError(f"{path}: cannot read as .npz ({exc})") from exc
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise PredictionsError(f"{path}: missing key '{key}' (found: {', '.join(sorted(arrays)) or 'none'})")
    image_ids, label_names = arrays["image_ids"], arrays["label_names"]
    if image_ids.ndim != 1:
        raise PredictionsError(f"{path}: key 'image_ids': expected 1-d, got shape {image_ids.shape}")
    if label_names.ndim != 1:
        raise PredictionsError(f"{path}: key 'label_names': expected 1-d, got shape {label_names.shape}")
    try:
        scores, targets, names = metrics.check_inputs(arrays["scores"], arrays["targets"], label_names)
    except ValueError as exc:
        key, _, detail = str(exc).partition(": ")
        raise PredictionsError(f"{path}: key '{key}': {detail}") from exc
    if image_ids.shape[0] != scores.shape[0]:
        raise PredictionsError(
            f"{path}: key 'image_ids': {image_ids.shape[0]} ids for {scores.shape[0]} rows of scores"
        )
    decisions = None
    if "decisions" in arrays:  # a model's own decided label sets (CNN-RNN): its F1s come from them
        try:
            decisions = metrics.check_decisions(arrays["decisions"], scores)
        except ValueError as exc:
            raise PredictionsError(f"{path}: key 'decisions': {exc}") from exc
    return {"scores": scores, "targets": targets, "label_names": names, "image_ids": image_ids,
            "decisions": decisions}


def format_table(results: dict[str, Any], source: Path, per_class: bool) -> str:
    """Readable text: one line per scalar metric in percent, then (optionally) per-class AP."""
    scalar = {k: v for k, v in results.items() if isinstance(v, float)}
    width = max(len(k) for k in scalar)
    lines = [
        f"{source}: {results['num_images']} images, {results['num_classes_with_positives']} classes with positives",
    ]
    if results["classes_without_positives"]:
        lines.append("left out of class means (no positive): " + ", ".join(results["classes_without_positives"]))
    lines.append(f"{'metric':<{width}}  {'%':>7}")
    for key, value in scalar.items():  # compute_metrics' order: mAP, F1 family, top-k family
        lines.append(f"{key:<{width}}  {_percent(value):>7}")
    if per_class:
        ap_key = next(k for k in results if k.startswith("per_class_AP["))
        names = results[ap_key]
        name_width = max(len(n) for n in names)
        lines.append("")
        lines.append(f"{ap_key[len('per_class_'):]:<{name_width}}  {'%':>7}")
        for name, value in names.items():
            lines.append(f"{name:<{name_width}}  {_percent(value):>7}")
    return "\n".join(lines) + "\n"


def _percent(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100.0 * value:.2f}"


def run(args: argparse.Namespace) -> int:
    try:
        data = load_predictions(args.predictions)
    except PredictionsError as exc:
        print(f"drmoe-repro metrics: error: {exc}", file=sys.stderr)
        return 2
    if args.top_k < 0:
        print("drmoe-repro metrics: error: --top-k must be >= 0", file=sys.stderr)
        return 2
    top_k = args.top_k or None
    results = metrics.compute_metrics(
        data["scores"],
        data["targets"],
        data["label_names"],
        ap=args.ap,
        cf1=args.cf1,
        threshold=args.threshold,
        top_k=top_k,
        ignored_in_f1=args.ignored_in_f1,
        decisions=data["decisions"],
    )
    sys.stdout.write(format_table(results, args.predictions, args.per_class))
    if args.out is not None:
        save_json(args.out, results)
    if args.sensitivity_out is not None:
        # Images without any positive label (e.g. COCO images without annotations) are scored with and without.
        unannotated = ~(data["targets"] == 1).any(axis=1)
        table = metrics.convention_sensitivity(
            data["scores"], data["targets"], data["label_names"], unannotated_mask=unannotated,
            thresholds=tuple(dict.fromkeys((0.5, 0.8, args.threshold))), top_k=top_k, decisions=data["decisions"],
        )
        write_text(args.sensitivity_out, metrics.conventions_csv(table))
    return 0
