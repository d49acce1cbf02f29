"""Every metric of the suite, under explicitly named conventions, in one vectorised implementation.

Inputs
------
``scores``  float [N, L]: probabilities after the sigmoid, in [0, 1] (N images, L labels).
``targets`` int   [N, L]: 1 positive, 0 negative, -1 ignored (e.g. VOC "difficult").

Metrics and their conventions
-----------------------------
AP (per class), ``ap=``:
  - ``noninterp`` (default, ML-GCN/ADD-GCN/ASL): mean of the precision at each positive, i.e.
    sum_n (R_n - R_{n-1}) P_n over the distinct score values; equals ``sklearn.metrics.average_precision_score``.
  - ``interp``: VOC 2010+ all-point interpolation: the same sum with P_n replaced by its envelope
    max_{n' >= n} P_{n'} (Query2Label's code). Never below ``noninterp``.
  - ``11point``: VOC 2007 11-point interpolation: mean over t in {0, 0.1, ..., 1} of the largest precision at
    recall >= t (0 if recall never reaches t). The recall levels are exact tenths (compared in integers); the
    VOC devkit's float ``np.arange(0, 1.1, 0.1)`` makes 0.3, 0.6 and 0.7 slightly larger than a tenth, so it
    can differ from this one where a class's recall is exactly 0.3, 0.6 or 0.7.
  Ignored targets (-1) are left out of the class's ranking. Classes with no positive are left out of the mean:
  their AP is None and their names are listed under ``classes_without_positives``.

Tied scores (AP): all items with the same score enter the ranking at once; precision and recall are read at
the end of each tie group (as sklearn does). The result therefore does not depend on the order of the images:
it is the same bit for bit under any permutation of the images.

F1 family at a threshold, predictions are ``score >= threshold`` (default 0.5, ML-GCN's ``logit >= 0``).
Per class: Nc = correct predictions, Np = predictions, Ng = positives.
  - OP = sum Nc / sum Np, OR = sum Nc / sum Ng, OF1 = 2 OP OR / (OP + OR)  (overall, i.e. micro; all classes).
    ML-GCN's code sums Np after setting it to 1 for classes never predicted, so each such class adds 1 to its OP's
    denominator; here OP counts the predictions as they are (paper/ambiguities.yaml: overall-precision).
  - CP = mean_c Nc/Np, CR = mean_c Nc/Ng, with Np := 1 where a class has no prediction (ML-GCN: precision 0).
  - CF1 ``def=mlgcn`` (default): 2 CP CR / (CP + CR) (ML-GCN, ADD-GCN: the paper's baselines).
  - CF1 ``def=meanf1``: mean_c of the per-class F1 2 Nc / (Np + Ng) (ASL, torchmetrics macro F1; also the
    wording of the DR-MoE paper's §4). CP and CR are the same under both definitions.
  Class means (CP, CR, CF1) are taken over the classes with at least one positive, the same classes as mAP.
  A ratio with a zero denominator is 0 (no predictions -> precision 0; OF1 or CF1 with P + R = 0 -> 0), except
  where there is no positive at all: recall-based values are then undefined (NaN, written as null in JSON).
  Ignored targets, ``ignored_in_f1=``: ``negative`` (default) counts them as negatives, as ML-GCN's and ADD-GCN's
  code count VOC difficult labels for F1 (util.py AveragePrecisionMeter); ``exclude`` leaves them out of Nc, Np and
  Ng. AP always leaves them out (both codes do). COCO has no ignored target: both give the same numbers there.

F1 family from decisions (``decisions=``, bool [N, L]): a model that decides label sets itself (CNN-RNN's beam
search) is scored on those sets, the predictions it makes, instead of on its scores at a threshold; top-k keeps
each image's k highest-scoring decided labels. Keys say ``dec=beam`` where the others say ``thr=0.5``.

Top-k (``top3``): only each image's k highest scores are predictions, and only if also ``>= threshold`` (ML-GCN).
Ties at the k-th place are broken by class index (the lower index wins): the class order is fixed by
``label_names``, so the rule does not depend on the order of the images.

mAP@K (the paper's "mAP when considering the top K predictions per image"): each class is ranked only over the
images where that class is among the image's top K scores (same tie rule as top-k). Entries outside an image's
top K are not retrieved: they leave the ranking, and a positive that is not retrieved is a miss (the recall
denominator stays the class's number of positives, so it contributes zero). Then AP and the mean as above.

Metric names (keys of ``compute_metrics``' dict; the brackets name the convention)
------------------------------------------------------------------------------
  ``mAP[ap=noninterp]``, ``mAP@3[ap=noninterp]``, ``per_class_AP[ap=noninterp]`` ({label: AP or None}),
  ``OP[thr=0.5]``, ``OR[thr=0.5]``, ``OF1[thr=0.5]``, ``CP[thr=0.5]``, ``CR[thr=0.5]``, ``CF1[def=mlgcn,thr=0.5]``,
  the same with ``top3,`` before ``thr`` (e.g. ``OF1[top3,thr=0.5]``, ``CF1[def=mlgcn,top3,thr=0.5]``),
  plus ``classes_without_positives`` (list of labels), ``num_images`` and ``num_classes_with_positives``.
  Every F1-family key ends in ``,ign=negative`` or ``,ign=exclude``: how ignored targets were counted (above),
  e.g. ``OF1[thr=0.5,ign=negative]``. Values are fractions in [0, 1].
  ``convention_sensitivity`` uses the same text inside the brackets as its ``convention`` column.

  It adds ``,images=annotated`` to the rows computed without the images that have no positive label.

Everything is float64 inside and deterministic. No Python loop runs over images or classes: one integer sort
ranks every class at once (see `_rank_base`), then the work is on the positives only (searchsorted, bincount).
"""

from __future__ import annotations

import csv
import io
import math
import sys
from typing import Any, Mapping, Sequence

import numpy as np

AP_CONVENTIONS = ("noninterp", "interp", "11point")
CF1_CONVENTIONS = ("mlgcn", "meanf1")
IGNORED_IN_F1 = ("exclude", "negative")

# The conventions the paper's baselines were reported with (ML-GCN's and ADD-GCN's code; README "Metric conventions").
DEFAULT_AP = "noninterp"
DEFAULT_CF1 = "mlgcn"
DEFAULT_THRESHOLD = 0.5
DEFAULT_TOP_K = 3
DEFAULT_IGNORED_IN_F1 = "negative"  # ML-GCN's code: VOC difficult labels are negatives for F1
DECISIONS = "beam"  # the name of decided label sets in keys (``dec=beam``): CNN-RNN's beam search

# The keys `headline` reads: the paper's mAP, OF1 and CF1 under the default conventions; a run with decided label
# sets takes its F1s from those (DECISION_HEADLINE_KEYS).
HEADLINE_KEYS = {
    "mAP": "mAP[ap=noninterp]",
    "OF1": "OF1[thr=0.5,ign=negative]",
    "CF1": "CF1[def=mlgcn,thr=0.5,ign=negative]",
    "per_class_AP": "per_class_AP[ap=noninterp]",
}
DECISION_HEADLINE_KEYS = {**HEADLINE_KEYS, "OF1": "OF1[dec=beam,ign=negative]",
                          "CF1": "CF1[def=mlgcn,dec=beam,ign=negative]"}

# What an item of a class's ranking is, in the low 2 bits of its rank key (see `_rank_base`).
_TAG_TP, _TAG_FP, _TAG_NONE = 0, 1, 2


# ----------------------------------------------------------------------------------------------------------------
# Names
# ----------------------------------------------------------------------------------------------------------------


def ap_convention(ap: str) -> str:
    """Text inside the brackets of an AP key, e.g. ``ap=noninterp``."""
    _check_choice("ap", ap, AP_CONVENTIONS)
    return f"ap={ap}"


def f1_convention(
    *, threshold: float | None, top_k: int | None = None, cf1: str | None = None,
    ignored_in_f1: str = DEFAULT_IGNORED_IN_F1,
) -> str:
    """Text inside the brackets of an F1-family key, e.g. ``def=mlgcn,top3,thr=0.5,ign=negative`` (``cf1`` only
    for CF1); ``threshold=None`` names predictions from decided label sets (``dec=beam``)."""
    parts = []
    if cf1 is not None:
        _check_choice("cf1", cf1, CF1_CONVENTIONS)
        parts.append(f"def={cf1}")
    if top_k is not None:
        parts.append(f"top{int(top_k)}")
    parts.append(f"dec={DECISIONS}" if threshold is None else f"thr={float(threshold):g}")
    _check_choice("ignored_in_f1", ignored_in_f1, IGNORED_IN_F1)
    parts.append(f"ign={ignored_in_f1}")
    return ",".join(parts)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(choices)}")


# ----------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------


def check_inputs(
    scores: Any, targets: Any, label_names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate and convert inputs; return (scores float64 [N, L], targets int8 [N, L], label names).

    Raises ValueError whose message starts with the offending key (``scores``, ``targets``, ``label_names``),
    so that callers reading a predictions.npz can name the file and the key.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim != 2:
        raise ValueError(f"scores: expected a 2-d array [images, labels], got shape {scores.shape}")
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores: no images or no labels (shape {scores.shape})")
    if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)):
        raise ValueError(f"scores: expected floating-point probabilities, got dtype {scores.dtype}")
    scores = scores.astype(np.float64)  # a copy: the caller's array is never modified
    low, high = scores.min(), scores.max()  # NaN propagates through min and max
    if np.isnan(low) or np.isnan(high):
        raise ValueError(f"scores: {int(np.count_nonzero(np.isnan(scores)))} NaN value(s)")
    if low < 0.0 or high > 1.0:
        outside = int(np.count_nonzero((scores < 0.0) | (scores > 1.0)))
        raise ValueError(
            f"scores: {outside} value(s) outside [0, 1] (min {low:g}, max {high:g}); "
            "pass probabilities after the sigmoid, not logits"
        )
    if targets.shape != scores.shape:
        raise ValueError(f"targets: shape {targets.shape} does not match scores {scores.shape}")
    if not (np.issubdtype(targets.dtype, np.integer) or targets.dtype == np.bool_):
        raise ValueError(f"targets: expected integers 1 / 0 / -1, got dtype {targets.dtype}")
    if targets.min() < -1 or targets.max() > 1:
        bad = int(np.count_nonzero((targets < -1) | (targets > 1)))
        raise ValueError(f"targets: {bad} value(s) not in {{1, 0, -1}}")
    targets = targets.astype(np.int8, copy=False)
    n_labels = scores.shape[1]
    if label_names is None:
        names = [str(i) for i in range(n_labels)]
    else:
        names = [str(name) for name in np.asarray(label_names).reshape(-1).tolist()]
        if len(names) != n_labels:
            raise ValueError(f"label_names: {len(names)} names for {n_labels} score columns")
        if len(set(names)) != len(names):
            raise ValueError("label_names: names are not unique")
    return scores, targets, names


# ----------------------------------------------------------------------------------------------------------------
# Ranking metrics (AP)
# ----------------------------------------------------------------------------------------------------------------


def top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """bool [N, L]: True at each image's k highest scores; ties at the k-th place go to the lower class index.

    A loop over k (not over images): each pass takes every image's largest remaining score. ``argmax`` returns
    the first maximum, i.e. the lowest class index among ties, which fixes the rule independently of image order.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n_images, n_labels = scores.shape
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k >= n_labels:
        return np.ones(scores.shape, dtype=bool)
    mask = np.zeros(scores.shape, dtype=bool)
    remaining = scores.copy()
    rows = np.arange(n_images)
    for _ in range(k):
        best = np.argmax(remaining, axis=1)  # [N]
        mask[rows, best] = True
        remaining[rows, best] = -np.inf
    return mask


# How an item of a class's ranking is encoded: one unsigned 64-bit "rank key" per (image, class),
#     rank_key = (~bits(score) << 2) | tag.
# For floats in [0, 1] the IEEE-754 bit pattern, read as an unsigned integer, orders exactly like the value and is
# < 2**62, so ``~bits << 2`` loses nothing and orders like the score reversed: sorting rank keys ascending ranks
# the scores from highest to lowest, and the two low bits carry what the item is. (The shift also drops the sign
# bit, so -0.0, which passes the [0, 1] check, gets the same key as 0.0.) Why: ``np.sort`` of integers
# is several times faster than ``np.argsort``, and this way one plain sort ranks scores and labels together.
# Two items tie (same score) exactly when their keys agree above the two tag bits.


def _rank_base(scores: np.ndarray) -> np.ndarray:
    """uint64 [L, N] (one row per class): ``~bits(score) << 2``, the rank key before its tag."""
    # Always a fresh [L, N] copy (modified in place below; scores.T may already be contiguous for N or L = 1).
    base = np.array(scores.T, dtype=np.float64, order="C", copy=True).view(np.uint64)
    np.invert(base, out=base)
    np.left_shift(base, np.uint64(2), out=base)
    return base


def _item_tags(targets: np.ndarray) -> np.ndarray:
    """uint8 [L, N]: _TAG_TP for positives, _TAG_FP for negatives, _TAG_NONE for ignored targets.

    With the tags chosen as 0, 1, 2 this is simply 1 - target (1 -> 0, 0 -> 1, -1 -> 2).
    """
    return (1 - np.ascontiguousarray(targets.T)).view(np.uint8)


def _tags_of(keys: np.ndarray) -> np.ndarray:
    """uint8 tags of a contiguous 1-d array of rank keys, read from each key's lowest byte.

    Why the byte view: ``keys & 3`` would build a uint64 array as large as ``keys``; this builds a uint8 one.
    """
    offset = 0 if sys.byteorder == "little" else 7
    return keys.view(np.uint8)[offset::8] & np.uint8(3)


def _rank_all(rank_base: np.ndarray, tags: np.ndarray):
    """Rank every image for every class. Returns (keys, starts): sorted rank keys, flat [L * N], class by class
    (class c at starts[c]:starts[c] + N), highest score first."""
    n_classes, n_items = rank_base.shape
    keys = rank_base | tags  # [L, N]
    keys.sort(axis=1)  # each row (class) separately
    return keys.reshape(-1), np.arange(n_classes, dtype=np.int64) * n_items


def _rank_retrieved(rank_base: np.ndarray, tags: np.ndarray, retrieved: np.ndarray):
    """Rank, for each class, only the images where it was retrieved (bool [N, L]); output as `_rank_all`, with
    classes of different lengths. For mAP@K this is K of L items per image, far fewer than `_rank_all`."""
    n_classes, n_items = rank_base.shape
    flat = np.flatnonzero(np.ascontiguousarray(retrieved.T))  # class-major indices into [L, N]
    cls = flat // n_items
    keys = rank_base.reshape(-1)[flat] | tags.reshape(-1)[flat]
    # By class, then highest score first: sort the keys, then stably by class (a radix sort on int16 classes;
    # much faster than np.lexsort). Equal keys are identical values, so their order cannot matter.
    order = np.argsort(keys)
    small_cls = cls.astype(np.int16 if n_classes < 2**15 else np.int64)
    order = order[np.argsort(small_cls[order], kind="stable")]
    lengths = np.bincount(cls, minlength=n_classes)
    return keys[order], np.cumsum(lengths) - lengths


def _ap_from_ranking(
    keys: np.ndarray, starts: np.ndarray, n_pos: np.ndarray, kinds: Sequence[str]
) -> dict[str, np.ndarray]:
    """AP per class (float64 [L], NaN where n_pos == 0) for each convention in ``kinds``, from one ranking.

    keys/starts: from `_rank_all` or `_rank_retrieved`. n_pos: positives per class, the recall denominator
    (it also counts positives left out of the ranking, which are then misses).
    Items tagged _TAG_NONE (ignored) take a place in the ranking but count neither as hit nor as false alarm, which
    is the same as leaving them out. Once the ranks are known all work is on the positives (a few percent).
    """
    n_classes = starts.size
    n_total = keys.size
    stops = np.append(starts[1:], n_total)  # [L] end (exclusive) of each class's run in the flat array
    tag = _tags_of(keys)
    pos_idx = np.flatnonzero(tag == _TAG_TP)  # ranked positives, class by class, best first
    none_idx = np.flatnonzero(tag == _TAG_NONE)  # ranked items of zero weight
    # Tie groups: one ends where the next item has another score (keys differ above the 2 tag bits) or where the
    # class's run ends. Precision is read at the end of the group: tied items enter the ranking together.
    group_end = np.empty(n_total, dtype=bool)
    np.greater(keys[:-1] ^ keys[1:], np.uint64(3), out=group_end[:-1])
    group_end[-1:] = True
    group_end[(stops - 1)[stops > starts]] = True
    ends = np.flatnonzero(group_end)
    pos_end = ends[np.searchsorted(ends, pos_idx)]  # [P] end of each positive's tie group
    pos_cls = np.searchsorted(starts, pos_idx, side="right") - 1  # [P] its class (an empty class shares a start)
    ranked = np.bincount(pos_cls, minlength=n_classes)  # [L] positives in each class's ranking
    first_pos = np.cumsum(ranked) - ranked  # [L] where each class's positives begin in pos_idx
    # Precision at the group end: positives up to there / items of nonzero weight up to there.
    hits = np.searchsorted(pos_idx, pos_end, side="right") - first_pos[pos_cls]
    none_before = np.searchsorted(none_idx, starts)  # [L] zero-weight items of earlier classes
    zero_weight = np.searchsorted(none_idx, pos_end, side="right") - none_before[pos_cls]
    counted = pos_end - starts[pos_cls] + 1 - zero_weight  # >= 1: the positive itself counts
    precision = hits / counted  # [P]

    with np.errstate(invalid="ignore", divide="ignore"):
        inv_pos = np.where(n_pos > 0, 1.0 / np.maximum(n_pos, 1), np.nan)  # [L]
    out: dict[str, np.ndarray] = {}
    if "noninterp" in kinds:
        # sum_n (R_n - R_{n-1}) P_n = (1/n_pos) * sum over positives of the precision at the end of their group.
        out["noninterp"] = np.bincount(pos_cls, precision, minlength=n_classes) * inv_pos
    if "interp" in kinds or "11point" in kinds:
        # Envelope: the best precision at this positive's group end or any later point. Precision only rises at
        # a group that holds a positive (between two such groups it can only fall), so the best later point is
        # at a positive: a reverse running maximum over each class's positives suffices. Classes are rows of a
        # zero-padded grid so that the running maximum restarts at each class.
        rank_in_class = np.arange(pos_idx.size) - first_pos[pos_cls]  # [P]
        grid = np.zeros((n_classes, max(int(ranked.max(initial=0)), 1)))  # [L, most positives in a class]
        grid[pos_cls, rank_in_class] = precision
        grid = np.maximum.accumulate(grid[:, ::-1], axis=1)[:, ::-1]  # grid[c, j]: envelope at the (j+1)-th positive
        if "interp" in kinds:
            out["interp"] = np.bincount(pos_cls, grid[pos_cls, rank_in_class], minlength=n_classes) * inv_pos
        if "11point" in kinds:
            # Recall >= k/10 first holds at the m-th positive, m = ceil(k * n_pos / 10) (integers, so exact tenths
            # are exact). k = 0 reads the envelope at the first positive, the best precision of the whole curve.
            # A level never reached (fewer than m positives ranked, mAP@K) scores 0.
            need = (np.arange(11)[None, :] * n_pos[:, None] + 9) // 10  # [L, 11]
            column = np.clip(need - 1, 0, grid.shape[1] - 1)
            level = np.where(need <= ranked[:, None], grid[np.arange(n_classes)[:, None], column], 0.0)
            out["11point"] = level.sum(axis=1) / 11.0 * np.where(n_pos > 0, 1.0, np.nan)
    return out


class _Prepared:
    """What every AP computation on one (scores, targets) pair shares: rank keys, tags, positives per class."""

    def __init__(self, scores: np.ndarray, targets: np.ndarray):
        self.rank_base = _rank_base(scores)  # [L, N]
        self.tags = _item_tags(targets)  # [L, N]
        self.n_pos = np.count_nonzero(targets == 1, axis=0)  # [L], counted before any retrieval mask

    def ap(self, kinds: Sequence[str], retrieved: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """AP per class for each convention in ``kinds``; ``retrieved`` (bool [N, L]) restricts the ranking."""
        if retrieved is None:
            keys, starts = _rank_all(self.rank_base, self.tags)
        else:
            keys, starts = _rank_retrieved(self.rank_base, self.tags, retrieved)
        return _ap_from_ranking(keys, starts, self.n_pos, kinds)


def average_precision(
    scores: Any, targets: Any, *, ap: str = DEFAULT_AP, top_k: int | None = None
) -> np.ndarray:
    """AP of every class, float64 [L]; NaN for classes with no positive.

    ``ap``: ``noninterp`` | ``interp`` | ``11point`` (see the module docstring). ``top_k``: rank each class only
    over the images where it is among the image's top k scores (the AP behind mAP@K).
    """
    _check_choice("ap", ap, AP_CONVENTIONS)
    scores, targets, _ = check_inputs(scores, targets)
    retrieved = top_k_mask(scores, top_k) if top_k is not None else None
    return _Prepared(scores, targets).ap((ap,), retrieved)[ap]


def _nan_mean(values: np.ndarray) -> float:
    """Mean over the finite entries (classes with positives); NaN if there is none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


# ----------------------------------------------------------------------------------------------------------------
# Threshold metrics (F1 family)
# ----------------------------------------------------------------------------------------------------------------


def f1_family(
    scores: Any,
    targets: Any,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    top_k: int | None = None,
    ignored_in_f1: str = DEFAULT_IGNORED_IN_F1,
) -> dict[str, float]:
    """OP, OR, OF1, CP, CR, CF1_mlgcn and CF1_meanf1 (plain names, fractions) at one threshold (and top-k)."""
    scores, targets, _ = check_inputs(scores, targets)
    _check_choice("ignored_in_f1", ignored_in_f1, IGNORED_IN_F1)
    mask = top_k_mask(scores, top_k) if top_k is not None else None
    return _f1_family(scores, targets, threshold, mask, ignored_in_f1)


def _f1_family(scores, targets, threshold, mask, ignored_in_f1) -> dict[str, float]:
    """`threshold` None: `scores` are decisions (bool [N, L]) and are the predictions themselves."""
    predicted = scores.astype(bool) if threshold is None else scores >= threshold  # [N, L]
    if mask is not None:
        predicted &= mask  # top-k: a prediction must be both in the image's top k and above the threshold
    positive = targets == 1
    if ignored_in_f1 == "exclude":
        predicted &= targets != -1  # a prediction on an ignored label is neither right nor wrong
    # "negative": -1 is simply not a positive, so predictions on it count in Np (false positives).
    n_correct = np.count_nonzero(predicted & positive, axis=0).astype(np.float64)  # Nc [L]
    n_predicted = np.count_nonzero(predicted, axis=0).astype(np.float64)  # Np [L]
    n_positive = np.count_nonzero(positive, axis=0).astype(np.float64)  # Ng [L]

    def ratio(num: float, den: float) -> float:
        return num / den if den > 0 else 0.0

    def harmonic(p: float, r: float) -> float:
        if np.isnan(p) or np.isnan(r):
            return float("nan")
        return 2.0 * p * r / (p + r) if p + r > 0 else 0.0

    # Overall (micro): sums over every class.
    total_c, total_p, total_g = n_correct.sum(), n_predicted.sum(), n_positive.sum()
    op = ratio(total_c, total_p)
    orec = total_c / total_g if total_g > 0 else float("nan")
    # Per class, over the classes with at least one positive (recall is undefined elsewhere).
    has_pos = n_positive > 0
    if has_pos.any():
        nc, npred, ng = n_correct[has_pos], n_predicted[has_pos], n_positive[has_pos]
        class_p = nc / np.maximum(npred, 1.0)  # ML-GCN: Np := 1 where a class has no prediction -> precision 0
        class_r = nc / ng
        cp, cr = float(class_p.mean()), float(class_r.mean())
        cf1_mean = float((2.0 * nc / (npred + ng)).mean())  # per-class F1 = 2 Nc / (Np + Ng); Ng > 0 here
    else:
        cp = cr = cf1_mean = float("nan")
    return {
        "OP": float(op),
        "OR": float(orec),
        "OF1": harmonic(op, orec),
        "CP": cp,
        "CR": cr,
        "CF1_mlgcn": harmonic(cp, cr),
        "CF1_meanf1": cf1_mean,
    }


def _f1_keys(values: Mapping[str, float], *, threshold, top_k, cf1_kinds, ignored_in_f1) -> dict[str, float]:
    """Name the plain values of `_f1_family` with their convention."""
    plain = f1_convention(threshold=threshold, top_k=top_k, ignored_in_f1=ignored_in_f1)
    out = {f"{name}[{plain}]": values[name] for name in ("OP", "OR", "OF1", "CP", "CR")}
    for cf1 in cf1_kinds:
        conv = f1_convention(threshold=threshold, top_k=top_k, cf1=cf1, ignored_in_f1=ignored_in_f1)
        out[f"CF1[{conv}]"] = values[f"CF1_{cf1}"]
    return out


# ----------------------------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------------------------


def compute_metrics(
    scores: Any,
    targets: Any,
    label_names: Sequence[str] | None,
    *,
    ap: str = DEFAULT_AP,
    cf1: str = DEFAULT_CF1,
    threshold: float = DEFAULT_THRESHOLD,
    top_k: int | None = DEFAULT_TOP_K,
    ignored_in_f1: str = DEFAULT_IGNORED_IN_F1,
    decisions: Any = None,
) -> dict[str, Any]:
    """Every metric under one set of conventions, as a flat dict whose keys name them (module docstring).

    ``top_k=None`` leaves out the top-k F1 family and mAP@K. ``decisions`` (bool [N, L], a model's own decided
    label sets) adds the F1 family computed from them (``dec=beam`` keys), which `headline` then reports.
    """
    _check_choice("ap", ap, AP_CONVENTIONS)
    _check_choice("cf1", cf1, CF1_CONVENTIONS)
    _check_choice("ignored_in_f1", ignored_in_f1, IGNORED_IN_F1)
    scores, targets, names = check_inputs(scores, targets, label_names)
    ap_conv = ap_convention(ap)
    prepared = _Prepared(scores, targets)  # shared by the full ranking and the top-k ranking
    per_class = prepared.ap((ap,))[ap]
    no_pos = [name for name, value in zip(names, per_class) if np.isnan(value)]
    result: dict[str, Any] = {
        f"mAP[{ap_conv}]": _nan_mean(per_class),
        f"per_class_AP[{ap_conv}]": {
            name: (None if np.isnan(value) else float(value)) for name, value in zip(names, per_class)
        },
        "classes_without_positives": no_pos,
        "num_images": int(scores.shape[0]),
        "num_classes_with_positives": len(names) - len(no_pos),
    }
    values = _f1_family(scores, targets, threshold, None, ignored_in_f1)
    result.update(_f1_keys(values, threshold=threshold, top_k=None, cf1_kinds=(cf1,), ignored_in_f1=ignored_in_f1))
    if top_k is not None:
        mask = top_k_mask(scores, top_k)
        result[f"mAP@{int(top_k)}[{ap_conv}]"] = _nan_mean(prepared.ap((ap,), mask)[ap])
        values = _f1_family(scores, targets, threshold, mask, ignored_in_f1)
        result.update(
            _f1_keys(values, threshold=threshold, top_k=top_k, cf1_kinds=(cf1,), ignored_in_f1=ignored_in_f1)
        )
    if decisions is not None:
        result.update(_decision_f1(scores, targets, decisions, top_k, (cf1,), ignored_in_f1))
    return result


def check_decisions(decisions: Any, scores: np.ndarray) -> np.ndarray:
    decided = np.asarray(decisions)
    if decided.shape != scores.shape:
        raise ValueError(f"decisions have shape {decided.shape}, scores {scores.shape}")
    if decided.dtype != bool and not np.isin(decided, (0, 1)).all():
        raise ValueError("decisions must be 0/1 or boolean")
    return decided.astype(bool)


def decision_top_k(scores: np.ndarray, decided: np.ndarray, k: int) -> np.ndarray:
    """Each image's k highest-scoring decided labels (bool [N, L]): top-k applied to decided label sets."""
    return decided & top_k_mask(np.where(decided, scores, -1.0), k)


def _decision_f1(scores, targets, decisions, top_k, cf1_kinds, ignored_in_f1) -> dict[str, float]:
    decided = check_decisions(decisions, scores)
    out = _f1_keys(_f1_family(decided, targets, None, None, ignored_in_f1), threshold=None, top_k=None,
                   cf1_kinds=cf1_kinds, ignored_in_f1=ignored_in_f1)
    if top_k is not None:
        kept = decision_top_k(scores, decided, top_k)
        out.update(_f1_keys(_f1_family(kept, targets, None, None, ignored_in_f1), threshold=None, top_k=top_k,
                            cf1_kinds=cf1_kinds, ignored_in_f1=ignored_in_f1))
    return out


def headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The paper's headline numbers under the default conventions (non-interpolated AP, threshold 0.5, ML-GCN CF1,
    VOC difficult labels negative for F1); OF1 and CF1 from decided label sets where the run has them.

    Returns {"mAP", "OF1", "CF1", "per_class_AP"} read from a `compute_metrics` dict (or its metrics.json).
    """
    keys = DECISION_HEADLINE_KEYS if DECISION_HEADLINE_KEYS["OF1"] in metrics else HEADLINE_KEYS
    missing = [key for key in keys.values() if key not in metrics]
    if missing:
        raise KeyError(
            f"metrics were not computed under the default conventions; missing {', '.join(missing)} "
            "(call compute_metrics with ap='noninterp', cf1='mlgcn', threshold=0.5, ignored_in_f1='negative')"
        )
    return {short: metrics[key] for short, key in keys.items()}


def f1_source(metrics: Mapping[str, Any]) -> str:
    """Where a run's headline OF1/CF1 come from, in words."""
    return "decided label sets (beam search)" if DECISION_HEADLINE_KEYS["OF1"] in metrics else "scores >= 0.5"


def _sensitivity_rows(scores, targets, *, thresholds, top_k, suffix, decisions=None) -> list[tuple[str, str, float]]:
    """Rows (metric, convention, value) for one set of images, in a fixed order."""
    rows: list[tuple[str, str, float]] = []
    # One sort serves the three AP conventions; another the top-k ranking of mAP@K.
    prepared = _Prepared(scores, targets)
    full = prepared.ap(AP_CONVENTIONS)
    for ap in AP_CONVENTIONS:
        rows.append(("mAP", ap_convention(ap) + suffix, _nan_mean(full[ap])))
    mask = top_k_mask(scores, top_k) if top_k is not None else None
    if mask is not None:
        at_k = prepared.ap(AP_CONVENTIONS, mask)
        for ap in AP_CONVENTIONS:
            rows.append((f"mAP@{int(top_k)}", ap_convention(ap) + suffix, _nan_mean(at_k[ap])))
    # Counting ignored targets as negatives only changes anything where some are present.
    ignored_modes = IGNORED_IN_F1 if (targets == -1).any() else (DEFAULT_IGNORED_IN_F1,)
    for ignored in ignored_modes:
        for threshold in thresholds:
            for k, k_mask in ((None, None), (top_k, mask)) if mask is not None else ((None, None),):
                values = _f1_family(scores, targets, threshold, k_mask, ignored)
                named = _f1_keys(values, threshold=threshold, top_k=k, cf1_kinds=CF1_CONVENTIONS, ignored_in_f1=ignored)
                for key, value in named.items():
                    metric, convention = key[:-1].split("[", 1)
                    rows.append((metric, convention + suffix, value))
        if decisions is not None:
            for key, value in _decision_f1(scores, targets, decisions, top_k, CF1_CONVENTIONS, ignored).items():
                metric, convention = key[:-1].split("[", 1)
                rows.append((metric, convention + suffix, value))
    return rows


def convention_sensitivity(
    scores: Any,
    targets: Any,
    label_names: Sequence[str] | None = None,
    *,
    unannotated_mask: Any = None,
    thresholds: Sequence[float] = (0.5, 0.8),
    top_k: int | None = DEFAULT_TOP_K,
    decisions: Any = None,
) -> list[tuple[str, str, float]]:
    """The same scores under every convention, long format: rows ``(metric, convention, value)``
    (`conventions_csv` writes them as each run's conventions.csv).

    Rows, in this fixed order: mAP under ap=noninterp/interp/11point; mAP@K under the same; then for ignored
    targets excluded (and, only if any target is -1, counted negative), for each threshold, for all predictions
    and top-k: OP, OR, OF1, CP, CR, CF1 def=mlgcn, CF1 def=meanf1. ``metric[convention]`` is the key
    `compute_metrics` would use. If ``unannotated_mask`` (bool [N], e.g. COCO images without any annotation) marks
    any image, the whole block is repeated without those images, with ``,images=annotated`` appended to the
    convention (the first block always uses every image given).
    """
    scores, targets, _ = check_inputs(scores, targets, label_names)
    decided = None if decisions is None else check_decisions(decisions, scores)
    rows = _sensitivity_rows(scores, targets, thresholds=thresholds, top_k=top_k, suffix="", decisions=decided)
    if unannotated_mask is not None:
        unannotated = np.asarray(unannotated_mask, dtype=bool).reshape(-1)
        if unannotated.shape[0] != scores.shape[0]:
            raise ValueError(f"unannotated_mask: {unannotated.shape[0]} entries for {scores.shape[0]} images")
        keep = ~unannotated
        # Skip when nothing is unannotated (identical block) or nothing would be left.
        if unannotated.any() and keep.any():
            rows += _sensitivity_rows(
                scores[keep], targets[keep], thresholds=thresholds, top_k=top_k, suffix=",images=annotated",
                decisions=None if decided is None else decided[keep],
            )
    return rows


CONVENTION_COLUMNS = ("metric", "convention", "value")


def conventions_csv(rows: Sequence[tuple[str, str, float]]) -> str:
    """CSV text of `convention_sensitivity` rows: a header, floats as their shortest round-trip text, NaN empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CONVENTION_COLUMNS)
    for metric, convention, value in rows:
        writer.writerow([metric, convention, "" if math.isnan(value) else repr(float(value))])
    return out.getvalue()


# ----------------------------------------------------------------------------------------------------------------
# Gates of mixture-of-experts models
# ----------------------------------------------------------------------------------------------------------------

NEAR_ONE_HOT = 0.99  # a gate vector whose largest weight exceeds this routes the label to one expert


def gate_statistics(gates: Any) -> dict[str, float]:
    """How sharp the gates are: gates float [N, L, E] (rows sum to 1) -> plain numbers.

    ``mean_entropy``: mean over images and labels of H(w) = -sum_k w_k log w_k (nats; log E is uniform, 0 one-hot);
    ``mean_entropy_fraction_of_uniform``: the same divided by log E; ``near_one_hot_fraction``: share of the
    (image, label) gate vectors whose largest weight exceeds 0.99; ``labels_near_one_hot_fraction``: share of the
    labels whose largest weight, averaged over the images, exceeds 0.99.
    """
    w = np.asarray(gates, dtype=np.float64)
    if w.ndim != 3:
        raise ValueError(f"gates must be [N, L, E], got shape {w.shape}")
    entropy = -(w * np.log(np.clip(w, 1e-12, None))).sum(axis=2)  # [N, L]
    largest = w.max(axis=2)  # [N, L]
    return {
        "mean_entropy": float(entropy.mean()),
        "mean_entropy_fraction_of_uniform": float(entropy.mean() / np.log(w.shape[2])) if w.shape[2] > 1 else 0.0,
        "near_one_hot_fraction": float((largest > NEAR_ONE_HOT).mean()),
        "labels_near_one_hot_fraction": float((largest.mean(axis=0) > NEAR_ONE_HOT).mean()),
        "threshold": NEAR_ONE_HOT,
    }
