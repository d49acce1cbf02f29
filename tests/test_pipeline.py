"""The pipeline end to end on a tiny demo configuration, run by Snakemake exactly as `make demo` runs it.

Two copies of the workflow in two temporary folders stand in for two fresh clones: their results must be
byte-identical (run.json's and train.json's timing fields aside), and a second `snakemake` must find nothing to do.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGETS: list[str] = []  # the default target: all six tables, the figures and reports/paper_tables.md
TIMING_FILES = {"run.json", "train.json"}

pytestmark = pytest.mark.slow


def _tiny_project(folder: Path) -> Path:
    """A copy of the workflow whose demo profile is small enough for a test (same code path, fewer images)."""
    shutil.copy(ROOT / "Snakefile", folder / "Snakefile")
    for tree in ("workflow", "envs", "src"):
        shutil.copytree(ROOT / tree, folder / tree, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    config = yaml.safe_load((ROOT / "workflow" / "config.yaml").read_text())
    demo = config["profiles"]["demo"]
    demo["datasets"]["coco"]["demo_images"] = {"train": 40, "test": 24}
    demo["datasets"]["voc"]["demo_images"] = {"train": 32, "test": 24}
    demo["train"]["epochs"] = 2
    demo["input"]["image_size"] = 32
    demo["compare_recipes"] = True  # the published-recipe runs and results/recipes.csv, as the paper profile
    (folder / "workflow" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _snakemake(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=folder, env=env,
        capture_output=True, text=True, timeout=900,
    )


def _without_timing(path: Path) -> bytes:
    if path.name in TIMING_FILES:
        data = json.loads(path.read_text())
        data.pop("timing")
        return json.dumps(data, sort_keys=True).encode()
    return path.read_bytes()


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(_without_timing(p)).hexdigest()
        for tree in ("results", "reports") for p in sorted((folder / tree).rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    first = _tiny_project(tmp_path_factory.mktemp("clone_a"))
    second = _tiny_project(tmp_path_factory.mktemp("clone_b"))
    for folder in (first, second):
        result = _snakemake(folder, *TARGETS)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return first, second


def test_table1_has_a_row_per_system_and_numbers_only_where_measured(two_runs):
    table = pd.read_csv(two_runs[0] / "results" / "table1.csv")
    assert table["system"].tolist()[:6] == ["cnn_rnn", "ml_gcn", "add_gcn", "q2l", "hsq_static", "drmoe"]
    assert (table["profile"] == "demo").all() and (table["dataset"] == "coco").all()
    drmoe = table.set_index("system").loc["drmoe"]
    assert drmoe["status"] == "measured" and drmoe["n_seeds"] == 1
    assert 0 <= drmoe["mAP"] <= 100 and (drmoe["paper_mAP"], drmoe["paper_OF1"], drmoe["paper_CF1"]) == (85.9, 82.5, 84.0)
    assert np.isnan(drmoe["diff_mAP"])  # the demo is not comparable with the paper: no differences shown
    for _, row in table.iterrows():
        if row["status"] == "measured":
            assert not np.isnan(row["mAP"])
        elif row["system"] != "label_prior":
            assert row["status"].startswith("not yet implemented") and np.isnan(row["mAP"])


def test_recipe_comparison_trains_each_baseline_with_both_recipes(two_runs):
    table = pd.read_csv(two_runs[0] / "results" / "recipes.csv").set_index("system")
    assert table.index.tolist() == ["ml_gcn", "add_gcn", "q2l"]
    assert (table["status"] == "measured").all() and (table["n_seeds"] == 1).all()
    for system, row in table.iterrows():
        for recipe in ("paper", "published"):
            run = two_runs[0] / "results" / "demo" / "runs" / "coco" / (system if recipe == "paper" else
                                                                       row["published_system"]) / "seed0"
            trained = json.loads((run / "run.json").read_text())["config"]["train"]["recipe"]
            assert trained == recipe
            assert row[f"mAP_{recipe}_recipe"] == pytest.approx(
                100 * json.loads((run / "metrics.json").read_text())["headline"]["mAP"], abs=0.005)


def test_run_directory_holds_the_interface_files(two_runs):
    run = two_runs[0] / "results" / "demo" / "runs" / "voc" / "drmoe" / "seed0"
    with np.load(run / "predictions.npz") as pred:
        n, n_labels = pred["targets"].shape
        assert pred["scores"].shape == (n, n_labels) and pred["scores"].dtype == np.float32
        assert pred["targets"].dtype == np.int8 and set(np.unique(pred["targets"])) <= {-1, 0, 1}
        assert len(pred["image_ids"]) == n and len(pred["label_names"]) == n_labels == 20
        assert ((pred["scores"] >= 0) & (pred["scores"] <= 1)).all()
    with np.load(run / "gates.npz") as gates:
        assert gates["gates"].shape[:2] == (n, n_labels)
        np.testing.assert_allclose(gates["gates"].sum(-1), 1.0, atol=1e-5)
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"mAP", "OF1", "CF1", "per_class_AP"} <= set(metrics["headline"])
    assert "mAP[ap=noninterp]" in metrics and "CF1[def=mlgcn,thr=0.5]" in metrics
    info = json.loads((run / "run.json").read_text())
    assert info["seed"] == 0 and info["config"]["model_name"] == "drmoe" and "torch" in info["libraries"]
    assert not (two_runs[0] / "results" / "demo" / "runs" / "voc" / "q2l" / "seed0" / "gates.npz").exists()


def test_default_target_writes_every_table_the_figures_and_the_report(two_runs):
    folder = two_runs[0]
    for n in range(1, 7):
        assert (folder / "results" / f"table{n}.csv").exists()
    report = (folder / "reports" / "paper_tables.md").read_text()
    assert "not comparable" in report
    for n in range(1, 7):
        assert f"Table {n}" in report
    assert list((folder / "reports" / "figures").glob("*.png"))
    table4 = pd.read_csv(folder / "results" / "table4.csv").set_index("system")
    assert (table4.loc[["drmoe_ns2", "drmoe", "drmoe_ns6"], "status"] == "measured").all()


def test_two_clones_give_byte_identical_results(two_runs):
    first, second = (_digests(folder) for folder in two_runs)
    assert first.keys() == second.keys()
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, differing


def test_a_second_run_does_no_work(two_runs):
    result = _snakemake(two_runs[0], *TARGETS)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr
