"""Analyses the paper does not make but its claims call for, computed from the run directories of one profile.

1. Co-occurrence and shared experts (§3.10, §4.6: "higher weights to shared experts when labels are correlated").
   Per label, from the *training* labels (the label index `prepare` wrote; the test labels if it is missing):
     - ``cooccurrence``: the mean conditional probability mean_{j != i} P(j | i) = n_ij / n_i, i.e. how strongly
       the label's images carry the other labels (the primary measure);
     - ``frac_with_others``: P(at least one other label | i);
     - ``n_partners``: the number of labels j != i that ever co-occur with i.
   Against, from the test set, the label's mean total shared-expert weight sum_{j <= N_s} w_ij over the images
   where the label is positive (gates.npz; mean over seeds). Spearman's rho across labels with a permutation
   p-value (exact enumeration for n <= 8 labels, else 10,000 fixed-seed permutations; two-sided).
   Within images: the label's shared weight in images where it appears with at least one other label against
   images where it is the only label; per-label differences, their mean and a sign-flip permutation test (exact
   for n <= 16 labels). Positives are targets == 1 (VOC "difficult" labels count as absent here).
2. Heterogeneity and gains (§4.7, abstract: gains "particularly for labels with high heterogeneity"). The paper
   defines no measure. The proxy used here is the label's *context entropy*: the Shannon entropy (bits) of the
   set of other labels that accompany it, over its positive training images (the empty set counts as a context).
   A label seen in many different label combinations must share its features with many different neighbours,
   the situation in which negative transfer is expected; a label that mostly appears alone, or always with the
   same partner, has low entropy. ``n_partners`` is reported beside it. Both are computed from labels only (no
   backbone), so they are the same for every system. Spearman of heterogeneity vs the per-class AP gain
   DR-MoE - HSQ-static (percent points, mean over seeds). On the paper profile the paper's own Table 6 gains are
   also tested against the heterogeneity of the real VOC training labels.
3. Metric conventions: each headline run's conventions.csv (mean over seeds), and under which conventions the
   sign of DR-MoE - HSQ-static differs from the default convention's.
4. Uncertainty: 95% confidence intervals over seeds (Student t, n - 1 degrees of freedom; needs >= 2 seeds) and a
   paired bootstrap over test images of mAP(DR-MoE) - mAP(HSQ-static): the same resampled images for both systems
   (and every seed), 1,000 resamples from a fixed-seed generator, AP recomputed with `metrics.average_precision`
   (classes without a positive in a resample leave the mean for both systems); the seed-mean difference per
   resample; reported: observed difference, bootstrap mean, percentile 95% interval, fraction of resamples <= 0.

Everything is deterministic: fixed seeds, sorted keys, no clocks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from drmoe_repro import metrics
from drmoe_repro.config import profile_of
from drmoe_repro.layout import (BASELINE, CONVENTIONS, GATES, METRIC_TABLES, PREDICTIONS, PROPOSED,
                                analysis_datasets, index_path, required_runs, run_file)
from drmoe_repro.io import load_npz
from drmoe_repro.paper.per_class import class_map, paper_per_class, per_class_ap, system_status
from drmoe_repro.paper.runs import read_runs

N_PERMUTATIONS = 10_000
PERMUTATION_SEED = 12345
N_BOOTSTRAP = 1000
BOOTSTRAP_SEED = 20240607
EXACT_SPEARMAN_MAX_N = 8
EXACT_SIGNFLIP_MAX_N = 16
HEADLINE_TABLES = (1, 2)
# The conventions the report shows side by side (each run's conventions.csv has every one).
KEY_CONVENTIONS = (
    ("mAP", "ap=noninterp"),
    ("mAP", "ap=interp"),
    ("mAP", "ap=11point"),
    ("mAP@3", "ap=noninterp"),
    ("OF1", "thr=0.5,ign=negative"),
    ("OF1", "thr=0.8,ign=negative"),
    ("CF1", "def=mlgcn,thr=0.5,ign=negative"),
    ("CF1", "def=meanf1,thr=0.5,ign=negative"),
    ("CF1", "def=mlgcn,thr=0.8,ign=negative"),
    ("OF1", "thr=0.5,ign=exclude"),
    ("CF1", "def=mlgcn,thr=0.5,ign=exclude"),
)
DEFAULT_CONVENTION = {"mAP": "ap=noninterp", "OF1": "thr=0.5,ign=negative", "CF1": "def=mlgcn,thr=0.5,ign=negative"}


# ----------------------------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------------------------


def _pearson(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson correlation along `axis` (vectorised for scipy's resamples); NaN where a side is constant."""
    x = x - x.mean(axis=axis, keepdims=True)
    y = y - y.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(axis=axis) / np.sqrt((x * x).sum(axis=axis) * (y * y).sum(axis=axis))


def _mean(d: np.ndarray, axis: int = -1) -> np.ndarray:
    return d.mean(axis=axis)


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return a.mean(axis=axis) - b.mean(axis=axis)


def _permutation_p(data: tuple, statistic, permutation_type: str, exact_max: int | None, n: int,
                   n_permutations: int, seed: int) -> tuple[float, str]:
    """Two-sided p-value from scipy.stats.permutation_test: every permutation where there are few (`exact_max`
    observations or fewer), else `n_permutations` from a seeded generator. Returns (p, how)."""
    exact = exact_max is not None and n <= exact_max
    result = stats.permutation_test(data, statistic, permutation_type=permutation_type, vectorized=True,
                                    n_resamples=np.inf if exact else n_permutations, alternative="two-sided",
                                    random_state=None if exact else np.random.default_rng(seed))
    how = f"exact ({result.null_distribution.size} {'sign vectors' if permutation_type == 'samples' else 'permutations'})" \
        if exact else f"permutation ({n_permutations}, seed {seed})"
    return float(result.pvalue), how


def spearman_test(x: Any, y: Any, *, n_permutations: int = N_PERMUTATIONS, seed: int = PERMUTATION_SEED) -> dict:
    """Spearman's rho of x and y over the pairs where both are finite, with a two-sided permutation p-value
    (scipy.stats.permutation_test over pairings: every permutation when there are at most EXACT_SPEARMAN_MAX_N pairs,
    else N_PERMUTATIONS seeded ones). NaN rho (and p) when fewer than 3 pairs or one side is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    n = int(keep.sum())
    result = {"rho": float("nan"), "p_value": float("nan"), "n": n, "method": "none"}
    if n < 3:
        return result
    rx, ry = stats.rankdata(x[keep]), stats.rankdata(y[keep])
    rho = float(_pearson(rx, ry))
    if not np.isfinite(rho):
        return result
    p, method = _permutation_p((rx, ry), _pearson, "pairings", EXACT_SPEARMAN_MAX_N, n, n_permutations, seed)
    return {"rho": rho, "p_value": p, "n": n, "method": method}


def sign_flip_test(diffs: Any, *, n_permutations: int = N_PERMUTATIONS, seed: int = PERMUTATION_SEED) -> dict:
    """Mean of the finite paired differences and a two-sided sign-flip p-value (scipy.stats.permutation_test over
    the signs; exact for n <= EXACT_SIGNFLIP_MAX_N). NaN p with fewer than two differences (scipy's minimum; one
    difference could not be significant anyway: its two sign vectors give p = 1) or all of them zero."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    n = int(d.size)
    out = {"n": n, "mean_diff": float(d.mean()) if n else float("nan"), "n_positive": int((d > 0).sum()),
           "n_negative": int((d < 0).sum()), "p_value": float("nan"), "method": "none"}
    if n < 2 or not np.any(d):
        return out
    p, method = _permutation_p((d,), _mean, "samples", EXACT_SIGNFLIP_MAX_N, n, n_permutations, seed)
    out.update(p_value=p, method=method.replace("permutation (", "sign flips ("))
    return out


def t_interval(values: Any, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean over seeds; (NaN, NaN) with fewer than 2 values."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, df=v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean() - half), float(v.mean() + half)


# ----------------------------------------------------------------------------------------------------------------
# Label statistics (no model involved)
# ----------------------------------------------------------------------------------------------------------------


def label_statistics(targets: Any, label_names: list[str]) -> pd.DataFrame:
    """Per label: n_pos, cooccurrence, frac_with_others, n_partners, context_entropy (module docstring)."""
    pos = np.asarray(targets) == 1  # [N, L]
    n_labels = pos.shape[1]
    counts = pos.sum(axis=0).astype(np.float64)  # [L]
    co = pos.T.astype(np.int64) @ pos.astype(np.int64)  # [L, L] images with both i and j
    off = co.astype(np.float64).copy()
    np.fill_diagonal(off, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = off / counts[:, None]  # [L, L] P(j | i), row i
        cooccurrence = cond.sum(axis=1) / max(n_labels - 1, 1)
    others = pos.sum(axis=1) - 1  # [N] other positives of an image, for each of its positive labels
    rows = []
    for i, name in enumerate(label_names):
        mine = pos[:, i]
        n = int(mine.sum())
        if n == 0:
            rows.append((name, 0, np.nan, np.nan, 0, np.nan))
            continue
        context = pos[mine].copy()
        context[:, i] = False
        _, freq = np.unique(np.packbits(context, axis=1), axis=0, return_counts=True)
        p = freq / n
        entropy = float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0
        rows.append((name, n, float(cooccurrence[i]), float((others[mine] > 0).mean()),
                     int(np.count_nonzero(off[i])), entropy))
    frame = pd.DataFrame(rows, columns=["label", "n_pos", "cooccurrence", "frac_with_others", "n_partners",
                                        "context_entropy"])
    return frame.set_index("label")


def conditional_probabilities(targets: Any) -> np.ndarray:
    """[L, L] P(j | i) from the positive labels (row i; NaN rows for labels without positives; diagonal 1)."""
    pos = np.asarray(targets) == 1
    co = pos.T.astype(np.float64) @ pos.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return co / np.diag(co)[:, None]


def training_labels(profile: str, dataset: str) -> tuple[np.ndarray, list[str]] | None:
    """(targets, label names) of the data set's training split from `prepare`'s label index, or None."""
    path = index_path(profile, dataset, "train")
    if not path.exists():
        return None
    data = load_npz(path)
    return data["targets"], [str(n) for n in data["label_names"].tolist()]


# ----------------------------------------------------------------------------------------------------------------
# Run loading
# ----------------------------------------------------------------------------------------------------------------


def load_runs(profile: str, dataset: str, system: str, seeds: list[int], gates: bool = False
              ) -> tuple[dict[int, dict], list[str]]:
    """{seed: predictions.npz (+ "gates", "expert_names" from gates.npz)} for the seeds whose files exist."""
    runs = read_runs(profile, dataset, system, seeds, (PREDICTIONS, GATES) if gates else (PREDICTIONS,))
    found = {}
    for seed, files in runs.found.items():
        run = dict(files[PREDICTIONS])
        if gates:
            g = files[GATES]
            if g["image_ids"].tolist() != run["image_ids"].tolist():
                raise ValueError(f"{dataset}/{system} seed {seed}: gates.npz's image_ids differ from predictions.npz")
            run["gates"], run["expert_names"] = g["gates"], [str(e) for e in g["expert_names"].tolist()]
        found[seed] = run
    return found, runs.missing


def shared_weight(gates: np.ndarray, expert_names: list[str]) -> np.ndarray:
    """[N, L] total weight of the shared experts (names starting with "shared")."""
    shared = np.array([name.startswith("shared") for name in expert_names])
    return np.asarray(gates, dtype=np.float64)[:, :, shared].sum(axis=2)


# ----------------------------------------------------------------------------------------------------------------
# 1. Co-occurrence vs shared experts
# ----------------------------------------------------------------------------------------------------------------


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Column means of values [N, L] over the rows where mask [N, L] is True; NaN where none."""
    count = mask.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (values * mask).sum(axis=0) / np.maximum(count, 1), np.nan)


def cooccurrence_vs_shared(config: dict, profile: str, dataset: str, system: str = PROPOSED) -> dict:
    prof = profile_of(config, profile)
    seeds = list(prof["seeds"])
    out: dict[str, Any] = {"dataset": dataset, "system": system, "seeds": [], "missing": []}
    status = system_status(config, system)
    if status is not None:
        out["missing"] = [status]
        return out
    runs, missing = load_runs(profile, dataset, system, seeds, gates=True)
    out["missing"] = missing
    if missing or not runs:
        return out
    out["seeds"] = sorted(runs)
    first = runs[min(runs)]
    names = [str(n) for n in first["label_names"].tolist()]
    test_targets = first["targets"]
    train = training_labels(profile, dataset)
    if train is not None and train[1] == names:
        label_stats, out["cooccurrence_source"] = label_statistics(train[0], names), "training labels"
    else:
        label_stats, out["cooccurrence_source"] = label_statistics(test_targets, names), "test labels"

    pos = test_targets == 1  # [N, L]
    alone = pos & (pos.sum(axis=1, keepdims=True) == 1)
    with_others = pos & (pos.sum(axis=1, keepdims=True) > 1)
    per_seed_mean, per_seed_with, per_seed_alone = [], [], []
    pooled = {"with_others": [], "alone": []}
    for seed in out["seeds"]:
        shared = shared_weight(runs[seed]["gates"], runs[seed]["expert_names"])  # [N, L]
        per_seed_mean.append(_masked_mean(shared, pos))
        per_seed_with.append(_masked_mean(shared, with_others))
        per_seed_alone.append(_masked_mean(shared, alone))
        pooled["with_others"].append(float(shared[with_others].mean()) if with_others.any() else np.nan)
        pooled["alone"].append(float(shared[alone].mean()) if alone.any() else np.nan)
    labels = label_stats.copy()
    labels["n_test_pos"] = pos.sum(axis=0)
    labels["shared_weight"] = np.mean(per_seed_mean, axis=0)
    labels["shared_with_others"] = np.mean(per_seed_with, axis=0)
    labels["shared_alone"] = np.mean(per_seed_alone, axis=0)
    labels["n_test_with_others"] = with_others.sum(axis=0)
    labels["n_test_alone"] = alone.sum(axis=0)
    out["labels"] = labels
    out["spearman_cooccurrence"] = spearman_test(labels["cooccurrence"], labels["shared_weight"])
    out["spearman_frac_with_others"] = spearman_test(labels["frac_with_others"], labels["shared_weight"])
    out["within"] = sign_flip_test(labels["shared_with_others"] - labels["shared_alone"])
    out["pooled"] = {"with_others": float(np.mean(pooled["with_others"])), "alone": float(np.mean(pooled["alone"])),
                     "n_with_others": int(with_others.sum()), "n_alone": int(alone.sum())}
    out["example"] = _bicycle_person(test_targets, names, runs, out["seeds"])
    return out


def _bicycle_person(targets: np.ndarray, names: list[str], runs: dict, seeds: list[int]) -> dict | None:
    """The paper's own example (§1, §4.6): shared weight of bicycle (and person) in images holding both, vs
    bicycle images with no other label, with a two-sample permutation test of bicycle's weight (per image, mean
    over seeds). None if the data set lacks either label."""
    if "bicycle" not in names or "person" not in names:
        return None
    b, p = names.index("bicycle"), names.index("person")
    pos = targets == 1
    both = pos[:, b] & pos[:, p]
    bike_alone = pos[:, b] & (pos.sum(axis=1) == 1)
    shared = np.mean([shared_weight(runs[s]["gates"], runs[s]["expert_names"]) for s in seeds], axis=0)  # [N, L]
    res = {"n_both": int(both.sum()), "n_bicycle_alone": int(bike_alone.sum())}
    for key, mask, col in (("bicycle_with_person", both, b), ("person_with_bicycle", both, p),
                           ("bicycle_alone", bike_alone, b)):
        res[key] = float(shared[mask, col].mean()) if mask.any() else float("nan")
    res["p_value"] = permutation_two_sample(shared[both, b], shared[bike_alone, b])
    return res


def permutation_two_sample(a: Any, b: Any, *, n_permutations: int = N_PERMUTATIONS,
                           seed: int = PERMUTATION_SEED) -> float:
    """Two-sided permutation p-value of mean(a) - mean(b) (scipy.stats.permutation_test, independent samples);
    NaN if either sample has fewer than two values (scipy's minimum) or all values are equal."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return float("nan")
    pooled = np.concatenate([a, b])
    if np.all(pooled == pooled[0]):
        return float("nan")
    p, _ = _permutation_p((a, b), _mean_difference, "independent", None, pooled.size, n_permutations, seed)
    return p


# ----------------------------------------------------------------------------------------------------------------
# 2. Heterogeneity vs per-class gain
# ----------------------------------------------------------------------------------------------------------------


def per_class_gain(config: dict, profile: str, dataset: str) -> tuple[pd.DataFrame | None, list[str]]:
    """Per label: AP of HSQ-static and DR-MoE (percent, mean over seeds) and gain = DR-MoE - HSQ-static.

    None (and the reasons) unless every seed of both systems has predictions.
    """
    seeds = list(profile_of(config, profile)["seeds"])
    frames, missing = {}, []
    for system in (BASELINE, PROPOSED):
        status = system_status(config, system)
        if status is not None:
            missing.append(f"{system}: {status}")
            continue
        frame, absent = per_class_ap(profile, dataset, system, seeds)
        missing += absent
        frames[system] = frame
    if missing:
        return None, missing
    if list(frames[BASELINE].columns) != list(frames[PROPOSED].columns):
        raise ValueError(f"{dataset}: {BASELINE} and {PROPOSED} runs have different label names")
    out = pd.DataFrame({BASELINE: frames[BASELINE].mean(axis=0) * 100.0,
                        PROPOSED: frames[PROPOSED].mean(axis=0) * 100.0})
    out["gain"] = out[PROPOSED] - out[BASELINE]
    out.index.name = "label"
    return out, []


def heterogeneity_vs_gain(config: dict, profile: str, dataset: str) -> dict:
    out: dict[str, Any] = {"dataset": dataset}
    gains, missing = per_class_gain(config, profile, dataset)
    out["missing"] = missing
    train = training_labels(profile, dataset)
    if train is None and gains is None:
        return out
    if train is not None:
        labels = label_statistics(*train)
        out["heterogeneity_source"] = "training labels"
    else:
        first = load_npz(run_file(profile, dataset, PROPOSED, profile_of(config, profile)["seeds"][0], PREDICTIONS))
        labels = label_statistics(first["targets"], [str(n) for n in first["label_names"].tolist()])
        out["heterogeneity_source"] = "test labels"
    labels = labels[["n_pos", "n_partners", "context_entropy"]].copy()
    if gains is not None:
        labels = labels.join(gains, how="left")
        out["spearman_entropy"] = spearman_test(labels["context_entropy"], labels["gain"])
        out["spearman_partners"] = spearman_test(labels["n_partners"], labels["gain"])
        order = labels["gain"].sort_values(ascending=False, kind="mergesort")
        out["largest_gains"] = [str(n) for n in order.index[:5]]
    if dataset == "voc" and set(class_map().values()) <= set(labels.index):
        paper_gain = {voc: paper_per_class(PROPOSED)[voc] - paper_per_class(BASELINE)[voc]
                      for voc in class_map().values()}
        labels["paper_gain"] = pd.Series(paper_gain)
        # The paper's gains against heterogeneity measured on this profile's VOC labels: meaningful only where
        # those labels are the real VOC 2007 ones (the paper profile).
        out["spearman_entropy_paper_gain"] = spearman_test(labels["context_entropy"], labels["paper_gain"])
        out["paper_gain_comparable"] = profile == "paper"
    out["labels"] = labels
    return out


# ----------------------------------------------------------------------------------------------------------------
# 3. Metric conventions
# ----------------------------------------------------------------------------------------------------------------


def headline_systems(config: dict, profile: str) -> list[tuple[str, str]]:
    """(data set, system) of Tables 1 and 2, in table order."""
    seen = []
    for number in HEADLINE_TABLES:
        for dataset, system, _ in required_runs(config, profile, number):
            if (dataset, system) not in seen:
                seen.append((dataset, system))
    return seen


def convention_summary(config: dict, profile: str) -> tuple[pd.DataFrame, list[str]]:
    """Long frame dataset, system, metric, convention, value (percent, mean over seeds), n_seeds; missing files."""
    seeds = list(profile_of(config, profile)["seeds"])
    frames, missing = [], []
    for dataset, system in headline_systems(config, profile):
        runs = read_runs(profile, dataset, system, seeds, (CONVENTIONS,))
        if not runs.complete:
            missing += runs.missing
            continue
        long = pd.concat(runs.of(CONVENTIONS), ignore_index=True)
        mean = long.groupby(["metric", "convention"], sort=True)["value"].mean() * 100.0
        frame = mean.reset_index()
        frame.insert(0, "system", system)
        frame.insert(0, "dataset", dataset)
        frame["n_seeds"] = len(seeds)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["dataset", "system", "metric", "convention", "value", "n_seeds"]), missing
    return pd.concat(frames, ignore_index=True), missing


def convention_flips(summary: pd.DataFrame, a: str = PROPOSED, b: str = BASELINE) -> pd.DataFrame:
    """Per data set and (metric, convention): a - b, and whether its sign differs from that under the metric's
    default convention (mAP, OF1, CF1 families; the top-3 and threshold variants compare to their own family)."""
    rows = []
    for dataset in sorted(summary["dataset"].unique()) if len(summary) else []:
        sub = summary[summary["dataset"] == dataset]
        va = sub[sub["system"] == a].set_index(["metric", "convention"])["value"]
        vb = sub[sub["system"] == b].set_index(["metric", "convention"])["value"]
        diff = (va - vb).dropna()
        for (metric, convention), value in diff.sort_index().items():
            base_key = (metric.split("@")[0], DEFAULT_CONVENTION.get(metric.split("@")[0]))
            base = diff.get(base_key, np.nan)
            flips = bool(np.sign(value) != np.sign(base)) if np.isfinite(base) and value != 0 else False
            rows.append({"dataset": dataset, "metric": metric, "convention": convention, "diff": float(value),
                         "default_diff": float(base), "sign_differs": flips})
    return pd.DataFrame(rows, columns=["dataset", "metric", "convention", "diff", "default_diff", "sign_differs"])


# ----------------------------------------------------------------------------------------------------------------
# 4. Seeds and bootstrap
# ----------------------------------------------------------------------------------------------------------------


def seed_intervals(config: dict, profile: str) -> pd.DataFrame:
    """Per (data set, system) of Tables 1-5 and metric: n_seeds, mean, std, 95% t interval (percent)."""
    seeds = list(profile_of(config, profile)["seeds"])
    pairs = []
    for number in METRIC_TABLES:
        for dataset, system, _ in required_runs(config, profile, number):
            if (dataset, system) not in pairs:
                pairs.append((dataset, system))
    rows = []
    for dataset, system in pairs:
        found = read_runs(profile, dataset, system, seeds).headlines
        for metric in ("mAP", "OF1", "CF1"):
            values = np.array([h[metric] for h in found], dtype=np.float64) * 100.0
            low, high = t_interval(values)
            rows.append({"dataset": dataset, "system": system, "metric": metric, "n_seeds": int(values.size),
                         "n_expected": len(seeds),
                         "mean": float(values.mean()) if values.size else np.nan,
                         "std": float(values.std(ddof=1)) if values.size > 1 else np.nan,
                         "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["dataset", "system", "metric", "n_seeds", "n_expected", "mean", "std",
                                       "ci_low", "ci_high"])


def _map(scores: np.ndarray, targets: np.ndarray) -> float:
    ap = metrics.average_precision(scores, targets)
    finite = ap[np.isfinite(ap)]
    return float(finite.mean()) if finite.size else float("nan")


def paired_bootstrap(scores_a: list[np.ndarray], scores_b: list[np.ndarray], targets: np.ndarray, *,
                     n_resamples: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> dict:
    """Paired bootstrap over images of mAP(a) - mAP(b) in percent points (seed k of a paired with seed k of b)."""
    if len(scores_a) != len(scores_b) or not scores_a:
        raise ValueError("paired_bootstrap needs the same, non-zero number of runs for both systems")
    targets = np.asarray(targets)
    n_images = targets.shape[0]
    observed = float(np.mean([_map(a, targets) - _map(b, targets) for a, b in zip(scores_a, scores_b)])) * 100.0
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples, dtype=np.float64)
    for r in range(n_resamples):
        idx = rng.integers(0, n_images, size=n_images)
        t = targets[idx]
        diffs[r] = np.mean([_map(a[idx], t) - _map(b[idx], t) for a, b in zip(scores_a, scores_b)]) * 100.0
    finite = diffs[np.isfinite(diffs)]  # a resample with no positive for any class has no mAP: left out, and counted
    return {"observed": observed, "mean": float(finite.mean()), "ci_low": float(np.percentile(finite, 2.5)),
            "ci_high": float(np.percentile(finite, 97.5)), "frac_le_0": float((finite <= 0).mean()),
            "n_resamples": int(finite.size), "seed": int(seed), "n_images": int(n_images),
            "n_seeds": len(scores_a)}


def bootstrap_comparison(config: dict, profile: str, dataset: str, *, n_resamples: int = N_BOOTSTRAP) -> dict:
    """`paired_bootstrap` of DR-MoE vs HSQ-static on one data set, over the seeds both systems have."""
    seeds = list(profile_of(config, profile)["seeds"])
    out: dict[str, Any] = {"dataset": dataset, "a": PROPOSED, "b": BASELINE, "missing": []}
    runs = {}
    for system in (PROPOSED, BASELINE):
        status = system_status(config, system)
        if status is not None:
            out["missing"].append(f"{system}: {status}")
            continue
        runs[system], absent = load_runs(profile, dataset, system, seeds)
        out["missing"] += absent
    if out["missing"]:
        return out
    common = sorted(set(runs[PROPOSED]) & set(runs[BASELINE]))
    ref = runs[PROPOSED][common[0]]
    for system in (PROPOSED, BASELINE):
        for s in common:
            run = runs[system][s]
            if run["image_ids"].tolist() != ref["image_ids"].tolist() or \
                    run["label_names"].tolist() != ref["label_names"].tolist():
                raise ValueError(f"{dataset}/{system}/seed{s}: images or labels differ from {PROPOSED}/seed{common[0]}")
    out.update(paired_bootstrap([runs[PROPOSED][s]["scores"] for s in common],
                                [runs[BASELINE][s]["scores"] for s in common], ref["targets"],
                                n_resamples=n_resamples))
    out["seeds"] = common
    return out


# ----------------------------------------------------------------------------------------------------------------
# Everything, for the report and the audit
# ----------------------------------------------------------------------------------------------------------------


def run_all(config: dict, profile: str, *, n_resamples: int = N_BOOTSTRAP) -> dict:
    datasets = analysis_datasets(config, profile)
    conventions, conv_missing = convention_summary(config, profile)
    return {
        "profile": profile,
        "cooccurrence": {d: {s: cooccurrence_vs_shared(config, profile, d, s) for s in (PROPOSED, BASELINE)}
                         for d in datasets},
        "heterogeneity": {d: heterogeneity_vs_gain(config, profile, d) for d in datasets},
        "conventions": conventions,
        "conventions_missing": conv_missing,
        "convention_flips": convention_flips(conventions),
        "seed_intervals": seed_intervals(config, profile),
        "bootstrap": {d: bootstrap_comparison(config, profile, d, n_resamples=n_resamples) for d in datasets},
    }
