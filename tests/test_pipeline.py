"""The pipeline end to end on a tiny demo configuration, run by Snakemake exactly as `make demo` runs it.

One build of the default target (every table, the figures, the report). Determinism is proved without building
everything twice: the results are copied into a second clone, where one run of each data set and everything
downstream of it (tables, figures, report) are deleted and rebuilt; the rebuilt files must be byte-identical to the
first clone's (run.json's and train.json's timing fields aside). A different folder catches paths leaking into
outputs, a rebuild catches any randomness that is not seeded. A second `snakemake` must find nothing to do.
"""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from project import copy_project, snakemake, tool_env, without_timing
from test_readme import NEEDS_RESULTS, readme_commands

TARGETS: list[str] = []  # the default target: all six tables, the figures and reports/paper_tables.md
REBUILT_RUNS = ("results/demo/runs/voc/drmoe/seed0", "results/demo/runs/coco/cnn_rnn/seed0")

pytestmark = pytest.mark.slow


def _tiny_project(folder: Path) -> Path:
    """A copy of the workflow whose demo profile is small enough for a test (same code path, fewer images)."""
    copy_project(folder)
    config = yaml.safe_load((folder / "workflow" / "config.yaml").read_text())
    demo = config["profiles"]["demo"]
    demo["datasets"]["coco"]["demo_images"] = {"train": 40, "test": 24}
    demo["datasets"]["voc"]["demo_images"] = {"train": 32, "test": 24}
    demo["train"]["epochs"] = 2
    demo["input"]["image_size"] = 32
    demo["compare_recipes"] = True  # the published-recipe runs and results/recipes.csv, as the paper profile
    (folder / "workflow" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(without_timing(p)).hexdigest()
        for tree in ("results", "reports") for p in sorted((folder / tree).rglob("*"))
        if p.is_file() and ".planned" not in p.parts and "logs" not in p.parts
    }


def _ok(result) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = _tiny_project(tmp_path_factory.mktemp("clone_a"))
    _ok(snakemake(folder, "--cores", "2", *TARGETS))
    return folder


@pytest.fixture(scope="module")
def rebuilt(built, tmp_path_factory):
    """A second clone with the first one's results, of which two runs and everything after them are rebuilt."""
    second = _tiny_project(tmp_path_factory.mktemp("clone_b"))
    for tree in ("results", "reports"):
        shutil.copytree(built / tree, second / tree)
    deleted = [*REBUILT_RUNS, "reports"] + [f"results/table{n}.csv" for n in range(1, 7)]
    for path in deleted:
        target = second / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    _ok(snakemake(second, "--cores", "2", *TARGETS))
    return second


def test_table1_has_a_row_per_system_and_numbers_only_where_measured(built):
    table = pd.read_csv(built / "results" / "table1.csv")
    assert table["system"].tolist() == ["cnn_rnn", "ml_gcn", "add_gcn", "q2l", "hsq_static", "drmoe",
                                        "drmoe_no_experts", "label_prior"]
    assert (table["profile"] == "demo").all() and (table["dataset"] == "coco").all()
    rows = table.set_index("system")
    drmoe = rows.loc["drmoe"]
    assert drmoe["status"] == "measured" and drmoe["n_seeds"] == 1
    assert 0 <= drmoe["mAP"] <= 100 and (drmoe["paper_mAP"], drmoe["paper_OF1"], drmoe["paper_CF1"]) == (85.9, 82.5, 84.0)
    assert np.isnan(drmoe["diff_mAP"])  # the demo is not comparable with the paper: no differences shown
    assert np.isnan(rows.loc["drmoe_no_experts", "paper_mAP"]) and rows.loc["drmoe_no_experts", "status"] == "measured"
    assert rows.loc["cnn_rnn", "f1_from"] == "decided label sets (beam search)"
    assert rows.loc["drmoe", "f1_from"] == "scores >= 0.5" and not np.isnan(rows.loc["drmoe", "gate_entropy"])
    for _, row in table.iterrows():
        if row["status"] == "measured":
            assert not np.isnan(row["mAP"])


def test_table3_and_the_ablations_run_eq11_both_ways(built):
    table3 = pd.read_csv(built / "results" / "table3.csv").set_index("system")
    assert table3.index.tolist() == ["hsq_static", "drmoe", "hsq_static_entropy_text", "drmoe_entropy_text"]
    assert (table3["status"] == "measured").all() and table3["gate_entropy"].notna().all()
    for system in ("drmoe", "drmoe_entropy_text"):
        gates = json.loads((built / "results/demo/runs/coco" / system / "seed0/metrics.json").read_text())["gates"]
        assert table3.loc[system, "gate_entropy"] == pytest.approx(gates["mean_entropy"], abs=0.005)
    ablations = pd.read_csv(built / "results" / "ablations.csv")
    assert (ablations["status"] == "measured").all(), ablations["status"].tolist()
    report = (built / "reports" / "paper_tables.md").read_text()
    assert "gates_voc_entropy_text.png" in report and "### 3.6 Ablations and sensitivity runs" in report
    assert "### 4.3 Where the compared numbers come from" in report
    assert "best epoch mAP (selected on test)" in report  # the demo records the test mAP per epoch


def test_recipe_comparison_trains_each_baseline_with_both_recipes(built):
    table = pd.read_csv(built / "results" / "recipes.csv").set_index("system")
    assert table.index.tolist() == ["ml_gcn", "add_gcn", "q2l"]
    assert (table["status"] == "measured").all() and (table["n_seeds"] == 1).all()
    for system, row in table.iterrows():
        for recipe in ("paper", "published"):
            run = built / "results" / "demo" / "runs" / "coco" / (system if recipe == "paper" else
                                                                  row["published_system"]) / "seed0"
            trained = json.loads((run / "run.json").read_text())["config"]["train"]["recipe"]
            assert trained == recipe
            assert row[f"mAP_{recipe}_recipe"] == pytest.approx(
                100 * json.loads((run / "metrics.json").read_text())["headline"]["mAP"], abs=0.005)
    q2l = json.loads((built / "results/demo/runs/coco/q2l_published/seed0/train.json").read_text())
    assert q2l["evaluated_weights"].startswith("the weight EMA")


def test_run_directory_holds_the_interface_files(built):
    run = built / "results" / "demo" / "runs" / "voc" / "drmoe" / "seed0"
    with np.load(run / "predictions.npz") as pred:
        n, n_labels = pred["targets"].shape
        assert pred["scores"].shape == (n, n_labels) and pred["scores"].dtype == np.float32
        assert pred["targets"].dtype == np.int8 and set(np.unique(pred["targets"])) <= {-1, 0, 1}
        assert len(pred["image_ids"]) == n and len(pred["label_names"]) == n_labels == 20
        assert ((pred["scores"] >= 0) & (pred["scores"] <= 1)).all() and "decisions" not in pred
    with np.load(run / "gates.npz") as gates:
        assert gates["gates"].shape[:2] == (n, n_labels)
        np.testing.assert_allclose(gates["gates"].sum(-1), 1.0, atol=1e-5)
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"mAP", "OF1", "CF1", "per_class_AP"} <= set(metrics["headline"])
    assert "mAP[ap=noninterp]" in metrics and "CF1[def=mlgcn,thr=0.5,ign=negative]" in metrics
    info = json.loads((run / "run.json").read_text())
    assert info["seed"] == 0 and info["config"]["model_name"] == "drmoe" and "torch" in info["libraries"]
    assert not (built / "results" / "demo" / "runs" / "voc" / "q2l" / "seed0" / "gates.npz").exists()
    assert not (run / "checkpoint.pt").exists()  # dropped once the run finished
    with np.load(built / "results/demo/runs/coco/cnn_rnn/seed0/predictions.npz") as pred:
        assert pred["decisions"].shape == pred["scores"].shape and set(np.unique(pred["decisions"])) <= {0, 1}
    history = json.loads((run / "train.json").read_text())["history"]
    assert [h["epoch"] for h in history if "test_mAP" in h] == [1, 2]  # eval_every: 1 on the demo


def test_default_target_writes_every_table_the_figures_and_the_report(built):
    for n in range(1, 7):
        assert (built / "results" / f"table{n}.csv").exists()
    report = (built / "reports" / "paper_tables.md").read_text()
    assert "not comparable" in report
    for n in range(1, 7):
        assert f"Table {n}" in report
    from drmoe_repro.paper.figures import figure_paths

    drawn = {p.name for p in (built / "reports" / "figures").glob("*.png")}
    assert drawn == {p.name for p in figure_paths(["coco", "voc"]).values()} and len(drawn) == 11
    table4 = pd.read_csv(built / "results" / "table4.csv").set_index("system")
    assert (table4.loc[["drmoe_ns2", "drmoe", "drmoe_ns6"], "status"] == "measured").all()


def test_rebuilt_runs_tables_and_report_are_byte_identical_in_another_folder(built, rebuilt):
    first, second = _digests(built), _digests(rebuilt)
    assert first.keys() == second.keys()
    rebuilt_files = [name for name in second if name.startswith(REBUILT_RUNS + ("reports", "results/table"))]
    assert any(name.endswith("predictions.npz") for name in rebuilt_files) and len(rebuilt_files) > 20
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, differing


def test_a_second_run_does_no_work(built):
    result = snakemake(built, "--cores", "2", *TARGETS)
    _ok(result)
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.parametrize("argv", [a for a in readme_commands() if tuple(a[:2]) in NEEDS_RESULTS],
                         ids=lambda a: " ".join(a))
def test_the_readmes_dvc_read_commands_work_on_the_results(built, argv):
    if not (built / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=built, check=True)
    result = subprocess.run(argv, cwd=built, env=tool_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.strip()
