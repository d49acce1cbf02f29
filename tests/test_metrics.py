"""Tests of drmoe_repro.metrics and the `metrics` subcommand.

Three kinds: hand-computed answers (each states its arithmetic), random inputs against sklearn and against
straightforward per-class loops written here from the metrics' definitions, and hypothesis properties.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from drmoe_repro import metrics as M
from drmoe_repro.commands import metrics as cmd
from drmoe_repro.io import load_json, save_npz

TOL = 1e-9


def col(*values: float) -> np.ndarray:
    """A one-class score column [N, 1]."""
    return np.array(values, dtype=np.float64)[:, None]


def tcol(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int8)[:, None]


# ------------------------------------------------------------------------------------------------------------------
# Hand-computed AP
# ------------------------------------------------------------------------------------------------------------------

# Scores 0.9 (+), 0.8 (-), 0.8 (+), 0.3 (+): the two 0.8 items tie. With ties entering together the points are
# (R, P) = (1/3, 1), (2/3, 2/3), (1, 3/4).
TIE_SCORES = col(0.9, 0.8, 0.8, 0.3)
TIE_TARGETS = tcol(1, 0, 1, 1)


def test_ap_ties_enter_together():
    # Non-interpolated: (1 + 2/3 + 3/4) / 3 = 29/36. Breaking the tie positive-first would give (1 + 1 + 3/4)/3.
    assert M.average_precision(TIE_SCORES, TIE_TARGETS)[0] == pytest.approx(29 / 36, abs=TOL)
    # Same with the tied items in the other input order.
    swapped = M.average_precision(TIE_SCORES[[0, 2, 1, 3]], TIE_TARGETS[[0, 2, 1, 3]])[0]
    assert swapped == M.average_precision(TIE_SCORES, TIE_TARGETS)[0]
    assert swapped == pytest.approx(average_precision_score(TIE_TARGETS[:, 0], TIE_SCORES[:, 0]), abs=TOL)


def test_negative_zero_ties_with_zero_and_inputs_are_not_modified():
    # -0.0 == 0.0, so the two items tie: AP = 1/2 (the bit patterns differ; a careless sort would rank them apart).
    scores = col(0.0, -0.0)
    before = scores.copy()
    assert M.average_precision(scores, tcol(1, 0))[0] == pytest.approx(0.5, abs=TOL)
    assert M.average_precision(col(-0.0, 0.0), tcol(1, 0))[0] == pytest.approx(0.5, abs=TOL)
    assert np.array_equal(scores, before) and np.signbit(scores[1, 0])


def test_ap_interpolated_and_11_point_by_hand():
    # Envelope of P = [1, 2/3, 3/4] is [1, 3/4, 3/4]: all-point AP = (1 + 3/4 + 3/4) / 3 = 5/6.
    assert M.average_precision(TIE_SCORES, TIE_TARGETS, ap="interp")[0] == pytest.approx(5 / 6, abs=TOL)
    # 11-point: t = 0, .1, .2, .3 -> best P at R >= t is 1; t = .4 .. 1.0 (7 levels) -> 3/4. (4 + 7 * 3/4) / 11.
    assert M.average_precision(TIE_SCORES, TIE_TARGETS, ap="11point")[0] == pytest.approx(
        (4 + 7 * 0.75) / 11, abs=TOL
    )


def test_11_point_uses_exact_tenths():
    # 10 positives: +++ then 7 negatives then 7 positives. Recall is exactly 0.3 at precision 1.
    # Exact tenths: t <= 0.3 -> 1 (4 levels); t = 0.4 .. 1 -> best later precision 10/17. AP = (4 + 70/17) / 11.
    # (The VOC devkit's float 0.30000000000000004 would miss the point at 0.3 and give (3 + 80/17) / 11.)
    n = 17
    scores = col(*np.linspace(1.0, 0.0, n))
    targets = tcol(*([1] * 3 + [0] * 7 + [1] * 7))
    assert M.average_precision(scores, targets, ap="11point")[0] == pytest.approx((4 + 70 / 17) / 11, abs=TOL)


def test_interp_never_below_noninterp_and_differs():
    # Ranking -, +, +: P at the positives 1/2, 2/3; envelope 2/3, 2/3.
    scores, targets = col(0.9, 0.8, 0.7), tcol(0, 1, 1)
    assert M.average_precision(scores, targets)[0] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=TOL)
    assert M.average_precision(scores, targets, ap="interp")[0] == pytest.approx(2 / 3, abs=TOL)


def test_class_without_positives_left_out_and_listed():
    scores = np.array([[0.9, 0.8], [0.2, 0.1], [0.6, 0.7]])
    targets = np.array([[1, 0], [0, 0], [0, 0]], dtype=np.int8)
    result = M.compute_metrics(scores, targets, ["cat", "dog"])
    assert result["mAP[ap=noninterp]"] == pytest.approx(1.0, abs=TOL)  # only "cat" counts
    assert result["classes_without_positives"] == ["dog"]
    assert result["per_class_AP[ap=noninterp]"] == {"cat": 1.0, "dog": None}
    assert result["num_classes_with_positives"] == 1
    # Class means leave "dog" out too: "cat" predicts images 0 and 2 (P = 1/2, R = 1).
    assert result["CP[thr=0.5,ign=negative]"] == pytest.approx(0.5, abs=TOL)
    assert result["CR[thr=0.5,ign=negative]"] == pytest.approx(1.0, abs=TOL)
    # Overall counts keep "dog"'s two false positives: OP = 1 / 4.
    assert result["OP[thr=0.5,ign=negative]"] == pytest.approx(0.25, abs=TOL)


def test_ignored_targets_left_out_of_ap_and_f1():
    # Ranking 0.9 (-), 0.8 (ignored), 0.7 (+): AP over the two others = 1/2 (1/3 if the ignored one were negative).
    scores, targets = col(0.9, 0.8, 0.7), tcol(0, -1, 1)
    assert M.average_precision(scores, targets)[0] == pytest.approx(0.5, abs=TOL)
    # F1 at 0.5, everything predicted. Excluded: Np = 2, Nc = 1. Counted negative: Np = 3.
    excluded = M.compute_metrics(scores, targets, ["a"], top_k=None, ignored_in_f1="exclude")
    negative = M.compute_metrics(scores, targets, ["a"], top_k=None)  # the default: ML-GCN's
    assert excluded["OP[thr=0.5,ign=exclude]"] == pytest.approx(1 / 2, abs=TOL)
    assert negative["OP[thr=0.5,ign=negative]"] == pytest.approx(1 / 3, abs=TOL)
    assert negative["OR[thr=0.5,ign=negative]"] == excluded["OR[thr=0.5,ign=exclude]"] == 1.0
    assert negative["mAP[ap=noninterp]"] == excluded["mAP[ap=noninterp]"]  # AP always excludes them


# ------------------------------------------------------------------------------------------------------------------
# Hand-computed F1 family
# ------------------------------------------------------------------------------------------------------------------


def test_image_without_prediction_above_threshold():
    scores = np.array([[0.9, 0.2], [0.1, 0.3], [0.6, 0.7]])  # image 1 has no score >= 0.5
    targets = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.int8)
    result = M.compute_metrics(scores, targets, ["a", "b"], cf1="mlgcn", top_k=None)
    # a: Np 2, Nc 2, Ng 2. b: Np 1, Nc 1, Ng 2. OP = 3/3, OR = 3/4, OF1 = 6/7; CP = 1, CR = 3/4, CF1 = 6/7.
    assert result["OP[thr=0.5,ign=negative]"] == pytest.approx(1.0, abs=TOL)
    assert result["OR[thr=0.5,ign=negative]"] == pytest.approx(0.75, abs=TOL)
    assert result["OF1[thr=0.5,ign=negative]"] == pytest.approx(6 / 7, abs=TOL)
    assert result["CR[thr=0.5,ign=negative]"] == pytest.approx(0.75, abs=TOL)
    assert result["CF1[def=mlgcn,thr=0.5,ign=negative]"] == pytest.approx(6 / 7, abs=TOL)
    # Mean of per-class F1: (1 + 2/3) / 2 = 5/6.
    mean_f1 = M.compute_metrics(scores, targets, ["a", "b"], cf1="meanf1", top_k=None)
    assert mean_f1["CF1[def=meanf1,thr=0.5,ign=negative]"] == pytest.approx(5 / 6, abs=TOL)


def test_mlgcn_np_equals_one_rule():
    # a: predicted in all 3 images, 1 positive -> P 1/3, R 1, F1 1/2. b: 1 positive, never predicted -> Np := 1,
    # P 0, R 0, F1 0. c: perfect -> P 1, R 1.
    scores = np.array([[0.9, 0.1, 0.9], [0.8, 0.2, 0.1], [0.7, 0.3, 0.1]])
    targets = np.array([[1, 1, 1], [0, 0, 0], [0, 0, 0]], dtype=np.int8)
    values = M.f1_family(scores, targets)
    assert values["CP"] == pytest.approx((1 / 3 + 0 + 1) / 3, abs=TOL)  # 4/9: b counts as precision 0
    assert values["CR"] == pytest.approx(2 / 3, abs=TOL)
    assert values["CF1_mlgcn"] == pytest.approx(8 / 15, abs=TOL)  # 2 (4/9)(2/3) / (4/9 + 2/3)
    assert values["CF1_meanf1"] == pytest.approx(0.5, abs=TOL)  # (1/2 + 0 + 1) / 3


def test_top3_counting():
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.2], [0.4, 0.3, 0.95, 0.1, 0.55]])
    targets = np.array([[1, 0, 0, 1, 0], [0, 0, 1, 0, 1]], dtype=np.int8)
    result = M.compute_metrics(scores, targets, list("abcde"), top_k=3)
    # Top 3: image 0 -> a, b, c (all >= .5); image 1 -> c, e, a, but a (0.4) is below the threshold.
    # Np = 3 + 2 = 5, Nc = 1 (a) + 2 (c, e) = 3, Ng = 4.
    assert result["OP[top3,thr=0.5,ign=negative]"] == pytest.approx(3 / 5, abs=TOL)
    assert result["OR[top3,thr=0.5,ign=negative]"] == pytest.approx(3 / 4, abs=TOL)
    # Without top-k image 0 also predicts d (0.6, a positive): Np 6, Nc 4.
    assert result["OP[thr=0.5,ign=negative]"] == pytest.approx(4 / 6, abs=TOL)
    assert result["OR[thr=0.5,ign=negative]"] == pytest.approx(1.0, abs=TOL)


def test_top_k_ties_go_to_lower_class_index():
    scores = np.array([[0.5, 0.7, 0.5, 0.5, 0.9]])
    mask = M.top_k_mask(scores, 3)
    assert mask.tolist() == [[True, True, False, False, True]]
    # The rule is per image: another image above it changes nothing.
    both = M.top_k_mask(np.vstack([[0.1, 0.2, 0.3, 0.4, 0.5], scores[0]]), 3)
    assert both[1].tolist() == mask[0].tolist()
    assert M.top_k_mask(scores, 9).all()


def test_map_at_k_by_hand():
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.2, 0.6, 0.3, 0.5]])
    targets = np.array([[1, 0, 1, 0], [1, 1, 0, 0]], dtype=np.int8)
    result = M.compute_metrics(scores, targets, list("abcd"), top_k=2)
    # Top 2: image 0 -> a, b; image 1 -> b, d. a: only image 0 ranked (a hit), image 1's positive missed ->
    # AP = 1/2. b: ranked 0.8 (-), 0.6 (+) -> 1/2. c: its positive (image 0, 3rd place) not retrieved -> 0.
    # d: no positive, left out. mAP@2 = 1/3; full mAP = (1 + 1/2 + 1) / 3.
    assert result["mAP@2[ap=noninterp]"] == pytest.approx(1 / 3, abs=TOL)
    assert result["mAP[ap=noninterp]"] == pytest.approx(5 / 6, abs=TOL)
    per_class = M.average_precision(scores, targets, top_k=2)
    np.testing.assert_allclose(per_class[:3], [0.5, 0.5, 0.0], atol=TOL)
    assert np.isnan(per_class[3])


def test_key_names_and_headline():
    scores = np.array([[0.9, 0.2], [0.4, 0.7]])
    targets = np.array([[1, 0], [0, 1]], dtype=np.int8)
    result = M.compute_metrics(scores, targets, ["a", "b"])
    expected = {
        "mAP[ap=noninterp]", "per_class_AP[ap=noninterp]", "mAP@3[ap=noninterp]", "classes_without_positives",
        "num_images", "num_classes_with_positives",
        "OP[thr=0.5,ign=negative]", "OR[thr=0.5,ign=negative]", "OF1[thr=0.5,ign=negative]", "CP[thr=0.5,ign=negative]", "CR[thr=0.5,ign=negative]", "CF1[def=mlgcn,thr=0.5,ign=negative]",
        "OP[top3,thr=0.5,ign=negative]", "OR[top3,thr=0.5,ign=negative]", "OF1[top3,thr=0.5,ign=negative]", "CP[top3,thr=0.5,ign=negative]", "CR[top3,thr=0.5,ign=negative]",
        "CF1[def=mlgcn,top3,thr=0.5,ign=negative]",
    }
    assert set(result) == expected
    top = M.headline(result)
    assert top == {"mAP": 1.0, "OF1": 1.0, "CF1": 1.0, "per_class_AP": {"a": 1.0, "b": 1.0}}
    with pytest.raises(KeyError, match="default conventions"):
        M.headline(M.compute_metrics(scores, targets, ["a", "b"], ap="interp"))


@pytest.mark.parametrize(
    "scores, targets, match",
    [
        (np.array([[0.5, np.nan]]), np.array([[1, 0]]), "scores: 1 NaN"),
        (np.array([[0.5, 1.5]]), np.array([[1, 0]]), "outside"),
        (np.array([0.5, 0.5]), np.array([1, 0]), "2-d"),
        (np.array([[0.5, 0.5]]), np.array([[1, 0, 0]]), "targets: shape"),
        (np.array([[0.5, 0.5]]), np.array([[1, 2]]), "targets: 1 value"),
    ],
)
def test_bad_inputs_name_the_key(scores, targets, match):
    with pytest.raises(ValueError, match=match):
        M.compute_metrics(scores, targets, None)


# ------------------------------------------------------------------------------------------------------------------
# Random inputs against sklearn and against per-class reference loops
# ------------------------------------------------------------------------------------------------------------------


def random_problem(seed: int, n: int = 300, n_labels: int = 9, levels: int | None = 12, ignored: float = 0.0):
    """Scores with many ties (levels distinct values) or none (levels=None); some rare classes."""
    rng = np.random.default_rng(seed)
    prevalence = rng.uniform(0.01, 0.4, size=n_labels)
    targets = (rng.random((n, n_labels)) < prevalence).astype(np.int8)
    raw = np.clip(rng.normal(0.35, 0.2, size=targets.shape) + 0.25 * targets, 0.0, 1.0)
    scores = np.round(raw * (levels - 1)) / (levels - 1) if levels else raw
    if ignored:
        targets[rng.random(targets.shape) < ignored] = -1
    return scores.astype(np.float32), targets


def reference_counts(scores, targets, threshold, top_k=None, ignored="exclude"):
    """Nc, Np, Ng per class, counted image by image and class by class."""
    n, n_labels = scores.shape
    nc, npred, ng = np.zeros(n_labels), np.zeros(n_labels), np.zeros(n_labels)
    for i in range(n):
        kept = set(range(n_labels))
        if top_k is not None:
            order = sorted(range(n_labels), key=lambda c: (-float(scores[i, c]), c))
            kept = set(order[:top_k])
        for c in range(n_labels):
            t = int(targets[i, c])
            if t == -1 and ignored == "exclude":
                continue
            predicted = c in kept and float(scores[i, c]) >= threshold
            npred[c] += predicted
            nc[c] += predicted and t == 1
            ng[c] += t == 1
    return nc, npred, ng


def reference_f1(scores, targets, threshold, top_k=None, ignored="exclude"):
    """The suite's F1 definitions written out: ML-GCN's formulas over the classes with positives for the class means,
    except OP's denominator (test_overall_precision_counts_predictions_as_they_are_unlike_ml_gcns_code)."""
    nc, npred, ng = reference_counts(scores, targets, threshold, top_k, ignored)
    op = nc.sum() / npred.sum() if npred.sum() else 0.0
    orec = nc.sum() / ng.sum()
    keep = ng > 0
    cp = np.mean([nc[c] / (npred[c] if npred[c] else 1.0) for c in np.flatnonzero(keep)])
    cr = np.mean([nc[c] / ng[c] for c in np.flatnonzero(keep)])
    f1s = [2 * nc[c] / (npred[c] + ng[c]) for c in np.flatnonzero(keep)]
    return {
        "OP": op, "OR": orec, "OF1": 2 * op * orec / (op + orec) if op + orec else 0.0,
        "CP": cp, "CR": cr, "CF1_mlgcn": 2 * cp * cr / (cp + cr) if cp + cr else 0.0, "CF1_meanf1": np.mean(f1s),
    }


def reference_ap_interp(scores, labels, eleven=False):
    """VOC-style interpolated AP for one class, with ties entering together (points at distinct scores)."""
    thresholds = np.unique(scores)[::-1]
    n_pos = labels.sum()
    recall, precision = [], []
    for t in thresholds:
        predicted = scores >= t
        tp = (predicted & labels).sum()
        recall.append(tp / n_pos)
        precision.append(tp / predicted.sum())
    recall, precision = np.array(recall), np.array(precision)
    if eleven:
        return np.mean([precision[recall >= k / 10 - 1e-12].max(initial=0.0) for k in range(11)])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * envelope))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("levels", [12, None])
def test_ap_matches_sklearn(seed, levels):
    scores, targets = random_problem(seed, levels=levels, ignored=0.05)
    ours = M.average_precision(scores, targets)
    for c in range(scores.shape[1]):
        keep = targets[:, c] != -1
        labels = targets[keep, c] == 1
        if labels.any():
            assert ours[c] == pytest.approx(average_precision_score(labels, scores[keep, c]), abs=TOL)
        else:
            assert np.isnan(ours[c])


@pytest.mark.parametrize("seed", range(3))
def test_interpolated_ap_matches_reference_loop(seed):
    scores, targets = random_problem(seed, n=120, levels=15)
    for kind, eleven in (("interp", False), ("11point", True)):
        ours = M.average_precision(scores, targets, ap=kind)
        for c in range(scores.shape[1]):
            labels = targets[:, c] == 1
            if labels.any():
                expected = reference_ap_interp(scores[:, c].astype(np.float64), labels, eleven)
                assert ours[c] == pytest.approx(expected, abs=TOL)


def test_map_at_k_matches_reference_loop():
    scores, targets = random_problem(11, n=150, levels=10, ignored=0.05)
    k = 3
    ours = M.average_precision(scores, targets, top_k=k)
    mask = np.zeros(scores.shape, dtype=bool)
    for i in range(scores.shape[0]):
        order = sorted(range(scores.shape[1]), key=lambda c: (-float(scores[i, c]), c))
        mask[i, order[:k]] = True
    for c in range(scores.shape[1]):
        n_pos = int((targets[:, c] == 1).sum())
        keep = mask[:, c] & (targets[:, c] != -1)
        labels = targets[keep, c] == 1
        if n_pos == 0:
            assert np.isnan(ours[c])
        elif not labels.any():
            assert ours[c] == 0.0
        else:
            # AP over the retrieved items, scaled by the share of positives that were retrieved at all.
            expected = average_precision_score(labels, scores[keep, c]) * labels.sum() / n_pos
            assert ours[c] == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("threshold", [0.5, 0.8])
def test_f1_family_matches_sklearn(seed, threshold):
    scores, targets = random_problem(seed, levels=None)
    targets[:, -1] = 0  # one class without positives: in micro sums, out of the class means
    predicted = scores.astype(np.float64) >= threshold
    ours = M.f1_family(scores, targets, threshold=threshold)
    p, r, f, _ = precision_recall_fscore_support(targets, predicted, average="micro", zero_division=0)
    assert (ours["OP"], ours["OR"], ours["OF1"]) == pytest.approx((p, r, f), abs=TOL)
    with_pos = np.flatnonzero((targets == 1).any(axis=0))
    p, r, f, _ = precision_recall_fscore_support(
        targets, predicted, average="macro", labels=with_pos, zero_division=0
    )
    assert (ours["CP"], ours["CR"], ours["CF1_meanf1"]) == pytest.approx((p, r, f), abs=TOL)
    assert ours["CF1_mlgcn"] == pytest.approx(2 * p * r / (p + r), abs=TOL)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("top_k", [None, 3])
@pytest.mark.parametrize("ignored", ["exclude", "negative"])
def test_f1_family_matches_reference_loop(seed, top_k, ignored):
    scores, targets = random_problem(seed, n=120, levels=8, ignored=0.08)
    ours = M.f1_family(scores, targets, threshold=0.5, top_k=top_k, ignored_in_f1=ignored)
    expected = reference_f1(scores, targets, 0.5, top_k, ignored)
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=TOL), name


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=M.CONVENTION_COLUMNS)


def test_convention_sensitivity_layout_and_consistency():
    scores, targets = random_problem(3, ignored=0.05)
    names = [f"l{i}" for i in range(scores.shape[1])]
    unannotated = ~(targets == 1).any(axis=1)
    table = _frame(M.convention_sensitivity(scores, targets, names, unannotated_mask=unannotated))
    assert list(table.columns) == ["metric", "convention", "value"]
    # Every row is the compute_metrics value of the key metric[convention].
    for ap in M.AP_CONVENTIONS:
        full = M.compute_metrics(scores, targets, names, ap=ap, cf1="meanf1", threshold=0.8, ignored_in_f1="negative")
        lookup = {f"{m}[{c}]": v for m, c, v in table.itertuples(index=False)}
        for key, value in full.items():
            if isinstance(value, float):
                assert lookup[key] == value, key
    assert unannotated.any()
    annotated = table[table["convention"].str.endswith(",images=annotated")]
    assert len(annotated) == len(table) // 2
    # Without the unannotated images every metric equals the metric of the remaining images.
    alone = M.compute_metrics(scores[~unannotated], targets[~unannotated], names)
    lookup = {f"{m}[{c}]": v for m, c, v in annotated.itertuples(index=False)}
    assert lookup["mAP[ap=noninterp,images=annotated]"] == alone["mAP[ap=noninterp]"]
    assert lookup["CF1[def=mlgcn,top3,thr=0.5,ign=negative,images=annotated]"] == alone["CF1[def=mlgcn,top3,thr=0.5,ign=negative]"]
    # Ignored targets present -> both treatments listed; in a fixed order (same CSV bytes twice).
    assert table["convention"].str.contains("ign=exclude").any()
    again = _frame(M.convention_sensitivity(scores, targets, names, unannotated_mask=unannotated))
    assert table.to_csv(index=False) == again.to_csv(index=False)


def test_no_ignored_no_unannotated_rows():
    scores, targets = random_problem(5, n=200, n_labels=4)
    targets[:, 0] = 1  # every image annotated
    table = _frame(M.convention_sensitivity(scores, targets, None, unannotated_mask=np.zeros(len(targets), bool)))
    assert not table["convention"].str.contains("ign=exclude|images=").any()  # no ignored target, all annotated
    # 3 mAP + 3 mAP@3 + 2 thresholds x (all, top3) x 7 F1-family rows.
    assert len(table) == 6 + 2 * 2 * 7


# ------------------------------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------------------------------


@st.composite
def problems(draw):
    n = draw(st.integers(2, 14))
    n_labels = draw(st.integers(1, 5))
    # A few distinct values so that ties are common; 0 and 1 included.
    values = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0])
    scores = np.array(draw(st.lists(values, min_size=n * n_labels, max_size=n * n_labels))).reshape(n, n_labels)
    targets = np.array(
        draw(st.lists(st.sampled_from([1, 0, 0, -1]), min_size=n * n_labels, max_size=n * n_labels)), dtype=np.int8
    ).reshape(n, n_labels)
    return scores, targets


def same(a, b) -> bool:
    """Exact equality of metric dicts, with NaN equal to NaN."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@settings(max_examples=60, deadline=None)
@given(problems(), st.randoms(use_true_random=False))
def test_permuting_images_changes_nothing(problem, rnd):
    scores, targets = problem
    order = list(range(len(scores)))
    rnd.shuffle(order)
    names = [f"c{i}" for i in range(scores.shape[1])]
    for ap in M.AP_CONVENTIONS:
        # Bit for bit: the implementation reads every value at tie-group ends, which do not depend on input order.
        assert same(
            M.compute_metrics(scores, targets, names, ap=ap, top_k=2),
            M.compute_metrics(scores[order], targets[order], names, ap=ap, top_k=2),
        )


@settings(max_examples=60, deadline=None)
@given(problems())
def test_perfect_ranking_gives_ap_one(problem):
    _, targets = problem
    # Every positive strictly above every negative (ignored ones anywhere).
    rng = np.random.default_rng(0)
    scores = np.where(targets == 1, 0.9, np.where(targets == 0, 0.1, rng.random(targets.shape)))
    for ap in M.AP_CONVENTIONS:
        values = M.average_precision(scores, targets, ap=ap)
        has_pos = (targets == 1).any(axis=0)
        assert np.all(values[has_pos] == 1.0)
        assert np.all(np.isnan(values[~has_pos]))


@settings(max_examples=60, deadline=None)
@given(problems(), st.randoms(use_true_random=False))
def test_permuting_classes_permutes_per_class_ap(problem, rnd):
    scores, targets = problem
    names = [f"c{i}" for i in range(scores.shape[1])]
    order = list(range(len(names)))
    rnd.shuffle(order)
    for ap in M.AP_CONVENTIONS:
        key = f"per_class_AP[ap={ap}]"
        before = M.compute_metrics(scores, targets, names, ap=ap)[key]
        after = M.compute_metrics(scores[:, order], targets[:, order], [names[c] for c in order], ap=ap)[key]
        assert same(before, after)
        assert list(after) == [names[c] for c in order]


@settings(max_examples=40, deadline=None)
@given(problems())
def test_interp_at_least_noninterp(problem):
    scores, targets = problem
    plain = M.average_precision(scores, targets)
    interp = M.average_precision(scores, targets, ap="interp")
    ok = ~np.isnan(plain)
    assert np.all(interp[ok] >= plain[ok] - 1e-12)
    assert np.all((plain[ok] >= 0) & (plain[ok] <= 1 + 1e-12))


# ------------------------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------------------------


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="drmoe-repro metrics")
    cmd.configure_parser(parser)
    return cmd.run(parser.parse_args(argv))


def write_predictions(path, scores, targets, override=None):
    """A predictions.npz as the README's "Outputs" specifies; ``override`` replaces arrays (None leaves one out)."""
    arrays = {
        "image_ids": np.array([f"img{i:04d}" for i in range(scores.shape[0])]),
        "label_names": np.array([f"label{c}" for c in range(scores.shape[1])]),
        "targets": targets,
        "scores": scores,
    }
    arrays.update(override or {})
    save_npz(path, **{k: v for k, v in arrays.items() if v is not None})


def test_cli_rescoring_gives_the_same_numbers(tmp_path, capsys):
    scores, targets = random_problem(7, ignored=0.05)
    targets[:3] = 0  # a few images without any positive
    path = tmp_path / "predictions.npz"
    write_predictions(path, scores, targets)
    out, sens = tmp_path / "m.json", tmp_path / "s.csv"
    assert cli([str(path), "--out", str(out), "--sensitivity-out", str(sens), "--per-class"]) == 0
    printed = capsys.readouterr().out
    expected = M.compute_metrics(scores, targets, [f"label{c}" for c in range(scores.shape[1])])
    written = load_json(out)
    assert written == json.loads(json.dumps(expected))
    assert f"{100 * expected['mAP[ap=noninterp]']:.2f}" in printed and "label0" in printed
    first = sens.read_bytes()
    assert b"images=annotated" in first and b"ign=exclude" in first
    assert cli([str(path), "--sensitivity-out", str(sens)]) == 0
    assert sens.read_bytes() == first  # deterministic bytes

    # Options reach compute_metrics and name the keys.
    assert cli([str(path), "--ap", "11point", "--cf1", "meanf1", "--threshold", "0.8", "--top-k", "0",
                "--ignored-in-f1", "exclude", "--out", str(out)]) == 0
    written = load_json(out)
    assert "mAP[ap=11point]" in written and "CF1[def=meanf1,thr=0.8,ign=exclude]" in written
    assert not any("top" in key or "@" in key for key in written)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"targets": None}, "missing key 'targets'"),
        ({"scores": None}, "missing key 'scores'"),
        ({"scores": np.full((4, 3), np.nan, dtype=np.float32)}, "key 'scores': 12 NaN"),
        ({"scores": np.full((4, 3), 2.0, dtype=np.float32)}, "key 'scores'"),
        ({"scores": np.zeros((4, 2), dtype=np.float32)}, "key 'targets': shape"),
        ({"image_ids": np.array(["a", "b"])}, "key 'image_ids'"),
        ({"label_names": np.array(["x", "y"])}, "key 'label_names'"),
    ],
)
def test_cli_bad_file_names_file_and_key(tmp_path, capsys, override, message):
    path = tmp_path / "bad.npz"
    scores = np.full((4, 3), 0.5, dtype=np.float32)
    targets = np.array([[1, 0, 0]] * 4, dtype=np.int8)
    write_predictions(path, scores, targets, override)
    assert cli([str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


def test_overall_precision_counts_predictions_as_they_are_unlike_ml_gcns_code():
    """Three images, two classes. Class 0: one positive, predicted once, right. Class 1: one positive, never
    predicted. OP = 1/1 here; ML-GCN's util.py:281-283 sets Np := 1 for class 1 before summing: OP = 1/2 there.
    Everything else agrees: OR 1/2, CP (1 + 0)/2, CR 1/2 (paper/ambiguities.yaml: overall-precision)."""
    scores = np.array([[0.9, 0.1], [0.1, 0.2], [0.1, 0.3]], dtype=np.float32)
    targets = np.array([[1, 0], [0, 1], [0, 0]], dtype=np.int8)
    ours = M.f1_family(scores, targets)
    assert (ours["OP"], ours["OR"], ours["CP"], ours["CR"]) == (1.0, 0.5, 0.5, 0.5)
    assert ours["OF1"] == pytest.approx(2 / 3) and ours["CF1_mlgcn"] == pytest.approx(0.5)
    np_mlgcn = np.maximum(np.count_nonzero(scores >= 0.5, axis=0), 1)  # ML-GCN: Np[Np == 0] = 1, then the sums
    assert 1 / np_mlgcn.sum() == 0.5


def test_a_score_exactly_at_the_threshold_is_a_prediction():
    """ML-GCN predicts on logit >= 0, i.e. sigmoid >= 0.5: 0.5 itself counts, the float32 just below it does not."""
    below = np.nextafter(np.float32(0.5), np.float32(0))
    scores = np.array([[0.5, below], [0.875, 0.875], [0.75, 0.75]], dtype=np.float32)
    targets = np.array([[1, 1], [0, 0], [1, 1]], dtype=np.int8)
    ours = M.f1_family(scores, targets)
    assert (ours["CR"], ours["OP"]) == (0.75, 3 / 5)  # class 0 finds both positives, class 1 one of two
    higher = M.f1_family(scores, targets, threshold=0.75)  # 0.75 >= 0.75 (exact in binary): predicted
    assert higher["OR"] == 0.5 and higher["OP"] == 2 / 4


def test_f1_from_decided_label_sets_by_hand():
    """A model that decides label sets (CNN-RNN's beam search) is scored on them, not on its scores at 0.5."""
    scores = np.array([[0.9, 0.2, 0.6, 0.1], [0.3, 0.8, 0.7, 0.4]])
    targets = np.array([[1, 0, 1, 0], [0, 1, 0, 1]], dtype=np.int8)
    decisions = np.array([[1, 1, 0, 0], [0, 1, 1, 1]], dtype=bool)  # deliberately unlike scores >= 0.5
    result = M.compute_metrics(scores, targets, list("abcd"), top_k=2, decisions=decisions)
    # Decided: a (hit), b (miss) in image 0; b (hit), c (miss), d (hit) in image 1 -> Nc 3, Np 5, Ng 4.
    assert result["OP[dec=beam,ign=negative]"] == pytest.approx(3 / 5, abs=TOL)
    assert result["OR[dec=beam,ign=negative]"] == pytest.approx(3 / 4, abs=TOL)
    assert result["OF1[dec=beam,ign=negative]"] == pytest.approx(2 / 3, abs=TOL)
    # Per class: a 1/1, b 1/2, c 0/1, d 1/1 precision; recall a 1, b 1, c 0, d 1 -> CP 5/8, CR 3/4.
    assert result["CP[dec=beam,ign=negative]"] == pytest.approx(5 / 8, abs=TOL)
    assert result["CR[dec=beam,ign=negative]"] == pytest.approx(3 / 4, abs=TOL)
    # Top 2 of the decided labels by score: image 0 keeps a, b; image 1 keeps b (0.8), c (0.7), drops d (0.4).
    assert result["OP[top2,dec=beam,ign=negative]"] == pytest.approx(2 / 4, abs=TOL)
    assert result["OR[top2,dec=beam,ign=negative]"] == pytest.approx(2 / 4, abs=TOL)
    # The threshold family is still there, and the headline takes the decisions'.
    assert result["OF1[thr=0.5,ign=negative]"] != result["OF1[dec=beam,ign=negative]"]
    top = M.headline(result)
    assert top["OF1"] == result["OF1[dec=beam,ign=negative]"] and top["CF1"] == result[
        "CF1[def=mlgcn,dec=beam,ign=negative]"]
    assert M.f1_source(result).startswith("decided") and M.f1_source(M.compute_metrics(scores, targets, None)) == \
        "scores >= 0.5"


def test_decisions_in_the_convention_table():
    scores, targets = random_problem(11, n=60, n_labels=5, ignored=0.05)
    decisions = scores > 0.7
    table = _frame(M.convention_sensitivity(scores, targets, decisions=decisions))
    lookup = {f"{m}[{c}]": v for m, c, v in table.itertuples(index=False)}
    direct = M.compute_metrics(scores, targets, None, decisions=decisions, cf1="meanf1", ignored_in_f1="exclude")
    assert lookup["CF1[def=meanf1,dec=beam,ign=exclude]"] == direct["CF1[def=meanf1,dec=beam,ign=exclude]"]
    # Decisions equal to scores >= 0.7 give the threshold-0.7 numbers.
    same = M.compute_metrics(scores, targets, None, decisions=scores >= 0.7, threshold=0.7, top_k=None)
    assert same["OF1[dec=beam,ign=negative]"] == same["OF1[thr=0.7,ign=negative]"]


def test_gate_statistics_by_hand():
    gates = np.array([[[1.0, 0.0], [0.5, 0.5]], [[0.995, 0.005], [0.5, 0.5]]])  # [N=2, L=2, E=2]
    stats = M.gate_statistics(gates)
    h_half, h_995 = np.log(2), -(0.995 * np.log(0.995) + 0.005 * np.log(0.005))
    assert stats["mean_entropy"] == pytest.approx((0 + h_half + h_995 + h_half) / 4, abs=1e-9)
    assert stats["mean_entropy_fraction_of_uniform"] == pytest.approx(stats["mean_entropy"] / np.log(2), abs=1e-12)
    assert stats["near_one_hot_fraction"] == 0.5  # (0, 0) and (1, 0) of the four
    assert stats["labels_near_one_hot_fraction"] == 0.5  # label 0: mean max 0.9975 > 0.99; label 1: 0.5
