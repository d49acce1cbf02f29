"""Speed of the suite's metrics against scikit-learn's per-class loop, on one CPU thread.

A COCO-val-sized problem (40,137 images x 80 labels, ~3% positives, fixed seed, float32 scores like
predictions.npz). Times, in one run on the same machine:
  - sklearn: ``average_precision_score`` per class + ``precision_recall_fscore_support`` (micro and macro) at 0.5:
    what a straightforward evaluation script does (it has no top-k variants and no mAP@K);
  - ours, ``compute_metrics`` with the default conventions: mAP, per-class AP, mAP@3, OP/OR/OF1/CP/CR/CF1 at 0.5 and
    for top-3 (more metrics than the sklearn loop);
  - ours, ``convention_sensitivity``: every convention side by side (3 AP variants, mAP@3 x 3, 2 thresholds x
    top-3/all x 2 CF1 definitions).
Prints the median of a few repeats and the ratio to sklearn. Not a test: ``.venv/bin/python bench/metrics_speed.py``.
"""

from __future__ import annotations

import os

# One thread: set before numpy is imported, or its BLAS/OpenMP pools are already sized.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.metrics import average_precision_score, precision_recall_fscore_support  # noqa: E402

from drmoe_repro.metrics import compute_metrics, convention_sensitivity  # noqa: E402

N_IMAGES, N_LABELS, PREVALENCE, SEED, REPEATS = 40_137, 80, 0.03, 0, 5


def make_problem() -> tuple[np.ndarray, np.ndarray]:
    """Random scores that carry some signal: positives get a higher logit on average."""
    rng = np.random.default_rng(SEED)
    targets = (rng.random((N_IMAGES, N_LABELS)) < PREVALENCE).astype(np.int8)
    logits = rng.normal(-3.0, 1.5, size=targets.shape) + 3.0 * targets
    scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    return scores, targets


def sklearn_loop(scores: np.ndarray, targets: np.ndarray) -> float:
    """What a typical script does: AP class by class, then micro and macro P/R/F1 at 0.5."""
    aps = [average_precision_score(targets[:, c], scores[:, c]) for c in range(scores.shape[1])]
    predicted = (scores >= 0.5).astype(np.int8)
    precision_recall_fscore_support(targets, predicted, average="micro", zero_division=0)
    precision_recall_fscore_support(targets, predicted, average="macro", zero_division=0)
    return float(np.mean(aps))


def median_seconds(fn, *args) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    scores, targets = make_problem()
    names = [f"label{i:02d}" for i in range(N_LABELS)]
    # Same answer first (a benchmark of a wrong implementation is worthless).
    ours = compute_metrics(scores, targets, names)["mAP[ap=noninterp]"]
    reference = sklearn_loop(scores, targets)
    assert abs(ours - reference) < 1e-9, (ours, reference)

    rows = [
        ("sklearn per-class loop (AP + P/R/F1)", median_seconds(sklearn_loop, scores, targets)),
        ("drmoe_repro compute_metrics (defaults)", median_seconds(compute_metrics, scores, targets, names)),
        ("drmoe_repro convention_sensitivity", median_seconds(convention_sensitivity, scores, targets, names)),
    ]
    baseline = rows[0][1]
    print(f"{N_IMAGES} x {N_LABELS} scores, prevalence {PREVALENCE:.0%}, 1 thread, median of {REPEATS}")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'implementation':<42} {'seconds':>8} {'vs sklearn':>10}")
    for name, seconds in rows:
        print(f"{name:<42} {seconds:>8.3f} {seconds / baseline:>9.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
