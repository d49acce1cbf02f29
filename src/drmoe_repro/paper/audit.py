"""The claims audit: every quantitative claim of the paper, checked against its own tables and the reproduction.

The claims and consistency points are data (audit.yaml: quote, location, checks); the checks are the small
functions of `CHECKS` below. A check of kind "paper" reads only the paper's transcribed numbers (claims.yaml); a
check of kind "reproduction" reads the measured results of the selected profile (`Measured`).

Verdicts of claims:
  holds | contradicted by the paper's own tables | contradicted by the numbers the paper cites (the values its
  baselines' sources print, paper/provenance.yaml) | contradicted by the reproduction |
  not supported by the reproduction (the measured effect is not significant either way) | untestable here |
  untestable here (demo profile)
On the demo profile every reproduction check says "untestable here (demo profile)" and gives the verdict it would
have given in its evidence, which is then about the synthetic demo data only. A claim's overall verdict takes,
in this order: contradicted by the paper's own tables; contradicted by the numbers the paper cites; contradicted by
the reproduction; not supported by the reproduction; holds; untestable here (demo profile); untestable here.
Consistency points are consistent | inconsistent | ambiguous.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Callable

import numpy as np
import pandas as pd
import yaml

from drmoe_repro.paper import provenance as pv
from drmoe_repro.paper.claims import load_claims, table_claims

HOLDS = "holds"
PAPER = "contradicted by the paper's own tables"
SOURCES = "contradicted by the numbers the paper cites"
REPRO = "contradicted by the reproduction"
NOT_SUPPORTED = "not supported by the reproduction"
UNTESTABLE = "untestable here"
DEMO = "untestable here (demo profile)"
CONSISTENT, INCONSISTENT, AMBIGUOUS = "consistent", "inconsistent", "ambiguous"
ALPHA = 0.05
PROPOSED = "drmoe"


@dataclass(frozen=True)
class Finding:
    verdict: str
    evidence: str
    kind: str  # "paper" or "reproduction"
    check: str = ""


@dataclass
class Measured:
    """What the reproduction measured on one profile (percent; means over seeds)."""

    profile: str
    headline: dict[tuple[str, str], dict] = field(default_factory=dict)  # (dataset, system) -> mAP, OF1, CF1, n_seeds
    missing: dict[tuple[str, str], str] = field(default_factory=dict)  # (dataset, system) -> why no headline
    num_parameters: dict[tuple[str, str], int] = field(default_factory=dict)
    analysis: dict = field(default_factory=dict)  # analysis.run_all (or the parts a test needs)


@dataclass
class AuditContext:
    claims: dict
    measured: Measured | None = None


def count_of(n: int, noun: str) -> str:
    """'1 image', '3 images'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@lru_cache(maxsize=1)
def load_audit() -> dict:
    with resources.files("drmoe_repro.paper").joinpath("audit.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def display_name(claim_row: dict) -> str:
    """The paper's row name without its citation: 'HSQ Yin et al. (2024)' -> 'HSQ', 'DR-MoE (Ours)' -> 'DR-MoE'."""
    name = re.sub(r"\s+[A-Z][A-Za-z-]+ et al\. \(\d{4}\)", "", claim_row["paper_name"])
    return name.replace(" (Ours)", "").replace("$", "").strip()


def _rows(ctx: AuditContext, table: int) -> list[dict]:
    return ctx.claims[f"table{table}"]["rows"]


def _row(ctx: AuditContext, table: int, system: str) -> dict:
    for row in _rows(ctx, table):
        if row["system"] == system:
            return row
    raise KeyError(f"Table {table} has no row {system!r}")


def _fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _signed(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


CHECKS: dict[str, tuple[str, Callable[..., tuple[str, str]]]] = {}


def check(kind: str):
    """Register a check of `kind` ("paper" or "reproduction"); it returns (verdict, evidence)."""

    def register(fn):
        CHECKS[fn.__name__] = (kind, fn)
        return fn

    return register


# ----------------------------------------------------------------------------------------------------------------
# Checks on the paper's own numbers
# ----------------------------------------------------------------------------------------------------------------


def _best_failures(rows: list[dict], system: str, metric: str, value_of) -> list[str]:
    mine = value_of(system, metric)
    out = []
    for row in rows:
        if row["system"] == system:
            continue
        other = value_of(row["system"], metric)
        if other is not None and math.isfinite(other) and mine is not None and other >= mine:
            out.append(f"{display_name(row)} {_fmt(other)}")
    return out


@check("paper")
def best_in_tables(ctx: AuditContext, tables: list[int], metrics: list[str], system: str = PROPOSED):
    failures, shown = [], []
    for t in tables:
        rows = _rows(ctx, t)
        for m in metrics:
            mine = _row(ctx, t, system)[m]
            better = _best_failures(rows, system, m, lambda s, mm, t=t: _row(ctx, t, s)[mm])
            shown.append(f"Table {t} {m} {_fmt(mine)}")
            if better:
                failures.append(f"Table {t} {m}: {display_name(_row(ctx, t, system))} {_fmt(mine)} is not above "
                                + ", ".join(better))
    if failures:
        return PAPER, "; ".join(failures)
    return HOLDS, f"{display_name(_row(ctx, tables[0], system))} has the highest value in every column: " + \
        ", ".join(shown)


@check("paper")
def best_against_sources(ctx: AuditContext, tables: list[int], metrics: list[str], system: str = PROPOSED):
    """The paper's value of `system` against what each baseline's cited source prints (provenance.yaml), where the
    source prints the metric: a claim that holds in the paper's table may rest on a mis-copied baseline value."""
    failures, compared = [], []
    for t in tables:
        mine = _row(ctx, t, system)
        for entry in (e for e in pv.entries() if e["table"] == t and e["system"] != system):
            for m in metrics:
                cited = (entry.get("source_values") or {}).get(m)
                if cited is None:
                    continue
                row = _row(ctx, t, entry["system"])
                compared.append(f"{display_name(row)} {m} {_fmt(cited)}")
                if cited >= mine[m]:
                    printed = f", printed by the paper as {_fmt(row[m])}" if row[m] != cited else ""
                    failures.append(f"Table {t} {m}: {display_name(row)}'s source prints {_fmt(cited)}{printed}, "
                                    f"not below {display_name(mine)}'s {_fmt(mine[m])}")
    if not compared:
        raise _Untestable(f"no cited source prints {', '.join(metrics)} for the baselines of Table(s) {tables}")
    if failures:
        return SOURCES, "; ".join(failures) + " (paper/provenance.yaml; the report's section 4.3)"
    return HOLDS, "above every value the cited sources print: " + ", ".join(compared)


def _compare(pairs, metrics: list[str], failed: str):
    """Verdict of "the system is higher" over (label, system values, other values, other's name) pairs."""
    losses, wins = [], []
    for label, a, b, other_name in pairs:
        for m in metrics:
            text = f"{label} {m} {_fmt(a[m])} vs {other_name}{_fmt(b[m])}"
            (wins if a[m] > b[m] else losses).append(text)
    if losses:
        return failed, "lower or equal: " + "; ".join(losses) + (f" (higher: {'; '.join(wins)})" if wins else "")
    return HOLDS, "higher everywhere: " + "; ".join(wins)


@check("paper")
def beats_system(ctx: AuditContext, other: str, tables: list[int], metrics: list[str], system: str = PROPOSED):
    pairs = []
    for t in tables:
        b = _row(ctx, t, other)
        pairs.append((f"Table {t}", _row(ctx, t, system), b, f"{display_name(b)} "))
    return _compare(pairs, metrics, PAPER)


@check("paper")
def value_in_table(ctx: AuditContext, table: int, system: str, metric: str, value: float):
    printed = _row(ctx, table, system)[metric]
    if abs(printed - value) < 1e-9:
        return HOLDS, f"Table {table} prints {metric} {_fmt(printed)} for {display_name(_row(ctx, table, system))}"
    return PAPER, f"the text says {_fmt(value)}, Table {table} prints {_fmt(printed)}"


@check("paper")
def not_better(ctx: AuditContext, table: int, system: str, reference: str, metrics: list[str]):
    a, b = _row(ctx, table, system), _row(ctx, table, reference)
    better = [f"{m} {_fmt(a[m])} > {_fmt(b[m])}" for m in metrics if a[m] > b[m]]
    text = ", ".join(f"{m} {_fmt(a[m])} vs {_fmt(b[m])}" for m in metrics)
    if better:
        return PAPER, f"Table {table}: {display_name(a)} is higher than {display_name(b)}: " + ", ".join(better)
    return HOLDS, f"Table {table}: {display_name(a)} vs {display_name(b)}: {text} (no gain)"


def paper_gains() -> pd.Series:
    """Table 6: DR-MoE - HSQ per class (percent points), keyed by the paper's short class names."""
    claims = table_claims(6)
    by_system = {row["system"]: row["per_class"] for row in claims["rows"]}
    gains = np.round(np.array(by_system["drmoe"]) - np.array(by_system["hsq_static"]), 6)
    return pd.Series(gains, index=list(claims["classes"]))


@check("paper")
def per_class_gains_positive(ctx: AuditContext):
    gains = paper_gains()
    n_pos = int((gains > 0).sum())
    text = f"Table 6: DR-MoE is above HSQ on {n_pos} of {len(gains)} VOC classes (gains {_signed(gains.min())} to " \
           f"{_signed(gains.max())} points, mean {_signed(gains.mean(), 2)})"
    return (HOLDS if n_pos == len(gains) else PAPER), text


def _rank_text(gains: pd.Series, classes: list[str], top_fraction: float) -> tuple[bool, str]:
    """Whether every class in `classes` is in the top `top_fraction` of gains (rank = 1 + #strictly larger)."""
    gains = gains.dropna()
    n = len(gains)
    top = max(1, int(math.floor(top_fraction * n)))
    parts, all_top = [], True
    for c in classes:
        if c not in gains.index:
            parts.append(f"{c}: not in the data")
            all_top = False
            continue
        rank = 1 + int((gains > gains[c]).sum())
        all_top &= rank <= top
        parts.append(f"{c} {_signed(gains[c], 2)} (rank {rank} of {n})")
    largest = gains.sort_values(ascending=False, kind="mergesort").head(3)
    text = ", ".join(parts) + f"; top {top} needed; median gain {_signed(gains.median(), 2)}; largest: " + \
        ", ".join(f"{k} {_signed(v, 2)}" for k, v in largest.items())
    return all_top, text


@check("paper")
def examples_among_largest_gains(ctx: AuditContext, classes: list[str], top_fraction: float):
    short = {voc: s for s, voc in ctx.claims["table6"]["classes"].items()}
    gains = paper_gains()
    ok, text = _rank_text(gains, [short.get(c, c) for c in classes], top_fraction)
    return (HOLDS if ok else PAPER), "Table 6 gains: " + text + \
        " (every class gains, so 'benefit' holds literally; the examples are not where the gains are notable)"


@check("paper")
def paper_silent(ctx: AuditContext, reason: str):
    return UNTESTABLE, reason


@check("paper")
def same_rows(ctx: AuditContext, rows: list[list], note: str = ""):
    values = []
    for t, system in rows:
        r = _row(ctx, int(t), system)
        values.append((f"Table {t} '{r['paper_name']}'", tuple(r[m] for m in ("mAP", "OF1", "CF1"))))
    distinct = {v for _, v in values}
    text = "; ".join(f"{name}: {'/'.join(_fmt(x) for x in v)}" for name, v in values)
    if len(distinct) == 1:
        return CONSISTENT, "identical mAP/OF1/CF1: " + text + (f". {note}" if note else "")
    return INCONSISTENT, "different: " + text


@check("paper")
def table6_mean_vs_table2(ctx: AuditContext, tolerance: float):
    t6 = {row["system"]: float(np.mean(row["per_class"])) for row in ctx.claims["table6"]["rows"]}
    parts, ok = [], True
    for system, mean in t6.items():
        t2 = _row(ctx, 2, system)["mAP"]
        diff = mean - t2
        ok &= abs(diff) <= tolerance + 1e-9
        parts.append(f"{display_name(_row(ctx, 2, system))}: mean of Table 6 = {mean:.2f}, Table 2 mAP = {t2:.1f} "
                     f"(difference {diff:+.2f})")
    gain6 = t6["drmoe"] - t6["hsq_static"]
    gain2 = _row(ctx, 2, "drmoe")["mAP"] - _row(ctx, 2, "hsq_static")["mAP"]
    text = "; ".join(parts) + f"; DR-MoE gain: {gain6:+.2f} from Table 6 vs {gain2:+.1f} in Table 2; rounding " \
        f"allows at most {tolerance}"
    return (CONSISTENT if ok else INCONSISTENT), text


@check("paper")
def bold_marks_best(ctx: AuditContext, bold: dict):
    failures, fine = [], []
    for t, system in sorted(bold.items()):
        t = int(t)
        metrics = ctx.claims[f"table{t}"].get("metrics", ["mAP", "OF1", "CF1"])
        for m in metrics:
            better = _best_failures(_rows(ctx, t), system, m, lambda s, mm, t=t: _row(ctx, t, s)[mm])
            if better:
                failures.append(f"Table {t} {m}: bold {_fmt(_row(ctx, t, system)[m])} but " + ", ".join(better))
        if not any(f.startswith(f"Table {t} ") for f in failures):
            fine.append(str(t))
    if failures:
        return INCONSISTENT, "; ".join(failures) + f" (bold is the best value in Tables {', '.join(fine)})"
    return CONSISTENT, "the bold values are the best of each column"


@check("paper")
def figure_dataset(ctx: AuditContext, caption_dataset: str, table: int):
    data = ctx.claims[f"table{table}"]["dataset"]
    names = {"coco": "MS-COCO", "voc": "PASCAL VOC 2007"}
    if data == caption_dataset:
        return CONSISTENT, f"both {names.get(data, data)}"
    return INCONSISTENT, f"the caption says {names.get(caption_dataset, caption_dataset)}; Table {table} " \
        f"(the per-class numbers §4.7 discusses) is {names.get(data, data)}; the figure itself is not in the text"


@check("paper")
def entropy_sign(ctx: AuditContext, lam: float, n_experts: int):
    def r_entropy(w: np.ndarray) -> float:  # eq 11 for one label (the 1/L mean is the same for every label)
        w = w[w > 0]
        return float(-lam * (w * np.log(w)).sum())

    uniform = np.full(n_experts, 1.0 / n_experts)
    peaked = np.array([0.96] + [0.04 / (n_experts - 1)] * (n_experts - 1))
    ru, rp = r_entropy(uniform), r_entropy(peaked)
    text = (f"eq 11 with lambda = {lam}, {n_experts} experts: R = {ru:.5f} for uniform gates, {rp:.5f} for "
            f"peaked gates (0.96 on one expert). Adding R to the loss (eq 12) makes peaked gates cheaper, i.e. it "
            f"pushes the gates towards confidence, the opposite of the text")
    return (INCONSISTENT if ru > rp else CONSISTENT), text


@check("paper")
def values_agree(ctx: AuditContext, values: dict):
    distinct = {tuple(v) for v in values.values()}
    text = "; ".join(f"{k}: {'/'.join(str(x) for x in v)}" for k, v in values.items())
    return (CONSISTENT if len(distinct) == 1 else INCONSISTENT), text


@check("paper")
def cf1_definitions(ctx: AuditContext):
    from drmoe_repro.metrics import f1_family

    # Two classes, four images: class 0 predicted on two images, one right (P 0.5, R 1); class 1 found once of
    # two (P 1, R 0.5).
    scores = np.array([[0.9, 0.9], [0.9, 0.1], [0.1, 0.1], [0.1, 0.1]])
    targets = np.array([[1, 1], [0, 1], [0, 0], [0, 0]])
    v = f1_family(scores, targets)
    text = (f"on a two-class example the text's definition (mean of per-class F1) gives {v['CF1_meanf1']:.3f} and "
            f"the baselines' (ML-GCN: 2 CP CR / (CP + CR)) {v['CF1_mlgcn']:.3f}; the paper does not say which its "
            f"own CF1 is, so the baseline rows may not be comparable with its own")
    differ = abs(v["CF1_meanf1"] - v["CF1_mlgcn"]) > 1e-9
    return (INCONSISTENT if differ else CONSISTENT), text


@check("paper")
def defined_metrics_reported(ctx: AuditContext, defined: list[str]):
    reported = sorted({m for n in range(1, 6) for m in ctx.claims[f"table{n}"]["metrics"]})
    unreported = [m for m in defined if m not in reported]
    text = f"defined in §4: {', '.join(defined)}; reported in Tables 1-5: {', '.join(reported)}"
    if unreported:
        return INCONSISTENT, text + f"; never reported: {', '.join(unreported)}"
    return CONSISTENT, text


@check("paper")
def text_note(ctx: AuditContext, verdict: str, note: str):
    return verdict, note


# ----------------------------------------------------------------------------------------------------------------
# Checks on the reproduction
# ----------------------------------------------------------------------------------------------------------------


class _Untestable(Exception):
    pass


def _measured(ctx: AuditContext) -> Measured:
    if ctx.measured is None:
        raise _Untestable("no measured results")
    return ctx.measured


def _headline(ctx: AuditContext, dataset: str, system: str) -> dict:
    m = _measured(ctx)
    if (dataset, system) not in m.headline:
        why = m.missing.get((dataset, system), "not run")
        raise _Untestable(f"{dataset}/{system}: {why}")
    return m.headline[(dataset, system)]


def _seeds_note(h: dict) -> str:
    return f" ({h['n_seeds']} seed{'s' if h['n_seeds'] != 1 else ''})"


@check("reproduction")
def measured_best(ctx: AuditContext, tables: list[int], metrics: list[str], system: str = PROPOSED):
    failures, shown, missing = [], [], []
    for t in tables:
        dataset = ctx.claims[f"table{t}"]["dataset"]
        mine = _headline(ctx, dataset, system)
        others = []
        for row in _rows(ctx, t):
            if row["system"] == system:
                continue
            try:
                others.append((row, _headline(ctx, dataset, row["system"])))
            except _Untestable:
                missing.append(f"{dataset}/{row['system']}")
        if not others:
            raise _Untestable(f"no other system of Table {t} was measured")
        for m in metrics:
            better = [f"{display_name(r)} {_fmt(h[m])}" for r, h in others if h[m] >= mine[m]]
            shown.append(f"Table {t} {m} {_fmt(mine[m])}")
            if better:
                failures.append(f"Table {t} {m}: {_fmt(mine[m])}{_seeds_note(mine)} not above " + ", ".join(better))
    note = f" (not measured: {', '.join(sorted(set(missing)))})" if missing else ""
    if failures:
        return REPRO, "; ".join(failures) + note
    return HOLDS, "highest among the measured systems: " + ", ".join(shown) + note


@check("reproduction")
def measured_beats(ctx: AuditContext, other: str, tables: list[int], metrics: list[str], system: str = PROPOSED):
    datasets = [ctx.claims[f"table{t}"]["dataset"] for t in tables]
    named = system != PROPOSED  # a variant of DR-MoE (e.g. eq. 11's other sign): say which systems are compared
    pairs = [(f"{d}/{system}" if named else d, _headline(ctx, d, system), _headline(ctx, d, other),
              f"{other} " if named else "") for d in datasets]
    return _compare(pairs, metrics, REPRO)


@check("reproduction")
def measured_not_better(ctx: AuditContext, table: int, system: str, reference: str, metrics: list[str]):
    dataset = ctx.claims[f"table{table}"]["dataset"]
    a, b = _headline(ctx, dataset, system), _headline(ctx, dataset, reference)
    better = [f"{m} {_fmt(a[m])} > {_fmt(b[m])}" for m in metrics if a[m] > b[m]]
    text = ", ".join(f"{m} {_fmt(a[m])} vs {_fmt(b[m])}" for m in metrics)
    if better:
        return REPRO, f"{dataset}/{system} is higher than {reference}: " + ", ".join(better)
    return HOLDS, f"{dataset}/{system} vs {reference}: {text} (no gain)"


@check("reproduction")
def measured_more_parameters(ctx: AuditContext, dataset: str, system: str, reference: str):
    m = _measured(ctx)
    try:
        a, b = m.num_parameters[(dataset, system)], m.num_parameters[(dataset, reference)]
    except KeyError as exc:
        raise _Untestable(f"run.json missing for {'/'.join(exc.args[0])}") from None
    text = f"{system}: {a:,} parameters vs {reference}: {b:,} ({a - b:+,}); timings are not compared (they " \
           f"depend on the machine and are kept out of the report)"
    return (HOLDS if a > b else REPRO), text


def _gains(ctx: AuditContext, dataset: str) -> pd.Series:
    het = _measured(ctx).analysis.get("heterogeneity", {}).get(dataset, {})
    labels = het.get("labels")
    if labels is None or "gain" not in labels:
        raise _Untestable(f"per-class AP of both systems on {dataset}: " + ", ".join(het.get("missing", [])[:3]))
    return labels["gain"].dropna()


@check("reproduction")
def measured_per_class_gains(ctx: AuditContext, dataset: str):
    gains = _gains(ctx, dataset)
    n_pos = int((gains > 0).sum())
    text = f"{dataset}: DR-MoE above HSQ-static on {n_pos} of {len(gains)} classes (mean gain " \
           f"{_signed(gains.mean(), 2)} points)"
    return (HOLDS if n_pos * 2 > len(gains) and gains.mean() > 0 else REPRO), text


@check("reproduction")
def measured_examples_rank(ctx: AuditContext, dataset: str, classes: list[str], top_fraction: float):
    gains = _gains(ctx, dataset)
    ok, text = _rank_text(gains, classes, top_fraction)
    return (HOLDS if ok else REPRO), f"{dataset} measured gains: " + text


def _significance(test: dict, what: str) -> tuple[str, str]:
    rho, p = test.get("rho", float("nan")), test.get("p_value", float("nan"))
    text = f"{what}: rho = {_signed(rho, 2)}, p = {_fmt(p, 3)}, n = {test.get('n', 0)}"
    if not math.isfinite(rho) or not math.isfinite(p):
        return NOT_SUPPORTED, text + " (undefined)"
    if p < ALPHA:
        return (HOLDS if rho > 0 else REPRO), text
    return NOT_SUPPORTED, text


def _combine(verdicts: list[str]) -> str:
    if REPRO in verdicts:
        return REPRO
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    return NOT_SUPPORTED


@check("reproduction")
def measured_heterogeneity_gain(ctx: AuditContext, datasets: list[str]):
    verdicts, texts = [], []
    for d in datasets:
        het = _measured(ctx).analysis.get("heterogeneity", {}).get(d, {})
        if "spearman_entropy" not in het:
            texts.append(f"{d}: not measured")
            continue
        v, t = _significance(het["spearman_entropy"], f"{d}, context entropy vs AP gain")
        verdicts.append(v)
        texts.append(t)
    if not verdicts:
        raise _Untestable("; ".join(texts))
    return _combine(verdicts), "; ".join(texts)


@check("reproduction")
def paper_gains_vs_heterogeneity(ctx: AuditContext):
    het = _measured(ctx).analysis.get("heterogeneity", {}).get("voc", {})
    if "spearman_entropy_paper_gain" not in het:
        raise _Untestable("the VOC training labels of this profile are not available")
    verdict, text = _significance(het["spearman_entropy_paper_gain"],
                                  "the paper's Table 6 gains vs context entropy of this profile's VOC training labels")
    if not het.get("paper_gain_comparable", False):
        verdict = UNTESTABLE
        text += " (these VOC labels are not the real VOC 2007 ones: meaningless)"
    return verdict, text


@check("reproduction")
def measured_cooccurrence_shared(ctx: AuditContext, datasets: list[str]):
    verdicts, texts = [], []
    for d in datasets:
        res = _measured(ctx).analysis.get("cooccurrence", {}).get(d, {}).get(PROPOSED, {})
        if "spearman_cooccurrence" not in res:
            texts.append(f"{d}: DR-MoE gates not measured")
            continue
        v1, t1 = _significance(res["spearman_cooccurrence"], f"{d}, co-occurrence vs shared weight across labels")
        within = res["within"]
        t2 = (f"within images, shared weight with other labels minus alone: mean {_signed(within['mean_diff'], 3)} "
              f"over {within['n']} labels (p = {_fmt(within['p_value'], 3)})")
        if math.isfinite(within["p_value"]) and within["p_value"] < ALPHA:
            v2 = HOLDS if within["mean_diff"] > 0 else REPRO
        else:
            v2 = NOT_SUPPORTED
        verdicts += [v1, v2]
        texts.append(f"{t1}; {t2}")
    if not verdicts:
        raise _Untestable("; ".join(texts))
    return _combine(verdicts), "; ".join(texts)


@check("reproduction")
def measured_bicycle_person(ctx: AuditContext, dataset: str):
    res = _measured(ctx).analysis.get("cooccurrence", {}).get(dataset, {}).get(PROPOSED, {})
    if "within" not in res:
        raise _Untestable(f"DR-MoE gates on {dataset} not measured")
    ex = res.get("example")
    within = res["within"]
    texts, verdicts = [], []
    if ex and ex["n_both"] and ex["n_bicycle_alone"]:
        diff = ex["bicycle_with_person"] - ex["bicycle_alone"]
        p = ex.get("p_value", float("nan"))
        texts.append(f"bicycle's shared weight with person {ex['bicycle_with_person']:.3f} "
                     f"({count_of(ex['n_both'], 'image')}) vs alone {ex['bicycle_alone']:.3f} "
                     f"({count_of(ex['n_bicycle_alone'], 'image')}), permutation p = {_fmt(p, 3)}; "
                     f"person's with bicycle {ex['person_with_bicycle']:.3f}")
        if math.isfinite(p) and p < ALPHA:
            verdicts.append(HOLDS if diff > 0 else REPRO)
        else:
            verdicts.append(NOT_SUPPORTED)
    else:
        texts.append("no test image with bicycle + person and one with bicycle alone")
    texts.append(f"all labels: shared weight with others minus alone, mean {_signed(within['mean_diff'], 3)} over "
                 f"{within['n']} labels (p = {_fmt(within['p_value'], 3)})")
    if math.isfinite(within["p_value"]) and within["p_value"] < ALPHA:
        verdicts.append(HOLDS if within["mean_diff"] > 0 else REPRO)
    else:
        verdicts.append(NOT_SUPPORTED)
    return _combine(verdicts), "; ".join(texts)


@check("reproduction")
def measured_bootstrap(ctx: AuditContext, dataset: str):
    res = _measured(ctx).analysis.get("bootstrap", {}).get(dataset, {})
    if "observed" not in res:
        raise _Untestable(f"DR-MoE and HSQ-static predictions on {dataset}: " + ", ".join(res.get("missing", [])[:3]))
    text = (f"{dataset} paired bootstrap of mAP(DR-MoE) - mAP(HSQ-static): {_signed(res['observed'], 2)} points, "
            f"95% interval [{_signed(res['ci_low'], 2)}, {_signed(res['ci_high'], 2)}], {res['frac_le_0']:.3f} of "
            f"{res['n_resamples']} resamples <= 0 ({res['n_seeds']} seed(s), {res['n_images']} images)")
    if res["ci_low"] > 0:
        return HOLDS, text
    if res["ci_high"] < 0:
        return REPRO, text
    return NOT_SUPPORTED, text


@check("reproduction")
def untestable(ctx: AuditContext, reason: str):
    raise _Untestable(reason)


# ----------------------------------------------------------------------------------------------------------------
# Running the audit
# ----------------------------------------------------------------------------------------------------------------


def run_check(ctx: AuditContext, spec: dict) -> Finding:
    params = dict(spec)
    name = params.pop("check")
    if name not in CHECKS:
        raise KeyError(f"audit.yaml names an unknown check {name!r}; known: {', '.join(sorted(CHECKS))}")
    kind, fn = CHECKS[name]
    try:
        verdict, evidence = fn(ctx, **params)
    except _Untestable as exc:
        return Finding(UNTESTABLE, str(exc), kind, name)
    if kind == "reproduction" and ctx.measured is not None and ctx.measured.profile == "demo" and \
            verdict in (HOLDS, REPRO, NOT_SUPPORTED):
        evidence = f"on the synthetic demo data only, the check gives '{verdict}': {evidence}"
        verdict = DEMO
    return Finding(verdict, evidence, kind, name)


def overall(findings: list[Finding]) -> str:
    """A claim's verdict from its checks' (order in the module docstring)."""
    paper = [f.verdict for f in findings if f.kind == "paper"]
    repro = [f.verdict for f in findings if f.kind == "reproduction"]
    for verdict in (PAPER, SOURCES):
        if verdict in paper:
            return verdict
    for verdict in (REPRO, NOT_SUPPORTED):
        if verdict in repro:
            return verdict
    for verdict in (HOLDS, DEMO):
        if verdict in paper + repro:
            return verdict
    return UNTESTABLE


def audit_claims(ctx: AuditContext) -> list[dict]:
    """One dict per claim of audit.yaml: id, where, quote, ambiguity, findings, verdict."""
    out = []
    for claim in load_audit()["claims"]:
        findings = [run_check(ctx, spec) for spec in claim["checks"]]
        out.append({"id": claim["id"], "where": claim["where"], "quote": claim["quote"],
                    "ambiguity": claim.get("ambiguity"), "findings": findings, "verdict": overall(findings)})
    return out


def audit_consistency(ctx: AuditContext) -> list[dict]:
    out = []
    for point in load_audit()["consistency"]:
        finding = run_check(ctx, point["check"])
        out.append({"id": point["id"], "where": point["where"], "statement": point["statement"],
                    "ambiguity": point.get("ambiguity"), "finding": finding, "verdict": finding.verdict})
    return out


def paper_context() -> AuditContext:
    """The audit on the paper's own numbers only (no measured results)."""
    return AuditContext(claims=load_claims(), measured=None)


# ----------------------------------------------------------------------------------------------------------------
# Measured results from the run directories
# ----------------------------------------------------------------------------------------------------------------


def measured_from_runs(config: dict, profile: str, analysis: dict) -> Measured:
    """Headline means (percent) of every (data set, system) of Tables 1-5 whose every seed has metrics.json, and
    run.json parameter counts."""
    from drmoe_repro.config import profile_of
    from drmoe_repro.io import load_json
    from drmoe_repro.layout import METRIC_TABLES, RUN_INFO, run_file, table_rows
    from drmoe_repro.paper.runs import read_runs
    from drmoe_repro.paper.tables import system_status

    seeds = list(profile_of(config, profile)["seeds"])
    datasets = profile_of(config, profile)["datasets"]
    measured = Measured(profile=profile, analysis=analysis)
    for number in METRIC_TABLES:
        spec = table_claims(number)
        dataset = spec["dataset"]
        for row in table_rows(number):
            key = (dataset, row["system"])
            if key in measured.headline or key in measured.missing:
                continue
            status = system_status(config, row["system"])
            if status is None and dataset not in datasets:
                status = f"data set {dataset} not in the profile"
            if status is not None:
                measured.missing[key] = status
                continue
            runs = read_runs(profile, dataset, row["system"], seeds)
            if not runs.complete:
                measured.missing[key] = runs.status
                continue
            heads = runs.headlines
            measured.headline[key] = {m: float(np.mean([h[m] for h in heads]) * 100.0) for m in ("mAP", "OF1", "CF1")}
            measured.headline[key]["n_seeds"] = len(heads)
            run_json = run_file(profile, dataset, row["system"], seeds[0], RUN_INFO)
            if run_json.exists():
                measured.num_parameters[key] = int(load_json(run_json)["num_parameters"])
    return measured
