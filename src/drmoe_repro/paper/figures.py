"""reports/figures/*.png: the paper's Figs. 2-4, a figure for Table 6, and the analyses' scatter plots.

Byte-identical on rerun: matplotlib's Agg renderer (each figure on its own Agg canvas, never pyplot's global
backend) with one fixed style (the DejaVu Sans font bundled with
matplotlib, fixed sizes and DPI, a fixed SVG hash salt should anyone save SVG), no pyplot state, and PNG files
written without the "Software" text chunk (matplotlib writes no timestamp into PNG). Each figure is written
atomically through `io.atomic_path`.

Every figure has a fixed file name (`figure_paths`), so Snakemake and DVC can name them as outputs. Where the
runs a figure needs are missing, the figure says which, in place of the plot: nothing is drawn from invented data.

Sample images for the gate figures (paper Figs. 2-3) are chosen by a deterministic rule (`select_gate_images`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from drmoe_repro.io import atomic_path
from drmoe_repro.layout import BASELINE, FIGURE_DIR, GATE_FIGURES, PROPOSED, figure_paths
from drmoe_repro.paper.per_class import class_map

DPI = 120
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "svg.hashsalt": "drmoe-repro",
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
    "axes.grid": False,
    "image.cmap": "viridis",
}
SYSTEM_COLORS = {BASELINE: "#4C72B0", PROPOSED: "#DD8452"}
SYSTEM_LABELS = {BASELINE: "HSQ-static", PROPOSED: "DR-MoE"}
N_CORRELATED, N_ISOLATED = 2, 2


def save_figure(fig: Figure, path: str | Path) -> None:
    """PNG without the Software chunk, written atomically (byte-identical for identical figures)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def _new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas: no pyplot, no global backend state (safe in notebooks and threads)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def missing_figure(title: str, reasons: list[str]) -> Figure:
    """A figure that says what is missing (shown where the data for a figure does not exist)."""
    fig = _new_figure(6.0, 2.0)
    ax = fig.add_subplot()
    ax.axis("off")
    lines = [title, "", "not drawn: missing inputs"] + [f"- {r}" for r in sorted(reasons)[:8]]
    if len(reasons) > 8:
        lines.append(f"... and {len(reasons) - 8} more")
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", family="DejaVu Sans", fontsize=7)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Paper Figs. 2-3: gate weights of sample images
# ----------------------------------------------------------------------------------------------------------------


def select_gate_images(test_targets: np.ndarray, image_ids: list[str], label_names: list[str],
                       cond_prob: np.ndarray, alone_fraction: np.ndarray) -> list[dict]:
    """The sample images of the gate figures, by a fixed rule (ties: smallest image id first):

    1. the paper's own example (§1, §4.6), where the data set has both labels: the first image whose positive
       labels are exactly {bicycle, person} (else the first holding both), and the first whose only label is bicycle;
    2. N_CORRELATED "correlated" images not chosen yet: >= 2 positive labels, highest mean P(j | i) over ordered
       pairs of their positive labels (training co-occurrence), i.e. labels that co-occur often;
    3. N_ISOLATED "isolated" images not chosen yet: exactly one positive label, the labels that most often appear
       alone in the training images (highest alone_fraction), one image per label.
    Returns [{"index", "image_id", "kind", "labels"}] without repeated images.
    """
    pos = np.asarray(test_targets) == 1  # [N, L]
    order = np.argsort(np.asarray(image_ids, dtype=str), kind="stable")  # id order
    n_pos = pos.sum(axis=1)
    chosen: list[dict] = []

    def add(i: int, kind: str) -> None:
        if all(c["index"] != i for c in chosen):
            chosen.append({"index": int(i), "image_id": str(image_ids[i]), "kind": kind,
                           "labels": [label_names[j] for j in np.flatnonzero(pos[i])]})

    if "bicycle" in label_names and "person" in label_names:
        b, p = label_names.index("bicycle"), label_names.index("person")
        exact = [i for i in order if pos[i, b] and pos[i, p] and n_pos[i] == 2]
        both = exact or [i for i in order if pos[i, b] and pos[i, p]]
        if both:
            add(both[0], "paper example: bicycle + person")
        alone = [i for i in order if pos[i, b] and n_pos[i] == 1]
        if alone:
            add(alone[0], "paper example: bicycle alone")

    scores = []
    for i in order:
        labels = np.flatnonzero(pos[i])
        if labels.size >= 2:
            sub = cond_prob[np.ix_(labels, labels)]
            vals = sub[~np.eye(labels.size, dtype=bool)]
            vals = vals[np.isfinite(vals)]
            scores.append((-(float(vals.mean()) if vals.size else 0.0), str(image_ids[i]), int(i)))
    taken = 0
    for _, _, i in sorted(scores):
        if taken == N_CORRELATED:
            break
        if all(c["index"] != i for c in chosen):
            add(i, "correlated labels")
            taken += 1

    singles = sorted(
        (-float(alone_fraction[np.flatnonzero(pos[i])[0]]) if np.isfinite(alone_fraction[np.flatnonzero(pos[i])[0]])
         else 0.0, str(image_ids[i]), int(i))
        for i in order if n_pos[i] == 1)
    used_labels: set[int] = set()
    for _, _, i in singles:
        label = int(np.flatnonzero(pos[i])[0])
        if len(used_labels) == N_ISOLATED:
            break
        if label in used_labels or any(c["index"] == i for c in chosen):
            continue
        used_labels.add(label)
        add(i, "isolated label")
    return chosen


def gate_figure(samples: list[dict], gates: np.ndarray, label_names: list[str], expert_names: list[str],
                title: str) -> Figure:
    """One heatmap per sample image: its positive labels x experts, the gate weights (rows sum to 1)."""
    n = max(len(samples), 1)
    heights = [max(len(s["labels"]), 1) for s in samples] or [1]
    fig = _new_figure(max(5.0, 1.2 + 0.6 * len(expert_names)), 1.0 + 0.32 * sum(heights) + 0.45 * n)
    axes = fig.subplots(n, 1, squeeze=False, height_ratios=heights)[:, 0]
    # seaborn draws the whole figure after each heatmap, to check whether tick labels overlap (the rotation set below
    # overrides what it decides). Those draws are made cheap: constrained layout is off until every panel exists (so
    # it is solved once, not on every draw), and the other panels are hidden (so each draw is of one panel, not of
    # the figure so far; the saved figure is the same, byte for byte). A demo report takes about 25% less time.
    fig.set_layout_engine("none")
    for ax, sample in zip(axes, samples):
        for panel in axes:
            panel.set_visible(panel is ax)
        rows = [label_names.index(lbl) for lbl in sample["labels"]]
        data = pd.DataFrame(np.asarray(gates[sample["index"]][rows], dtype=np.float64),
                            index=sample["labels"], columns=expert_names)
        sns.heatmap(data, ax=ax, vmin=0.0, vmax=1.0, cmap="viridis", annot=True, fmt=".2f", cbar=False,
                    annot_kws={"fontsize": 6}, linewidths=0.5, linecolor="white")
        ax.set_title(f"image {sample['image_id']} ({sample['kind']})", loc="left")
        ax.set_ylabel("")
        ax.tick_params(axis="y", rotation=0)
        ax.tick_params(axis="x", rotation=0)
    for panel in axes:
        panel.set_visible(True)
    fig.set_layout_engine("constrained")
    fig.suptitle(title, fontsize=9)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Paper Fig. 4: per-class AP change of DR-MoE over HSQ-static
# ----------------------------------------------------------------------------------------------------------------


def gain_figure(gains: pd.Series, title: str, paper_gains: pd.Series | None = None) -> Figure:
    """Bars of the per-class AP change (percent points), sorted from the largest gain; the paper's Table 6 gain
    beside each bar where given (VOC)."""
    gains = gains.dropna()
    order = sorted(gains.index, key=lambda name: (-gains[name], str(name)))
    frames = [pd.DataFrame({"class": order, "gain": [gains[c] for c in order], "source": "measured"})]
    if paper_gains is not None:
        frames.append(pd.DataFrame({"class": order, "gain": [paper_gains.get(c, np.nan) for c in order],
                                    "source": "paper (Table 6)"}))
    data = pd.concat(frames, ignore_index=True)
    fig = _new_figure(max(5.0, 0.28 * len(order) + 1.5), 3.2)
    ax = fig.add_subplot()
    hue_order = [s for s in ("measured", "paper (Table 6)") if s in set(data["source"])]
    sns.barplot(data=data, x="class", y="gain", hue="source", hue_order=hue_order, order=order, ax=ax,
                palette=["#DD8452", "#8C8C8C"][: len(hue_order)], errorbar=None)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel("")
    ax.set_ylabel("AP change, DR-MoE - HSQ-static (points)")
    ax.tick_params(axis="x", rotation=90)
    ax.set_title(title, loc="left")
    ax.legend(loc="upper right", frameon=False)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Table 6: measured vs paper, both systems
# ----------------------------------------------------------------------------------------------------------------


def table6_figure(table6: pd.DataFrame, title: str) -> Figure:
    """Per class (the paper's short names): the measured AP (mean, +- std over seeds) and the paper's value."""
    fig = _new_figure(7.0, 3.8)
    ax = fig.add_subplot()
    x = np.arange(len(table6))
    for k, system in enumerate((BASELINE, PROPOSED)):
        shift = (k - 0.5) * 0.25
        color = SYSTEM_COLORS[system]
        measured = table6[f"{system}_AP"].to_numpy(dtype=np.float64)
        std = table6[f"{system}_AP_std"].to_numpy(dtype=np.float64)
        if np.isfinite(measured).any():
            ax.errorbar(x + shift, measured, yerr=np.where(np.isfinite(std), std, 0.0), fmt="o", color=color,
                        markersize=4, capsize=2, linewidth=0.8, label=f"{SYSTEM_LABELS[system]} measured")
        ax.plot(x + shift, table6[f"paper_{system}"].to_numpy(dtype=np.float64), linestyle="none", marker="x",
                color=color, markersize=5, label=f"{SYSTEM_LABELS[system]} paper")
    ax.set_xticks(x, list(table6["paper_class"]), rotation=90)
    ax.set_ylabel("AP (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, loc="left")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", frameon=False, ncols=4)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Analyses
# ----------------------------------------------------------------------------------------------------------------


def scatter_figure(frame: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, title: str,
                   note: str = "") -> Figure:
    """One point per label, named; `note` (e.g. Spearman's rho) under the title."""
    data = frame[[x, y]].dropna()
    fig = _new_figure(5.0, 3.8)
    ax = fig.add_subplot()
    sns.scatterplot(data=data, x=x, y=y, ax=ax, color="#4C72B0", s=18, edgecolor="none")
    for name, row in data.sort_index().iterrows():
        ax.annotate(str(name), (row[x], row[y]), fontsize=5.5, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f"\n{note}" if note else ""), loc="left")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# All figures of a profile
# ----------------------------------------------------------------------------------------------------------------


def _rho_note(test: dict | None) -> str:
    if not test or not np.isfinite(test.get("rho", np.nan)):
        return "Spearman's rho: undefined"
    return f"Spearman's rho = {test['rho']:+.2f} (p = {test['p_value']:.3f}, n = {test['n']} labels)"


def render_all(datasets: list[str], inputs: dict[str, Any], profile: str, figure_dir: Path = FIGURE_DIR
               ) -> dict[str, Path]:
    """Draw and write every figure of `figure_paths`. `inputs` holds what `report.collect` gathered:
    "table6" (DataFrame), "analysis" (analysis.run_all), "gates" ({figure key: dict from report.gate_samples})."""
    paths = figure_paths(datasets, figure_dir)
    suffix = " [demo: synthetic data]" if profile == "demo" else ""
    analysis = inputs["analysis"]
    figures: dict[str, Figure] = {}
    with matplotlib.rc_context(STYLE):
        for d in sorted(datasets):
            for key_suffix, (_, sign) in GATE_FIGURES.items():
                key = f"gates_{d}{key_suffix}"
                sample = inputs["gates"].get(key, {})
                if sample.get("samples"):
                    title = f"DR-MoE gate weights, {d} test images (seed {sample['seed']})\n{sign}"  # fits the width
                    figures[key] = gate_figure(sample["samples"], sample["gates"], sample["label_names"],
                                               sample["expert_names"], title + (f"\n{suffix.strip()}" if suffix else ""))
                else:
                    figures[key] = missing_figure(f"Gate weights ({d}, {sign})", sample.get("missing", ["no sample"]))

            het = analysis["heterogeneity"][d]
            labels = het.get("labels")
            if labels is not None and "gain" in labels:
                paper = labels["paper_gain"] if "paper_gain" in labels else None
                title = f"Per-class AP change of DR-MoE over HSQ-static, {d}{suffix}"
                figures[f"ap_gain_{d}"] = gain_figure(labels["gain"], title, paper)
                figures[f"heterogeneity_{d}"] = scatter_figure(
                    labels, "context_entropy", "gain", "context entropy of the label (bits, training labels)",
                    "AP change DR-MoE - HSQ-static (points)", f"Heterogeneity vs gain, {d}{suffix}",
                    _rho_note(het.get("spearman_entropy")))
            else:
                reasons = het.get("missing") or ["per-class AP of both systems"]
                figures[f"ap_gain_{d}"] = missing_figure(f"Per-class AP change ({d})", reasons)
                figures[f"heterogeneity_{d}"] = missing_figure(f"Heterogeneity vs gain ({d})", reasons)

            cooc = analysis["cooccurrence"][d][PROPOSED]
            if "labels" in cooc:
                figures[f"cooccurrence_{d}"] = scatter_figure(
                    cooc["labels"], "cooccurrence", "shared_weight",
                    f"co-occurrence: mean P(other | label) ({cooc['cooccurrence_source']})",
                    "mean shared-expert weight where positive", f"Co-occurrence vs shared experts, DR-MoE, {d}{suffix}",
                    _rho_note(cooc.get("spearman_cooccurrence")))
            else:
                figures[f"cooccurrence_{d}"] = missing_figure(f"Co-occurrence vs shared experts ({d})",
                                                              cooc.get("missing") or ["DR-MoE gates"])
        if "table6" in paths:
            table6 = inputs["table6"]
            figures["table6"] = table6_figure(table6, f"Table 6: per-class AP on VOC test, measured vs paper{suffix}")
            if table6 is not None and list(table6["paper_class"]) != list(class_map()):
                raise ValueError("table6 rows are not in the paper's class order")
    for key, path in paths.items():
        save_figure(figures[key], path)
    return paths
