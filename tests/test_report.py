"""Table 6, the figures, the analyses and reports/paper_tables.md, on small synthetic run directories.

Two seeds of drmoe and hsq_static on a VOC-like (the 20 VOC classes) and a COCO-like data set are written into
tmp_path in the run layout of layout.py; every other system of the tables is missing and must be shown as missing.
"""

from __future__ import annotations

import copy
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from drmoe_repro import metrics
from drmoe_repro.cli import build_parser
from drmoe_repro.config import load_config, resolve_run
from drmoe_repro.layout import index_path, run_dir
from drmoe_repro.io import load_json, save_json, save_npz, write_text
from drmoe_repro.paper import analysis as an
from drmoe_repro.paper import figures as fg
from drmoe_repro.paper.claims import table_claims
from drmoe_repro.paper.per_class import build_per_class_table, paper_per_class
from drmoe_repro.commands.table import build_table
from drmoe_repro.layout import REPORT as REPORT_PATH, TABLES, recipe_pairs, recipe_runs, report_outputs, report_runs
from drmoe_repro.layout import table_path
from drmoe_repro.paper.recipe_table import build_recipe_table
from drmoe_repro.paper.report import write_report as render_report
from drmoe_repro.paper.tables import write_table

TABLE6_PATH, RECIPE_TABLE_PATH = table_path(6), table_path("recipes")


def write_report(config: dict, profile: str, **kwargs) -> dict:
    """The pipeline's last two steps: `drmoe-repro table` for every table, then `drmoe-repro report`."""
    for name in TABLES:
        write_table(build_table(config, profile, name, config), table_path(name))
    return render_report(config, profile, **kwargs)

ROOT = Path(__file__).resolve().parents[1]
VOC = list(table_claims(6)["classes"].values())
COCO = ["person", "bicycle", "car", "motorcycle", "bus", "train", "truck", "boat", "traffic light", "bird", "cat",
        "dog", "horse", "sheep", "cow", "bottle", "chair", "couch", "dining table", "tv"]
SEEDS = [0, 1]
N_SHARED = 4
RESAMPLES = 40
SHIPPED = load_config(ROOT / "workflow" / "config.yaml")


def _targets(rng: np.random.Generator, n: int, n_labels: int, difficult: bool) -> np.ndarray:
    """Correlated labels: a few 'scene' groups, so that co-occurrence differs between labels."""
    t = np.zeros((n, n_labels), dtype=np.int8)
    for i in range(n):
        k = rng.integers(1, 4)
        first = rng.integers(0, n_labels)
        picks = {int(first)} | {int((first + d) % n_labels) for d in rng.integers(1, 3, size=k - 1)}
        t[i, sorted(picks)] = 1
    t[:, 0] = np.where(rng.random(n) < 0.3, 1, t[:, 0])  # a frequent label, like person
    if difficult:
        t[(t == 0) & (rng.random(t.shape) < 0.02)] = -1
    return t


def _write_run(profile: str, dataset: str, system: str, seed: int, ids, names, targets, quality: float) -> None:
    rng = np.random.default_rng(1000 * seed + zlib.crc32(f"{dataset}/{system}".encode()))
    logits = quality * (targets == 1) + rng.normal(0.0, 1.0, targets.shape) - 1.0
    scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    folder = run_dir(profile, dataset, system, seed)
    save_npz(folder / "predictions.npz", image_ids=np.array(ids), label_names=np.array(names), targets=targets,
             scores=scores)
    gates = rng.dirichlet(np.ones(N_SHARED + 1), size=targets.shape).astype(np.float32)  # [N, L, E]
    experts = np.array([f"shared_{j + 1}" for j in range(N_SHARED)] + ["task"])
    save_npz(folder / "gates.npz", image_ids=np.array(ids), label_names=np.array(names), expert_names=experts,
             gates=gates)
    result = metrics.compute_metrics(scores, targets, names)
    result["reference"] = {"label_prior_mAP": 0.1}
    result["headline"] = metrics.headline(result)
    save_json(folder / "metrics.json", result)
    write_text(folder / "conventions.csv",
               metrics.conventions_csv(metrics.convention_sensitivity(scores, targets, names)))
    save_json(folder / "run.json", {"num_parameters": 1000 + (50 if system == "drmoe" else 0), "seed": seed,
                                    "config": resolve_run(SHIPPED, profile, dataset, system, seed),
                                    "num_test_images": len(ids)})


def _write_profile(profile: str) -> None:
    rng = np.random.default_rng(5)
    for dataset, names, n, difficult in (("voc", VOC, 80, True), ("coco", COCO, 70, False)):
        train = _targets(rng, 120, len(names), difficult)
        save_npz(index_path(profile, dataset, "train"), image_root=np.array("x"),
                 image_ids=np.array([f"t{i:04d}" for i in range(len(train))]),
                 image_paths=np.array([f"t{i:04d}.jpg" for i in range(len(train))]),
                 label_names=np.array(names), targets=train)
        test = _targets(rng, n, len(names), difficult)
        test[0] = 0
        test[0, 0] = 1  # one image with a single label ...
        test[1] = 0
        test[1, [0, 1]] = 1  # ... and the paper's example (person + bicycle / aeroplane + bicycle)
        ids = [f"{i:06d}" for i in range(n)]
        for seed in SEEDS:
            for system, quality in (("hsq_static", 1.5), ("drmoe", 2.5)):
                _write_run(profile, dataset, system, seed, ids, names, test, quality)


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A config with two seeds on both profiles, and synthetic runs for the demo profile, in tmp_path."""
    config = copy.deepcopy(load_config(ROOT / "workflow" / "config.yaml"))
    for prof in config["profiles"].values():
        prof["seeds"] = list(SEEDS)
    monkeypatch.chdir(tmp_path)
    _write_profile("demo")
    return config


# ----------------------------------------------------------------------------------------------------------------
# Table 6
# ----------------------------------------------------------------------------------------------------------------


def test_table6_equals_the_per_class_ap_of_the_predictions(project):
    table = build_per_class_table(project, "demo")
    assert list(table["class"]) == VOC
    for system in ("hsq_static", "drmoe"):
        per_seed = []
        for seed in SEEDS:
            data = np.load(run_dir("demo", "voc", system, seed) / "predictions.npz")
            per_seed.append(metrics.average_precision(data["scores"], data["targets"]) * 100.0)
        per_seed = np.array(per_seed)  # [seeds, L], label order = VOC order here
        np.testing.assert_allclose(table[f"{system}_AP"], per_seed.mean(axis=0), rtol=0, atol=1e-9)
        np.testing.assert_allclose(table[f"{system}_AP_std"], per_seed.std(axis=0, ddof=1), rtol=0, atol=1e-9)
        assert (table[f"{system}_n_seeds"] == 2).all()
        assert list(table[f"paper_{system}"]) == [paper_per_class(system)[c] for c in VOC]
        assert table[f"diff_{system}"].isna().all()  # demo: no difference to the paper
    np.testing.assert_allclose(table["gain"], table["drmoe_AP"] - table["hsq_static_AP"])
    assert (table["status"] == "measured").all()


def test_table6_on_the_paper_profile_fills_the_differences(project):
    _write_profile("paper")
    table = build_per_class_table(project, "paper")
    np.testing.assert_allclose(table["diff_drmoe"], table["drmoe_AP"] - table["paper_drmoe"])


def test_missing_runs_are_shown_as_missing(project):
    (run_dir("demo", "voc", "drmoe", 1) / "predictions.npz").unlink()
    table = build_per_class_table(project, "demo")
    assert table["drmoe_AP"].isna().all() and table["hsq_static_AP"].notna().all()
    assert table["status"].str.contains("drmoe: not run").all()
    write_report(project, "demo", n_resamples=RESAMPLES)
    text = REPORT_PATH.read_text(encoding="utf-8")
    assert "| aero (aeroplane) | 98.9 |" in text and "| 99.2 | missing |" in text
    assert "`results/demo/runs/voc/drmoe/seed1`" in text.split("Missing (shown as missing above):")[1]
    assert "missing (not run)" in text  # the baselines that were never run
    assert all(Path(p).exists() for p in report_outputs(project, "demo").values())  # placeholder figures too


# ----------------------------------------------------------------------------------------------------------------
# The report and the figures
# ----------------------------------------------------------------------------------------------------------------


def test_report_has_every_table_and_figure_says_demo_and_is_byte_identical_on_rerun(project):
    paths = write_report(project, "demo", n_resamples=RESAMPLES)
    assert not set(paths.values()) & set(TABLES.values())  # the report renders the tables; `table` writes them
    text = REPORT_PATH.read_text(encoding="utf-8")
    head = text.split("## Contents")[0]
    assert "not comparable" in head and "synthetic" in head
    demo = project["profiles"]["demo"]  # the banner states the demo's scale from its config
    assert f"generated {demo['input']['image_size']} px images" in head
    assert f"for {demo['train']['epochs']} epochs" in head and "20 classes each (COCO has 80)" in head
    assert text.count("Measured rows are this suite's implementations") == 3  # Tables 1-3, the baselines' tables
    for n, first_column in ((1, "Method"), (4, "Number of Shared Experts"), (5, "Hidden Layer Size")):  # the paper's
        assert text.split(f"### Table {n}:")[1].split("\n| ")[1].startswith(f"{first_column} |"), n
    for n in range(1, 7):
        section = text.split(f"### Table {n}:")[1].split("###")[0]
        assert "not comparable" in section, n
    for key, path in paths.items():
        assert Path(path).exists(), key
        if key.startswith("figure_"):
            assert f"]({Path(path).relative_to('reports').as_posix()})" in text
    for part in ("## 3. Beyond the paper", "### 3.1", "### 3.2", "### 3.3", "### 3.4", "## 4. Claims audit",
                 "### 4.2 Internal consistency", "## 5. Ambiguities", "`entropy-sign`", "95% intervals over seeds"):
        assert part in text, part
    assert "contradicted by the paper's own tables" in text
    assert "untestable here (demo profile)" in text
    csv = pd.read_csv(TABLE6_PATH)
    assert len(csv) == 20 and {"drmoe_AP", "paper_drmoe", "status"} <= set(csv.columns)
    headline = load_json(paths["headline"])
    assert set(headline) == {"coco", "voc"} and set(headline["voc"]) == {"drmoe", "hsq_static"}

    # Every output, figures included, is byte-identical when written again.
    first = {k: Path(p).read_bytes() for k, p in paths.items()}
    for p in paths.values():
        Path(p).unlink()
    render_report(project, "demo", n_resamples=RESAMPLES)
    for key, path in paths.items():
        assert Path(path).read_bytes() == first[key], key
    png = first["figure_gates_voc"]
    assert png.startswith(b"\x89PNG") and b"Software" not in png and b"matplotlib" not in png


def test_png_has_no_software_metadata(tmp_path):
    fig = fg.missing_figure("x", ["y"])
    fg.save_figure(fig, tmp_path / "a.png")
    fg.save_figure(fg.missing_figure("x", ["y"]), tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert b"Software" not in (tmp_path / "a.png").read_bytes()


def test_gate_figure_is_byte_identical_to_one_drawn_with_every_panel_shown(tmp_path, monkeypatch):
    """gate_figure hides the other panels while seaborn draws each heatmap, for speed only: the PNG must be the one
    drawn with every panel shown."""
    rng = np.random.default_rng(0)
    names, experts = ["person", "bicycle", "car", "dog", "cat"], ["shared 1", "shared 2", "own"]
    gates = rng.dirichlet(np.ones(len(experts)), size=(6, len(names))).astype(np.float32)
    samples = [{"index": i, "image_id": f"img{i}", "kind": "correlated labels", "labels": labels}
               for i, labels in enumerate([["person", "bicycle"], ["dog"], ["car", "dog", "cat"], ["cat"]])]
    with fg.matplotlib.rc_context(fg.STYLE):
        fg.save_figure(fg.gate_figure(samples, gates, names, experts, "gates"), tmp_path / "fast.png")
        monkeypatch.setattr(fg.matplotlib.axes.Axes, "set_visible", lambda self, visible: None)
        fg.save_figure(fg.gate_figure(samples, gates, names, experts, "gates"), tmp_path / "plain.png")
    assert (tmp_path / "fast.png").read_bytes() == (tmp_path / "plain.png").read_bytes()


def test_gate_images_follow_the_documented_rule():
    names = ["person", "bicycle", "car", "dog"]
    targets = np.array([
        [1, 1, 0, 0],  # 0: bicycle + person (the paper's example)
        [0, 1, 0, 0],  # 1: bicycle alone
        [0, 0, 1, 1],  # 2: car + dog
        [0, 0, 0, 1],  # 3: dog alone
        [1, 0, 1, 0],  # 4: person + car
        [0, 0, 1, 0],  # 5: car alone
    ])
    ids = ["b", "a", "c", "d", "e", "f"]
    cond = np.array([[1.0, 0.2, 0.9, 0.1], [0.5, 1.0, 0.1, 0.0], [0.9, 0.1, 1.0, 0.3], [0.1, 0.0, 0.3, 1.0]])
    alone = np.array([0.1, 0.3, 0.2, 0.8])
    picked = fg.select_gate_images(targets, ids, names, cond, alone)
    kinds = [(p["image_id"], p["kind"]) for p in picked]
    assert kinds[0] == ("b", "paper example: bicycle + person")
    assert kinds[1] == ("a", "paper example: bicycle alone")
    # correlated: person + car has mean P = (0.9 + 0.9) / 2 = 0.9, person + bicycle 0.35 (already shown), car + dog
    # (0.3 + 0.3) / 2 = 0.3
    assert kinds[2] == ("e", "correlated labels") and kinds[3] == ("c", "correlated labels")
    # isolated: dog (0.8 alone) first; bicycle alone (0.3) is image "a", already shown; then car (0.2)
    assert kinds[4:] == [("d", "isolated label"), ("f", "isolated label")]
    assert picked == fg.select_gate_images(targets, ids, names, cond, alone)


# ----------------------------------------------------------------------------------------------------------------
# Analyses
# ----------------------------------------------------------------------------------------------------------------


def test_paired_bootstrap_is_deterministic_and_covers_the_observed_difference(project):
    first = an.bootstrap_comparison(project, "demo", "voc", n_resamples=200)
    again = an.bootstrap_comparison(project, "demo", "voc", n_resamples=200)
    assert first == again
    assert first["ci_low"] <= first["observed"] <= first["ci_high"]
    assert first["n_seeds"] == 2 and first["n_resamples"] == 200
    # the observed difference is the seed mean of the two mAP differences
    diffs = []
    for seed in SEEDS:
        a = np.load(run_dir("demo", "voc", "drmoe", seed) / "predictions.npz")
        b = np.load(run_dir("demo", "voc", "hsq_static", seed) / "predictions.npz")
        diffs.append(np.nanmean(metrics.average_precision(a["scores"], a["targets"]))
                     - np.nanmean(metrics.average_precision(b["scores"], b["targets"])))
    assert first["observed"] == pytest.approx(np.mean(diffs) * 100.0, abs=1e-9)
    assert first["observed"] > 0 and first["frac_le_0"] < 0.05  # drmoe's scores are better by construction


def test_seed_intervals_need_two_seeds(project):
    ci = an.seed_intervals(project, "demo")
    row = ci[(ci["dataset"] == "voc") & (ci["system"] == "drmoe") & (ci["metric"] == "mAP")].iloc[0]
    values = [load_json(run_dir("demo", "voc", "drmoe", s) / "metrics.json")["headline"]["mAP"] * 100 for s in SEEDS]
    half = 12.706204736174707 * np.std(values, ddof=1) / np.sqrt(2)  # t(0.975, 1 df)
    assert row["ci_low"] == pytest.approx(np.mean(values) - half)
    assert row["ci_high"] == pytest.approx(np.mean(values) + half)
    one = an.t_interval([50.0])
    assert np.isnan(one[0]) and np.isnan(one[1])


def test_spearman_exact_and_permutation():
    exact = an.spearman_test([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    assert exact["rho"] == pytest.approx(1.0) and exact["p_value"] == pytest.approx(2 / 120)
    rng = np.random.default_rng(0)
    x = rng.random(30)
    perm = an.spearman_test(x, x + rng.normal(0, 0.01, 30))
    # scipy's two-sided Monte Carlo p-value: twice the smaller one-sided (1 + count) / (1 + resamples).
    assert perm["rho"] > 0.9 and perm["p_value"] == pytest.approx(2 / 10_001)
    assert np.isnan(an.spearman_test([1, 2], [1, 2])["rho"])
    flip = an.sign_flip_test([0.1, 0.2, 0.3])
    assert flip["p_value"] == pytest.approx(2 / 8)
    one = an.sign_flip_test([0.4])  # a single label (tiny subsets): a mean, no test
    assert one["mean_diff"] == pytest.approx(0.4) and one["n"] == 1 and np.isnan(one["p_value"])
    assert an.permutation_two_sample([1.0, 1.1, 1.2, 1.3], [0.0, 0.1, 0.2, 0.3]) < 0.05
    assert np.isnan(an.permutation_two_sample([1.0], []))


def test_label_statistics_by_hand():
    names = ["a", "b", "c"]
    t = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1], [0, 1, 0], [1, 1, 0]])
    stats = an.label_statistics(t, names)
    # a: 4 images, contexts {b}, {}, {c}, {b} -> p = (2, 1, 1) / 4 -> entropy 1.5 bits
    assert stats.loc["a", "context_entropy"] == pytest.approx(1.5)
    assert stats.loc["a", "cooccurrence"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert stats.loc["a", "frac_with_others"] == pytest.approx(3 / 4)
    assert stats.loc["c", "context_entropy"] == 0.0 and stats.loc["c", "n_partners"] == 1
    assert stats.loc["b", "n_partners"] == 1


def test_cooccurrence_analysis_runs_on_both_systems(project):
    res = an.cooccurrence_vs_shared(project, "demo", "coco", "drmoe")
    assert res["cooccurrence_source"] == "training labels" and res["seeds"] == SEEDS
    assert res["example"]["n_both"] >= 1 and res["example"]["n_bicycle_alone"] >= 0
    shared = an.shared_weight(np.load(run_dir("demo", "coco", "drmoe", 0) / "gates.npz")["gates"],
                              ["shared_1", "shared_2", "shared_3", "shared_4", "task"])
    assert shared.shape == (70, 20) and ((shared >= 0) & (shared <= 1)).all()
    het = an.heterogeneity_vs_gain(project, "demo", "voc")
    assert "spearman_entropy" in het and not het["paper_gain_comparable"]


# ----------------------------------------------------------------------------------------------------------------
# CLI and pipeline wiring
# ----------------------------------------------------------------------------------------------------------------


def test_report_is_a_cli_command():
    args = build_parser().parse_args(["report", "--bootstrap-resamples", "10"])
    assert args.command == "report" and args.bootstrap_resamples == 10


def test_dvc_yaml_block_is_up_to_date_with_the_config():
    from drmoe_repro.commands.dvc import dvc_block

    text = (ROOT / "dvc.yaml").read_text(encoding="utf-8")
    config = load_config(ROOT / "workflow" / "config.yaml")
    expected = dvc_block(config, config["profile"])
    assert expected in text, "dvc.yaml is out of date: run `PYTHONPATH=src python -m drmoe_repro dvc`"
    dvc = yaml.safe_load(text)
    for stage in dvc["stages"].values():
        body = stage.get("do", stage)
        cmds = body["cmd"] if isinstance(body["cmd"], list) else [body["cmd"]]
        assert all("python -m drmoe_repro " in c for c in cmds)
        for out in body.get("outs", []) + body.get("metrics", []):
            assert isinstance(out, dict) and list(out.values())[0] == {"cache": False}, out


# ----------------------------------------------------------------------------------------------------------------
# The recipe comparison (results/recipes.csv)
# ----------------------------------------------------------------------------------------------------------------


def test_recipe_pairs_are_the_table1_baselines_with_a_published_recipe(project):
    assert recipe_pairs(project) == [("ml_gcn", "ml_gcn_published"), ("add_gcn", "add_gcn_published"),
                                     ("q2l", "q2l_published")]
    assert recipe_runs(project, "demo") == []  # the demo profile does not compare recipes
    assert len(recipe_runs(project, "paper")) == 3 * 2 * len(SEEDS)


def test_a_profile_that_does_not_compare_recipes_says_so(project):
    write_report(project, "demo", n_resamples=RESAMPLES)
    table = pd.read_csv(RECIPE_TABLE_PATH)
    assert table["system"].tolist() == ["ml_gcn", "add_gcn", "q2l"]
    assert table["status"].str.startswith("not run on this profile (profiles.demo.compare_recipes is false)").all()
    assert table["mAP_paper_recipe"].isna().all() and (table["n_seeds"] == 0).all()
    section = REPORT_PATH.read_text(encoding="utf-8").split("### 3.5")[1].split("##")[0]
    assert "Not run on the demo profile" in section and "ml_gcn / ml_gcn_published" in section


def test_recipe_table_sets_each_recipe_beside_the_other(project):
    project["profiles"]["demo"]["compare_recipes"] = True
    test_ids = [f"{i:06d}" for i in range(70)]
    targets = _targets(np.random.default_rng(9), 70, len(COCO), False)
    for seed in SEEDS:
        _write_run("demo", "coco", "ml_gcn", seed, test_ids, COCO, targets, quality=1.0)
        _write_run("demo", "coco", "ml_gcn_published", seed, test_ids, COCO, targets, quality=3.0)
    assert set(recipe_runs(project, "demo")) <= set(report_runs(project, "demo"))
    write_report(project, "demo", n_resamples=RESAMPLES)
    table = pd.read_csv(RECIPE_TABLE_PATH).set_index("system")
    for metric in ("mAP", "CF1", "OF1"):
        for column, system in ((f"{metric}_paper_recipe", "ml_gcn"), (f"{metric}_published_recipe",
                                                                      "ml_gcn_published")):
            values = [100 * load_json(run_dir("demo", "coco", system, s) / "metrics.json")["headline"][metric]
                      for s in SEEDS]
            assert table.loc["ml_gcn", column] == pytest.approx(np.mean(values), abs=0.005)
            assert table.loc["ml_gcn", f"{column}_std"] == pytest.approx(np.std(values, ddof=1), abs=0.005)
        assert table.loc["ml_gcn", f"{metric}_difference"] == pytest.approx(
            table.loc["ml_gcn", f"{metric}_published_recipe"] - table.loc["ml_gcn", f"{metric}_paper_recipe"],
            abs=0.011)
    assert table.loc["ml_gcn", "mAP_difference"] > 0  # the better-separated scores were the published recipe's
    assert table.loc["ml_gcn", "status"] == "measured" and table.loc["ml_gcn", "n_seeds"] == len(SEEDS)
    assert table.loc["ml_gcn", "paper_claim_mAP"] == table_claims(1)["rows"][1]["mAP"]
    assert table.loc["add_gcn", "status"].startswith("not run (results/demo/runs/coco/add_gcn/seed0/metrics.json")
    section = REPORT_PATH.read_text(encoding="utf-8").split("### 3.5")[1].split("##")[0]
    ml_gcn_row = next(line for line in section.splitlines() if line.startswith("| ML-GCN"))
    assert f"{table.loc['ml_gcn', 'mAP_difference']:+.1f}" in ml_gcn_row and "measured" in ml_gcn_row


def test_a_profile_wide_published_recipe_leaves_nothing_to_compare(project):
    project["profiles"]["paper"]["train"]["recipe"] = "published"
    table = build_recipe_table(project, "paper")
    assert table["status"].str.contains("not the paper's: nothing to compare").all()


def test_the_report_refuses_to_compute_a_missing_table(project):
    """The report renders tables; without one it says which command makes it rather than computing it itself."""
    with pytest.raises(FileNotFoundError, match=r"results/table1\.csv is missing: .*drmoe-repro table --table 1"):
        render_report(project, "demo", n_resamples=RESAMPLES)


def test_the_crop_scale_rows_name_the_profiles_own_scale(project):
    """On the paper profile *_crop05 narrows the crop (0.08 -> 0.5); on the demo, whose crop is [0.85, 1], it widens
    it: the row says which, from the profile's config."""
    from drmoe_repro.paper.ablations import build_ablation_table

    for profile in ("demo", "paper"):
        table = build_ablation_table(project, profile)
        crops = table[table["variant"].str.endswith("_crop05")]["change"]
        scale = list(project["profiles"][profile]["input"]["augment"]["crop_scale"])
        assert len(crops) == 3 and (crops == f"random-resized-crop scale [0.5, 1] instead of the profile's {scale}").all()


def test_paired_bootstrap_counts_only_the_resamples_that_have_an_map():
    """One positive among four images: about (3/4)^4 = 32% of resamples miss it and have no mAP; they are left out,
    and the count says how many were used."""
    targets = np.array([[1], [0], [0], [0]], dtype=np.int8)
    a = [np.array([[0.9], [0.2], [0.1], [0.3]], dtype=np.float32)]
    b = [np.array([[0.4], [0.6], [0.1], [0.3]], dtype=np.float32)]
    result = an.paired_bootstrap(a, b, targets, n_resamples=200, seed=0)
    assert 100 < result["n_resamples"] < 180 and np.isfinite(result["mean"])
