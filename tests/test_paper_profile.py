"""The paper profile's own code path, end to end, as a user with real data would run it, on miniature data.

A miniature MS-COCO 2014 and PASCAL VOC 2007 in the real layouts and archive names (tests/realformat.py: all 80 COCO
categories with their real ids, the 20 VOC classes with difficult flags, grayscale and CMYK JPEGs, PNG data under a
.jpg name, unannotated images) are served on 127.0.0.1 as the assets' URLs; stand-in ImageNet weights and GloVe are
`local:` files. The paper profile runs with only documented overrides, in a `--configfile` as the README shows:
device cpu, one epoch, one seed, a subset (`expected_images: null`), 64 px images, `decode: device` with 2 DataLoader
workers. It runs through the README's own Snakemake commands: Table 2, then everything (every table and the
report): ResNet-101, D = 512, bf16, the fused optimizer and every system, as on a GPU cluster.

What each check guards (the breaks found when the paper profile was first tried as a user would):
1. the README's commands as written (targets before --config);
2. `decode: device` with workers (it hung at batch 0), images the device path could not read;
3. `local:` weights and GloVe honoured by train, not only by fetch;
4. the config given is the config that runs (every job read workflow/config.yaml before);
5. a subset is a documented override (expected_images: null);
6. every row that departs from the paper profile says so, and the report says it at the top.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import realformat
from loopback import PROXY_VARIABLES, LoopbackServer, serve_files
from project import copy_project, snakemake
from test_readme import readme_commands

pytestmark = pytest.mark.slow


def _readme_command(targets: list[str]) -> list[str]:
    """The README's Snakemake command with --configfile whose targets are exactly `targets` (argv, no program)."""
    for argv in readme_commands():
        named = [word for word in argv if word.startswith(("results/", "reports/"))]
        if argv[0] == "snakemake" and "--configfile" in argv and "-n" not in argv and named == targets:
            return argv[1:]
    raise AssertionError(f"the README has no snakemake command with --configfile and the targets {targets}")


@pytest.fixture(scope="module")
def project(tmp_path_factory, realformat_coco, realformat_voc, standin_resnet101, standin_glove):
    folder = copy_project(tmp_path_factory.mktemp("paper_clone"))
    glove_folder = tmp_path_factory.mktemp("glove_extracted")  # an extracted GloVe folder the user already has
    realformat.write_standin_glove(glove_folder)
    server = LoopbackServer(lifetime=900).start()
    archives = {**realformat_coco["assets"], **realformat_voc["assets"]}
    urls = serve_files(server, {name: asset["path"] for name, asset in archives.items()})
    # the miniature archives' own checksums and sizes, over the real files' in workflow/config.yaml
    assets = {name: {"urls": [urls[name]], "md5": asset["md5"], "size": asset["path"].stat().st_size}
              for name, asset in archives.items()}
    assets["resnet101_imagenet"] = {"local": str(standin_resnet101["path"]), "sha256": standin_resnet101["sha256"]}
    assets["glove_6B"] = {"local": str(glove_folder)}
    overrides = {"profiles": {"paper": {
        "device": "cpu", "torch_threads": 1, "seeds": [0], "compare_recipes": False,
        "datasets": {"coco": {"expected_images": None}, "voc": {"expected_images": None}},
        "input": {"image_size": 64, "decode": "device"},
        "train": {"epochs": 1, "num_workers": 2, "loader_timeout_s": 120, "eval_batch_size": 16},
        "assets": assets,
    }}}
    (folder / "mine.yaml").write_text(yaml.safe_dump(overrides))
    saved = {var: __import__("os").environ.pop(var, None) for var in PROXY_VARIABLES}  # urllib must reach 127.0.0.1
    try:
        table2 = snakemake(folder, *_readme_command(["results/table2.csv"]), timeout=600)
        everything = snakemake(folder, *_readme_command([]), timeout=900)
    finally:
        server.close()
        __import__("os").environ.update({k: v for k, v in saved.items() if v is not None})
    yield {"folder": folder, "table2": table2, "everything": everything, "server": server, "glove": glove_folder}


def _ok(result) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]


def test_the_readmes_commands_run_table2_then_everything(project):
    _ok(project["table2"])
    _ok(project["everything"])
    folder = project["folder"]
    for n in range(1, 7):
        assert (folder / "results" / f"table{n}.csv").is_file()
    assert (folder / "reports" / "paper_tables.md").is_file()
    assert all(count == 1 for count in project["server"].hits.values()) and len(project["server"].hits) == 5


def test_every_row_says_it_deviates_from_the_paper_profile(project):
    _ok(project["everything"])
    table = pd.read_csv(project["folder"] / "results" / "table2.csv")
    systems = table[table["system"] != "label_prior"]
    assert len(systems) == 6 and (systems["profile"] == "paper").all()
    for status in systems["status"]:
        assert status.startswith("measured, deviates from the paper profile: "), status
        for key in ("data subset", "device", "input.image_size", "train.epochs", "seeds [0]"):
            assert key in status, (key, status)
        assert "num_workers" not in status and "decode" not in status.split("input.image_size")[0]
    report = (project["folder"] / "reports" / "paper_tables.md").read_text()
    head = report[: report.index("## Contents")]
    assert "Not a reproduction of the paper profile's recipe" in head and "data subset" in head
    assert report.count("> Rows marked *deviates* did not run the paper profile's recipe") == 6  # Tables 1-6


def test_the_jobs_ran_with_the_config_given(project):
    _ok(project["everything"])
    run = json.loads((project["folder"] / "results/paper/runs/voc/drmoe/seed0/run.json").read_text())
    cfg = run["config"]
    assert cfg["device"] == "cpu" and cfg["train"]["epochs"] == 1 and cfg["input"]["image_size"] == 64
    assert cfg["input"]["decode"] == "device" and cfg["train"]["num_workers"] == 2
    assert (cfg["model"]["backbone"], cfg["model"]["d_model"], cfg["train"]["precision"]) == ("resnet101", 512, "bf16")
    assert run["num_train_images"] == 20 and run["num_test_images"] == 10


def test_local_weights_and_glove_are_what_training_used(project, standin_resnet101):
    _ok(project["everything"])
    folder = project["folder"]
    markers = {name: json.loads((folder / f"results/paper/data/{name}.fetched.json").read_text())
               for name in ("resnet101_imagenet", "glove_6B", "coco_train2014", "voc2007_test")}
    assert markers["resnet101_imagenet"]["kind"] == "local file"
    assert markers["resnet101_imagenet"]["path"] == str(standin_resnet101["path"])
    assert markers["glove_6B"]["kind"] == "local folder, used as it is"
    assert markers["coco_train2014"]["kind"] == "downloaded archive, extracted"
    log = (folder / "results/paper/logs/train/coco_ml_gcn_seed0.log").read_text()
    assert f"backbone weights from {standin_resnet101['path']}" in log
    assert f"label vectors from {project['glove']}" in log
    # ML-GCN's label embedding is the stand-in GloVe's vectors for the COCO class names (multi-word ones averaged).
    from drmoe_repro.data.pretrained import load_glove

    state = torch.load(folder / "results/paper/runs/coco/ml_gcn/seed0/model.pt", weights_only=True)
    expected = load_glove(project["glove"], list(realformat.COCO_NAMES))
    np.testing.assert_allclose(state["embedding"].numpy(), expected, rtol=1e-6)
    # The backbone started from the stand-in weights: after one epoch (two Adam steps at lr 1e-4) it is within a few
    # 1e-4 of them, while two random initialisations differ by about 0.1.
    standin = torch.load(standin_resnet101["path"], weights_only=True)
    moved = (state["backbone.body.0.weight"] - standin["conv1.weight"]).abs().max().item()
    assert moved < 2e-3, moved
    assert not (folder / "results/paper/runs/coco/ml_gcn/seed0/checkpoint.pt").exists()  # dropped when finished


def test_plan_reads_the_subset_the_runs_saw(project):
    _ok(project["everything"])
    import subprocess
    import sys

    from project import tool_env

    result = subprocess.run([sys.executable, "-m", "drmoe_repro", "plan", "--config",
                             str(sorted((project["folder"] / "results/.planned").glob("*.yaml"))[-1]),
                             "--profile", "paper", "results/table2.csv", "--images-per-s", "100"],
                            cwd=project["folder"], env=tool_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "6 trainings (6 on voc), 6 epochs in all, 120 training images at 64 px." in result.stdout
