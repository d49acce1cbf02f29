"""reports/paper_tables.md: every table of the paper beside the measurements, the figures, the analyses beyond
the paper, the claims audit and the list of ambiguities with the choice made for each.

The report reads the tables `drmoe-repro table` wrote (results/table1.csv ... table6.csv, recipes.csv,
ablations.csv) and renders them; it computes no table. It also draws the figures (reports/figures/) and writes
results/<profile>/headline.json (the headline metrics `dvc metrics show` lists) and results/<profile>/analysis.json
(every analysis number), from the run directories of the selected profile; a missing run is shown as missing.
The bytes are deterministic: no dates, no timings, sorted keys, fixed float formats.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import yaml

from drmoe_repro.config import profile_of
from drmoe_repro.data.demo import COCO_DEMO_CATEGORIES
from drmoe_repro.io import save_json, write_text
from drmoe_repro.layout import (BASELINE, GATE_FIGURES, METRIC_TABLES, PER_CLASS_TABLE, PREDICTIONS, PROPOSED,
                                METRICS, REPORT, TRAIN_SUMMARY, analysis_datasets, figure_paths, report_outputs,
                                report_runs, required_runs, run_dir, table_path)
from drmoe_repro.paper import analysis as an
from drmoe_repro.paper import audit as au
from drmoe_repro.paper import figures as fg
from drmoe_repro.paper import provenance as pv
from drmoe_repro.paper.ablations import sensitivity_cost
from drmoe_repro.paper.claims import load_claims, table_claims
from drmoe_repro.paper.deviations import deviations, is_measured
from drmoe_repro.paper.runs import read_runs

ALL_TABLES = METRIC_TABLES + (PER_CLASS_TABLE,)
SYSTEM_NAMES = {BASELINE: "HSQ-static", PROPOSED: "DR-MoE"}


# The report's prose: one Jinja macro per paragraph (templates/report.md.j2); the code here builds tables and numbers.
_PROSE = jinja2.Environment(loader=jinja2.PackageLoader("drmoe_repro.paper", "templates"), autoescape=False,
                            undefined=jinja2.StrictUndefined).get_template("report.md.j2").module


def prose(name: str, **context: Any) -> str:
    """One paragraph of the report, rendered from its template macro and folded to one line."""
    return " ".join(str(getattr(_PROSE, name)(**context)).split())


def read_table(name: str | int) -> pd.DataFrame:
    """A table `drmoe-repro table` wrote; its absence is an error that says how to make it."""
    path = table_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the report renders the tables, it does not compute them; run "
                                f"`drmoe-repro table --table {name}` first (Snakemake and DVC do)")
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


@lru_cache(maxsize=1)
def load_ambiguities() -> list[dict]:
    with resources.files("drmoe_repro.paper").joinpath("ambiguities.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


# ----------------------------------------------------------------------------------------------------------------
# Gathering
# ----------------------------------------------------------------------------------------------------------------


def gate_samples(config: dict, profile: str, dataset: str, system: str = PROPOSED) -> dict:
    """The sample images of a gate figure (`system`, lowest seed with gates) and their gates. The images follow from
    the test labels and the training statistics only, so every system's figure shows the same images."""
    if system not in config["systems"]:
        return {"missing": [f"system {system!r} is not configured"]}
    seeds = sorted(profile_of(config, profile)["seeds"])
    runs, missing = {}, []
    for seed in seeds:
        runs, absent = an.load_runs(profile, dataset, system, [seed], gates=True)
        if runs:
            break
        missing += absent
    if not runs:
        return {"missing": missing}
    seed = min(runs)
    run = runs[seed]
    names = [str(n) for n in run["label_names"].tolist()]
    image_ids = [str(i) for i in run["image_ids"].tolist()]
    train = an.training_labels(profile, dataset)
    labels = train[0] if train is not None and train[1] == names else run["targets"]
    stats = an.label_statistics(labels, names)
    alone = (1.0 - stats["frac_with_others"]).to_numpy(dtype=np.float64)
    samples = fg.select_gate_images(run["targets"], image_ids, names, an.conditional_probabilities(labels), alone)
    return {"seed": seed, "samples": samples, "gates": run["gates"], "label_names": names,
            "expert_names": run["expert_names"], "source": "training labels" if labels is not run["targets"]
            else "test labels"}


def collect(config: dict, profile: str, *, n_resamples: int = an.N_BOOTSTRAP,
            reference: dict | None = None) -> dict[str, Any]:
    reference = config if reference is None else reference
    tables = {n: read_table(n) for n in METRIC_TABLES}
    table6, recipes, ablations = read_table(PER_CLASS_TABLE), read_table("recipes"), read_table("ablations")
    analysis = an.run_all(config, profile, n_resamples=n_resamples)
    measured = au.measured_from_runs(config, profile, analysis)
    ctx = au.AuditContext(claims=load_claims(), measured=measured)
    return {
        "profile": profile,
        "deviations": deviations(config, reference, profile, report_runs(config, profile)),
        "table_deviations": {n: deviations(config, reference, profile, required_runs(config, profile, n))
                             for n in ALL_TABLES},
        "n_resamples": n_resamples,
        "tables": tables,
        "table6": table6,
        "recipes": recipes,
        "ablations": ablations,
        "epochs": epoch_selection(config, profile),
        "analysis": analysis,
        "gates": {f"gates_{d}{suffix}": gate_samples(config, profile, d, system)
                  for d in analysis_datasets(config, profile) for suffix, (system, _) in GATE_FIGURES.items()},
        "measured": measured,
        "claims": au.audit_claims(ctx),
        "consistency": au.audit_consistency(ctx),
    }


def epoch_selection(config: dict, profile: str) -> list[dict]:
    """Per (data set, system) of Tables 1-2 whose train.json holds a test mAP per epoch: the last epoch's (what the
    tables report) and the best epoch's, which is what selecting on the test set would report. Means over seeds."""
    rows = []
    for number in (1, 2):
        by_system: dict[tuple[str, str], list[list[dict]]] = {}
        systems = dict.fromkeys((dataset, system) for dataset, system, _ in required_runs(config, profile, number))
        seeds = profile_of(config, profile)["seeds"]
        for dataset, system in systems:
            for summary in read_runs(profile, dataset, system, seeds, (TRAIN_SUMMARY,)).of(TRAIN_SUMMARY):
                curve = [h for h in summary["history"] if "test_mAP" in h]
                if curve:
                    by_system.setdefault((dataset, system), []).append(curve)
        for (dataset, system), curves in by_system.items():
            best = [max(curve, key=lambda h: h["test_mAP"]) for curve in curves]
            rows.append({"dataset": dataset, "system": system, "n_seeds": len(curves),
                         "last": 100 * float(np.mean([c[-1]["test_mAP"] for c in curves])),
                         "best": 100 * float(np.mean([b["test_mAP"] for b in best])),
                         "best_epochs": [b["epoch"] for b in best], "epochs": curves[0][-1]["epoch"]})
    return rows


def headline_metrics(measured: au.Measured) -> dict:
    """{dataset: {system: {mAP, OF1, CF1}}} in percent: the metrics file DVC lists."""
    out: dict[str, dict] = {}
    for (dataset, system), h in sorted(measured.headline.items()):
        out.setdefault(dataset, {})[system] = {m: round(h[m], 4) for m in ("mAP", "OF1", "CF1")}
    return out


# ----------------------------------------------------------------------------------------------------------------
# Markdown helpers
# ----------------------------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _num(value: Any, digits: int = 1, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return ""
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _measured_cell(mean: Any, std: Any, present: bool) -> str:
    if not present:
        return "missing"
    if mean is None or pd.isna(mean):
        return "n/a"
    return _num(mean) + (f" ± {_num(std)}" if std is not None and not pd.isna(std) else "")


def _short_status(status: str) -> str:
    if status.startswith("not run"):
        return "missing (not run)"
    return status


# ----------------------------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------------------------


def deviation_banner(profile: str, found: list[str]) -> list[str]:
    """The warning that opens the report (and each table) when runs depart from their profile's recipe."""
    if not found:
        return []
    return [prose("deviation_banner", profile=profile, found=found), ""]


def _header(config: dict, profile: str, found: list[str]) -> list[str]:
    prof = profile_of(config, profile)
    data = ", ".join(f"{d} ({spec['source']})" for d, spec in sorted(prof["datasets"].items()))
    lines = ["# DR-MoE reproduction: the paper's tables beside the measurements", ""]
    if profile == "demo":
        sizes = [f"{spec['demo_images']['train']} training and {spec['demo_images']['test']} test images in {d}"
                 for d, spec in sorted(prof["datasets"].items()) if "demo_images" in spec]
        lines += [prose("demo_banner", image_size=prof["input"]["image_size"], epochs=prof["train"]["epochs"],
                        sizes=sizes, n_classes=len(COCO_DEMO_CATEGORIES)), ""]
    lines += deviation_banner(profile, found)
    lines += [
        f"Profile: `{profile}`. Seeds: {', '.join(str(s) for s in prof['seeds'])}. Data sets: {data}.",
        "",
        prose("header_intro", profile=profile),
        "",
        "## Contents",
        "",
        "1. [The paper's tables, measured](#1-the-papers-tables-measured)",
        "2. [Figures](#2-figures)",
        "3. [Beyond the paper](#3-beyond-the-paper)",
        "4. [Claims audit](#4-claims-audit)",
        "5. [Ambiguities and the choices made](#5-ambiguities-and-the-choices-made)",
        "6. [Runs](#6-runs)",
        "",
    ]
    return lines


def _metric_table_section(number: int, df: pd.DataFrame, profile: str, found: list[str]) -> list[str]:
    claims = table_claims(number)
    metrics = claims["metrics"]
    headers = [claims.get("row_header", "Method")]
    for m in metrics:
        headers += [f"paper {m}", f"measured {m}"] + ([f"Δ {m}"] if profile == "paper" else [])
    gates = number == 3  # the gating ablation: how sharp each system's gates are
    headers += (["gate entropy (nats)", "gates > 0.99"] if gates else []) + ["seeds", "status"]
    rows = []
    for _, r in df.iterrows():
        present = is_measured(r["status"]) or (r["status"].startswith("reference") and r["n_seeds"] > 0)
        row = [r["paper_name"]]
        for m in metrics:
            row += [_num(r[f"paper_{m}"]), _measured_cell(r[m], r[f"{m}_std"], present)]
            if profile == "paper":
                row.append(_num(r[f"diff_{m}"], signed=True))
        if gates:
            row += [_num(r.get("gate_entropy"), 3), _num(100 * r.get("gates_near_one_hot", np.nan), 1)]
        row += [int(r["n_seeds"]), _short_status(r["status"])]
        rows.append(row)
    lines = [f"### Table {number}: {claims['caption']}", ""]
    if profile == "demo":
        lines += [prose("demo_table_note"), ""]
    lines += _deviation_note(found, profile)
    lines += [md_table(headers, rows), "", f"CSV: `results/table{number}.csv`. Data set: {claims['dataset']}."]
    decided = df[df.get("f1_from", pd.Series(dtype=str)).fillna("").str.startswith("decided")]["paper_name"]
    if len(decided):
        lines[-1] += " " + prose("decided_f1_note", names=list(decided))
    if gates:
        lines[-1] += " " + prose("gate_columns_note")
    if number in (1, 2, 3):  # the tables with the baselines
        lines[-1] += " " + prose("measured_rows_note")
    return lines + [""]


def _deviation_note(found: list[str], profile: str) -> list[str]:
    """One line above a table naming how its runs depart from the profile (their rows' status says it too)."""
    if not found:
        return []
    return [prose("deviation_note", profile=profile, found=found), ""]


def _table6_section(t6: pd.DataFrame, profile: str, found: list[str]) -> list[str]:
    headers = ["Class", "paper HSQ", "measured HSQ-static", "paper DR-MoE", "measured DR-MoE", "paper gain",
               "measured gain"] + (["Δ HSQ-static", "Δ DR-MoE"] if profile == "paper" else []) + ["status"]
    rows = []
    for _, r in t6.iterrows():
        row = [f"{r['paper_class']} ({r['class']})"]
        for system in (BASELINE, PROPOSED):
            row += [_num(r[f"paper_{system}"]),
                    _measured_cell(r[f"{system}_AP"], r[f"{system}_AP_std"], r[f"{system}_n_seeds"] > 0)]
        row += [_num(r["paper_gain"], signed=True), _num(r["gain"], 2, signed=True)]
        if profile == "paper":
            row += [_num(r[f"diff_{BASELINE}"], signed=True), _num(r[f"diff_{PROPOSED}"], signed=True)]
        row.append(_short_status(r["status"]))
        rows.append(row)
    mean_row = ["mean over classes (= mAP)"]
    for system in (BASELINE, PROPOSED):
        measured = t6[f"{system}_AP"]
        mean_row += [_num(t6[f"paper_{system}"].mean(), 2),
                     _num(measured.mean(), 2) if measured.notna().all() else "missing"]
    mean_row += [_num(t6["paper_gain"].mean(), 2, signed=True),
                 _num(t6["gain"].mean(), 2, signed=True) if t6["gain"].notna().all() else ""]
    if profile == "paper":
        mean_row += ["", ""]
    mean_row.append("")
    rows.append(mean_row)
    lines = [f"### Table 6: {table_claims(6)['caption']}", ""]
    if profile == "demo":
        lines += [prose("demo_table_note"), ""]
    lines += _deviation_note(found, profile)
    lines += [
        md_table(headers, rows), "",
        prose("table6_note"),
        "",
    ]
    return lines


def _figures_section(data: dict, config: dict, profile: str) -> list[str]:
    datasets = analysis_datasets(config, profile)
    paths = figure_paths(datasets)
    rel = {k: Path(p).relative_to(REPORT.parent).as_posix() for k, p in paths.items()}
    lines = ["## 2. Figures", ""]
    if profile == "demo":
        lines += [prose("demo_figures_note"), ""]
    lines += [
        "### Gate weights of sample images (the paper's Figs. 2-3)",
        "",
        prose("gate_figures_intro", n_correlated=fg.N_CORRELATED, n_isolated=fg.N_ISOLATED),
        "",
    ]
    lines += [prose("gate_signs_note"), ""]
    for d in datasets:
        for suffix, (system, sign) in GATE_FIGURES.items():
            key = f"gates_{d}{suffix}"
            g = data["gates"].get(key, {})
            if g.get("samples"):
                picked = "; ".join(f"{s['image_id']} ({s['kind']}: {', '.join(s['labels'])})" for s in g["samples"])
                lines += [f"![DR-MoE gate weights, {d}, {sign}]({rel[key]})", "",
                          f"{d}, `{system}`, {sign}, seed {g['seed']}: {picked}.", ""]
            else:
                lines += [f"![DR-MoE gate weights, {d}, {sign} (missing)]({rel[key]})", "",
                          f"{d}, `{system}`, {sign}: missing ({', '.join(g.get('missing', []))}).", ""]
    lines += [
        "### Per-class AP change of DR-MoE over HSQ-static (the paper's Fig. 4)",
        "",
        prose("ap_gain_intro"),
        "",
    ]
    lines += [f"![Per-class AP change, {d}]({rel[f'ap_gain_{d}']})" for d in datasets] + [""]
    if "table6" in rel:
        lines += ["### Table 6 per class: measured vs paper", "", prose("table6_figure_intro"), "",
                  f"![Table 6, measured vs paper]({rel['table6']})", ""]
    lines += ["### Analyses (section 3)", ""]
    lines += [f"![Co-occurrence vs shared experts, {d}]({rel[f'cooccurrence_{d}']})" for d in datasets]
    lines += [f"![Heterogeneity vs gain, {d}]({rel[f'heterogeneity_{d}']})" for d in datasets] + [""]
    return lines


def _test_text(test: dict | None) -> str:
    if not test or not np.isfinite(test.get("rho", np.nan)):
        return "undefined"
    return f"ρ = {test['rho']:+.3f}, p = {test['p_value']:.4f} (n = {test['n']}; {test['method']})"


def _cooccurrence_section(analysis: dict, profile: str) -> list[str]:
    lines = [
        "### 3.1 Do labels that co-occur more lean more on shared experts? (§3.10, §4.6)",
        "",
        prose("cooccurrence_intro"),
        "",
    ]
    headers = ["data set", "system", "co-occurrence vs shared weight", "with-others vs shared weight",
               "within images: with others − alone", "pooled shared weight (with others / alone)", "status"]
    rows = []
    examples = []
    for d, by_system in sorted(analysis["cooccurrence"].items()):
        for system in (PROPOSED, BASELINE):
            res = by_system[system]
            if "labels" not in res:
                rows.append([d, SYSTEM_NAMES[system], "", "", "", "", "missing: " + ", ".join(res["missing"][:3])])
                continue
            w = res["within"]
            within = (f"{w['mean_diff']:+.4f} over {w['n']} labels ({w['n_positive']} up, {w['n_negative']} down), "
                      f"p = {_num(w['p_value'], 4) or 'n/a'}")
            pooled = res["pooled"]
            rows.append([d, SYSTEM_NAMES[system], _test_text(res["spearman_cooccurrence"]),
                         _test_text(res["spearman_frac_with_others"]), within,
                         f"{pooled['with_others']:.3f} / {pooled['alone']:.3f} "
                         f"({pooled['n_with_others']} / {pooled['n_alone']} label instances)",
                         f"measured (co-occurrence from {res['cooccurrence_source']})"])
            ex = res.get("example")
            if ex:
                examples.append(f"- {d}, {SYSTEM_NAMES[system]}: bicycle's shared weight with person "
                                f"{_num(ex['bicycle_with_person'], 3) or 'n/a'} ({au.count_of(ex['n_both'], 'image')}),"
                                f" alone {_num(ex['bicycle_alone'], 3) or 'n/a'} "
                                f"({au.count_of(ex['n_bicycle_alone'], 'image')}); "
                                f"person's with bicycle {_num(ex['person_with_bicycle'], 3) or 'n/a'}.")
    lines += [md_table(headers, rows), ""]
    if examples:
        lines += ["The paper's own example (bicycle + person vs bicycle alone):", ""] + examples + [""]
    for d, by_system in sorted(analysis["cooccurrence"].items()):
        res = by_system[PROPOSED]
        if "labels" in res:
            lab = res["labels"]
            table = md_table(
                ["label", "train positives", "co-occurrence", "with others", "partners", "shared weight",
                 "with others", "alone"],
                [[name, int(r["n_pos"]), _num(r["cooccurrence"], 3), _num(r["frac_with_others"], 3),
                  int(r["n_partners"]), _num(r["shared_weight"], 3), _num(r["shared_with_others"], 3),
                  _num(r["shared_alone"], 3)] for name, r in lab.sort_index().iterrows()])
            lines += [f"<details><summary>Per label, {d}, DR-MoE</summary>", "", table, "", "</details>", ""]
    return lines


def _heterogeneity_section(analysis: dict, profile: str) -> list[str]:
    lines = [
        "### 3.2 Are DR-MoE's gains largest for the most heterogeneous labels? (§4.7, abstract)",
        "",
        prose("heterogeneity_intro"),
        "",
    ]
    headers = ["data set", "context entropy vs gain", "partners vs gain", "largest measured gains",
               "paper's Table 6 gains vs this profile's VOC entropy", "status"]
    rows = []
    for d, res in sorted(analysis["heterogeneity"].items()):
        if "spearman_entropy" not in res:
            rows.append([d, "", "", "", "", "missing: " + ", ".join(res.get("missing", [])[:3])])
            continue
        paper = ""
        if "spearman_entropy_paper_gain" in res:
            paper = _test_text(res["spearman_entropy_paper_gain"])
            if not res.get("paper_gain_comparable"):
                paper += " — not meaningful here (synthetic VOC labels)"
        rows.append([d, _test_text(res["spearman_entropy"]), _test_text(res["spearman_partners"]),
                     ", ".join(res["largest_gains"]), paper,
                     f"measured (heterogeneity from {res['heterogeneity_source']})"])
    lines += [md_table(headers, rows), ""]
    for d, res in sorted(analysis["heterogeneity"].items()):
        lab = res.get("labels")
        if lab is not None and "gain" in lab:
            cols = ["n_pos", "n_partners", "context_entropy", BASELINE, PROPOSED, "gain"] + \
                (["paper_gain"] if "paper_gain" in lab else [])
            body = [[name, int(r["n_pos"]), int(r["n_partners"]), _num(r["context_entropy"], 3), _num(r[BASELINE]),
                     _num(r[PROPOSED]), _num(r["gain"], 2, signed=True)]
                    + ([_num(r["paper_gain"], 1, signed=True)] if "paper_gain" in lab else [])
                    for name, r in lab.sort_values("context_entropy", ascending=False, kind="mergesort").iterrows()]
            head = ["label", "train positives", "partners", "context entropy", "HSQ-static AP", "DR-MoE AP", "gain"] + \
                (["paper gain"] if "paper_gain" in lab else [])
            assert len(head) == len(cols) + 1
            lines += [f"<details><summary>Per label, {d}, by context entropy</summary>", "", md_table(head, body), "",
                      "</details>", ""]
    return lines


def _conventions_section(analysis: dict, profile: str) -> list[str]:
    summary = analysis["conventions"]
    lines = [
        "### 3.3 Metric-convention sensitivity of the headline runs",
        "",
        prose("conventions_intro"),
        "",
    ]
    if summary.empty:
        return lines + ["No headline run has a `conventions.csv` yet: missing.", ""]
    for d in sorted(summary["dataset"].unique()):
        sub = summary[summary["dataset"] == d]
        systems = list(dict.fromkeys(sub["system"]))
        pivot = sub.pivot_table(index=["metric", "convention"], columns="system", values="value", sort=True)
        rows = []
        for metric, convention in an.KEY_CONVENTIONS:
            if (metric, convention) in pivot.index:
                rows.append([metric, convention] + [_num(pivot.loc[(metric, convention), s], 2) for s in systems])
        lines += [f"**{d}**", "", md_table(["metric", "convention"] + systems, rows), ""]
    flips = analysis["convention_flips"]
    for d in sorted(flips["dataset"].unique()) if not flips.empty else []:
        sub = flips[flips["dataset"] == d]
        changed = sub[sub["sign_differs"]]
        if changed.empty:
            lines.append(f"- {d}: the sign of DR-MoE − HSQ-static is the same under all {len(sub)} conventions "
                         "compared with its default one.")
        else:
            listed = ", ".join(f"{r['metric']}[{r['convention']}] ({r['diff']:+.2f} vs {r['default_diff']:+.2f})"
                               for _, r in changed.iterrows())
            lines.append(f"- {d}: the sign of DR-MoE − HSQ-static differs from the default convention's under "
                         f"{len(changed)} of {len(sub)} conventions: {listed}.")
    if not flips.empty:
        lines.append("")
    return lines


def _uncertainty_section(data: dict, config: dict, profile: str) -> list[str]:
    analysis = data["analysis"]
    n_seeds = len(profile_of(config, profile)["seeds"])
    lines = ["### 3.4 Seeds and a paired bootstrap over test images", ""]
    ci = analysis["seed_intervals"]
    measured = ci[ci["n_seeds"] > 0]
    if n_seeds < 2:
        lines += [prose("one_seed_note", n_seeds=n_seeds), ""]
    if not measured.empty:
        rows = [[r["dataset"], r["system"], r["metric"], int(r["n_seeds"]), _num(r["mean"], 2), _num(r["std"], 2),
                 f"[{_num(r['ci_low'], 2)}, {_num(r['ci_high'], 2)}]" if np.isfinite(r["ci_low"]) else
                 "needs ≥ 2 seeds"] for _, r in measured.iterrows()]
        lines += ["95% intervals over seeds (Student t, n − 1 degrees of freedom):", "",
                  md_table(["data set", "system", "metric", "seeds", "mean", "std", "95% interval"], rows), ""]
    lines += [
        prose("bootstrap_intro", n_resamples=data["n_resamples"], seed=an.BOOTSTRAP_SEED),
        "",
    ]
    rows = []
    for d, res in sorted(analysis["bootstrap"].items()):
        if "observed" not in res:
            rows.append([d, "", "", "", "", "", "missing: " + ", ".join(res.get("missing", [])[:3])])
            continue
        rows.append([d, _num(res["observed"], 2, signed=True), _num(res["mean"], 2, signed=True),
                     f"[{_num(res['ci_low'], 2, signed=True)}, {_num(res['ci_high'], 2, signed=True)}]",
                     f"{res['frac_le_0']:.3f}", f"{res['n_images']} images, {res['n_seeds']} seed(s), "
                     f"{res['n_resamples']} resamples", "measured"])
    lines += [md_table(["data set", "observed diff", "bootstrap mean", "95% interval", "fraction ≤ 0", "basis",
                        "status"], rows), ""]
    return lines


def _recipes_section(df: pd.DataFrame, config: dict, profile: str) -> list[str]:
    lines = ["### 3.5 Baselines with their own published recipes", "", prose("recipes_intro"), ""]
    if df.empty:
        return lines + ["No system with `recipe: published` is configured (see `systems:` in workflow/config.yaml).",
                        ""]
    if not profile_of(config, profile).get("compare_recipes", False):
        pairs = [f"{a} / {b}" for a, b in zip(df["system"], df["published_system"])]
        return lines + [prose("recipes_not_run", profile=profile, pairs=pairs), ""]
    if profile == "demo":
        lines += [prose("demo_table_note"), ""]
    rows = []
    for _, r in df.iterrows():
        present = is_measured(r["status"])
        row = [r["paper_name"]]
        for m in ("mAP", "CF1", "OF1"):
            row += [_num(r[f"paper_claim_{m}"]),
                    _measured_cell(r[f"{m}_paper_recipe"], r[f"{m}_paper_recipe_std"], present),
                    _measured_cell(r[f"{m}_published_recipe"], r[f"{m}_published_recipe_std"], present),
                    _num(r[f"{m}_difference"], signed=True) if present else ""]
        rows.append(row + [int(r["n_seeds"]), _short_status(r["status"])])
    headers = ["Method"]
    for m in ("mAP", "CF1", "OF1"):
        headers += [f"paper {m}", f"{m} paper recipe", f"{m} published recipe", f"Δ {m}"]
    lines += [md_table(headers + ["seeds", "status"], rows), "", "CSV: `results/recipes.csv`.", ""]
    return lines


def _ablations_section(df: pd.DataFrame, config: dict, profile: str) -> list[str]:
    lines = ["### 3.6 Ablations and sensitivity runs (not in the paper)", "",
             prose("ablations_intro", profile=profile, cost=sensitivity_cost(config, profile)), ""]
    if profile == "demo":
        lines += [prose("demo_table_note"), ""]
    rows = []
    for _, r in df.iterrows():
        present = is_measured(r["status"])
        row = [f"`{r['base']}`", f"`{r['variant']}`", r["dataset"], r["change"]]
        for m in ("mAP", "OF1", "CF1"):
            row += [_num(r[f"{m}_base"]) if present else "", _num(r[f"{m}_variant"]) if present else "",
                    _num(r[f"{m}_difference"], signed=True) if present else ""]
        rows.append(row + [int(r["n_seeds"]), _short_status(r["status"])])
    headers = ["base", "variant", "data set", "change"]
    for m in ("mAP", "OF1", "CF1"):
        headers += [f"{m} base", f"{m} variant", f"Δ {m}"]
    return lines + [md_table(headers + ["seeds", "status"], rows), "", f"CSV: `{table_path('ablations')}`.", ""]


def _epoch_section(rows: list[dict], profile: str) -> list[str]:
    lines = ["### 3.7 The last epoch, and the best epoch on the test set", "", prose("epochs_intro", profile=profile), ""]
    if not rows:
        return lines + [prose("no_epoch_curves", profile=profile), ""]
    table = [[r["dataset"], r["system"], _num(r["last"], 2), _num(r["best"], 2), _num(r["best"] - r["last"], 2, True),
              ", ".join(str(e) for e in r["best_epochs"]) + f" of {r['epochs']}", r["n_seeds"]] for r in rows]
    return lines + [md_table(["data set", "system", "last epoch mAP", "best epoch mAP (selected on test)", "Δ",
                              "best epoch", "seeds"], table), ""]


def _audit_section(data: dict, profile: str) -> list[str]:
    lines = [
        "## 4. Claims audit",
        "",
        prose("audit_intro"),
        "",
    ]
    if profile == "demo":
        lines += [prose("demo_audit_note"), ""]
    lines += ["### 4.1 Claims", ""]
    rows = []
    for i, c in enumerate(data["claims"], 1):
        paper = "; ".join(sorted({f.verdict for f in c["findings"] if f.kind == "paper"})) or ""
        repro = "; ".join(sorted({f.verdict for f in c["findings"] if f.kind == "reproduction"})) or ""
        rows.append([i, f"`{c['id']}`", "“" + " … ".join(c["quote"]) + "”", c["where"], paper, repro,
                     f"**{c['verdict']}**"])
    lines += [md_table(["#", "id", "claim", "where", "paper's tables", f"reproduction ({profile})", "verdict"],
                       rows), ""]
    lines += ["Evidence for each claim:", ""]
    for i, c in enumerate(data["claims"], 1):
        lines.append(f"{i}. `{c['id']}` — **{c['verdict']}**" +
                     (f" (see ambiguity `{c['ambiguity']}`)" if c.get("ambiguity") else ""))
        for f in c["findings"]:
            lines.append(f"   - {f.kind}, `{f.check}`: *{f.verdict}* — {f.evidence}")
    lines += ["", "### 4.2 Internal consistency of the paper", ""]
    rows = [[f"`{c['id']}`", c["where"], c["statement"], f"**{c['verdict']}**", c["finding"].evidence,
             f"`{c['ambiguity']}`" if c.get("ambiguity") else ""] for c in data["consistency"]]
    lines += [md_table(["id", "where", "point", "verdict", "evidence", "ambiguity"], rows), ""]
    return lines + _provenance_section()


def _provenance_section() -> list[str]:
    setup = pv.load_provenance()["drmoe_setup"]
    lines = ["### 4.3 Where the compared numbers come from", "", prose("provenance_intro", setup=setup), "",
             "Where the paper compares its result with numbers obtained otherwise:", ""]
    lines += [f"- Table {f['table']}, `{f['system']}` ({f['kind']}): {f['text']}" for f in pv.findings()] + [""]
    rows = []
    for e in pv.entries():
        same = e.get("same_setup_as_drmoe") or {}
        rows.append([e["table"], f"`{e['system']}`", pv.values_cell(e["paper_value"]), pv.source_cell(e),
                     pv.values_cell(e.get("source_values")), pv.setup_cell(e), str(same.get("value")),
                     pv.values_cell(e.get("under_drmoe_setup")), e.get("confidence", "")])
    lines += [md_table(["table", "system", "paper mAP / OF1 / CF1", "source", "source mAP / OF1 / CF1",
                        "source setup", "paper's setup?", "under the paper's setup", "confidence"], rows), ""]
    return lines


def _ambiguity_section(data: dict) -> list[str]:
    refs: dict[str, list[str]] = {}
    for item in data["claims"] + data["consistency"]:
        if item.get("ambiguity"):
            refs.setdefault(item["ambiguity"], []).append(item["id"])
    lines = ["## 5. Ambiguities and the choices made", "", prose("ambiguities_intro"), ""]
    rows = []
    for a in sorted(load_ambiguities(), key=lambda a: a["id"]):
        rows.append([f"`{a['id']}`", a["where"], a["paper_says"].strip(), a["choice"],
                     f"`{a['option']}`" if a.get("option") else "—",
                     ", ".join(f"`{r}`" for r in sorted(refs.get(a["id"], []))) or "—"])
    lines += [md_table(["id", "where", "the paper says", "choice made", "alternative", "audit"], rows), ""]
    return lines


def _runs_section(config: dict, profile: str) -> list[str]:
    seen: dict[str, str] = {}
    for d, s, k in report_runs(config, profile):
        seen[str(run_dir(profile, d, s, k))] = "present" if read_runs(profile, d, s, [k], (PREDICTIONS, METRICS)).complete \
            else "missing"
    present = sorted(p for p, v in seen.items() if v == "present")
    missing = sorted(p for p, v in seen.items() if v == "missing")
    lines = ["## 6. Runs", "",
             f"{len(present)} of {len(seen)} runs the tables need are present (predictions.npz and metrics.json).",
             ""]
    if missing:
        lines += ["Missing (shown as missing above):", ""] + [f"- `{p}`" for p in missing] + [""]
    if present:
        lines += ["Present:", ""] + [f"- `{p}`" for p in present] + [""]
    return lines


def render_markdown(data: dict, config: dict, profile: str) -> str:
    lines = _header(config, profile, data["deviations"])
    lines += ["## 1. The paper's tables, measured", ""]
    if profile == "demo":
        lines += [prose("demo_tables_note"), ""]
    for n in METRIC_TABLES:
        lines += _metric_table_section(n, data["tables"][n], profile, data["table_deviations"][n])
    lines += _table6_section(data["table6"], profile, data["table_deviations"][6])
    lines += _figures_section(data, config, profile)
    lines += ["## 3. Beyond the paper", ""]
    if profile == "demo":
        lines += [prose("demo_analyses_note"), ""]
    analysis = data["analysis"]
    lines += _cooccurrence_section(analysis, profile)
    lines += _heterogeneity_section(analysis, profile)
    lines += _conventions_section(analysis, profile)
    lines += _uncertainty_section(data, config, profile)
    lines += _recipes_section(data["recipes"], config, profile)
    lines += _ablations_section(data["ablations"], config, profile)
    lines += _epoch_section(data["epochs"], profile)
    lines += _audit_section(data, profile)
    lines += _ambiguity_section(data)
    lines += _runs_section(config, profile)
    text = "\n".join(lines).rstrip("\n") + "\n"
    return text


# ----------------------------------------------------------------------------------------------------------------
# Writing everything
# ----------------------------------------------------------------------------------------------------------------


def write_report(config: dict, profile: str, *, n_resamples: int = an.N_BOOTSTRAP,
                 reference: dict | None = None) -> dict[str, Path]:
    """Write the figures, headline.json, analysis.json and the report from the tables and runs; return their paths.

    `reference`: the config whose profiles are the recipes (default `config`); deviations from it are reported."""
    data = collect(config, profile, n_resamples=n_resamples, reference=reference)
    paths = report_outputs(config, profile)
    fg.render_all(analysis_datasets(config, profile), data, profile)
    save_json(paths["headline"], headline_metrics(data["measured"]))
    save_json(paths["analysis"], data["analysis"])
    write_text(paths["report"], render_markdown(data, config, profile))
    return paths
