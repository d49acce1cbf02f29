"""Training engine: crash-safe resume, NaN stop, data-parallel agreement, the throughput benchmark, SLURM plan."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from drmoe_repro import progress
from drmoe_repro.config import DEFAULT_CONFIG, load_config, resolve_run
from drmoe_repro.data.voc import load_voc
from drmoe_repro.engine import train as train_module
from drmoe_repro.engine.checkpoint import load_checkpoint
from drmoe_repro.engine.distributed import DistContext, GlobalBatchSampler
from drmoe_repro.engine.loss_watch import LossWatch
from drmoe_repro.engine.train import NonFiniteLossError, train_run
from drmoe_repro.engine.evaluate import ScoredTestSplit, evaluate_run, load_test_scores, save_test_scores
from drmoe_repro.layout import (EVALUATE_OUTPUTS, GATES, METRICS, MODEL, TEST_SCORES, TRAIN_SUMMARY,
                                index_path, run_dir)
from drmoe_repro.models import MODELS
from project import without_timing
from test_layers import _poisoned_env

ROOT = Path(__file__).resolve().parents[1]

# Runs a training in a fresh process (as `drmoe-repro train` or torchrun would), then scores the test split.
DRIVER = """
import json, sys
from pathlib import Path
import numpy as np
from drmoe_repro.data.index import LabelIndex
from drmoe_repro.engine.predict import predict
from drmoe_repro.engine.train import load_trained_model, train_run
from drmoe_repro.engine.distributed import init_distributed
cfg = json.loads(Path(sys.argv[1]).read_text())
train_index, test_index, run_dir = Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
train_run(cfg, train_index, run_dir, progress=False, test_index=test_index)
import os
if os.environ.get("RANK", "0") == "0":
    model = load_trained_model(cfg, train_index, run_dir)
    scores, _, _ = predict(model, LabelIndex.load(test_index), cfg, progress=False)
    np.save(run_dir / "scores.npy", scores)
"""


@pytest.fixture(scope="module")
def tiny_run(demo_voc_root, tmp_path_factory):
    """A tiny VOC-demo training configuration and its indices."""
    folder = tmp_path_factory.mktemp("engine")
    load_voc(demo_voc_root, "trainval").save(folder / "train.npz")
    load_voc(demo_voc_root, "test").save(folder / "test.npz")
    cfg = resolve_run(load_config(DEFAULT_CONFIG), "demo", "voc", "drmoe", 0)
    cfg["input"]["image_size"] = 32
    cfg["train"]["epochs"] = 4
    cfg["model"].update(d_model=32, ffn_dim=64, expert_hidden=32, gate_hidden=32)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    (folder / "driver.py").write_text(DRIVER)
    return folder, cfg


def _driver(folder: Path, run_dir: Path, launcher: list[str] | None = None) -> subprocess.Popen:
    command = (launcher or [sys.executable]) + [str(folder / "driver.py"), str(folder / "cfg.json"),
                                                str(folder / "train.npz"), str(folder / "test.npz"), str(run_dir)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def one_process_run(tiny_run, tmp_path_factory) -> Path:
    """The tiny run trained straight through in one fresh process: what the resumed and the DDP runs are held to."""
    folder, _ = tiny_run
    run = tmp_path_factory.mktemp("one_process")
    _finish(_driver(folder, run))
    return run


@pytest.mark.slow  # training subprocesses
def test_kill_9_mid_epoch_then_resume_gives_byte_identical_predictions(tiny_run, one_process_run, tmp_path):
    folder, _ = tiny_run

    crashed = tmp_path / "crashed"
    process = _driver(folder, crashed)
    deadline = time.monotonic() + 300
    while not (crashed / "checkpoint.pt").exists():  # epoch 1 is done and saved
        assert process.poll() is None and time.monotonic() < deadline, "training ended before its first checkpoint"
        time.sleep(0.05)
    time.sleep(0.5)  # well into epoch 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (crashed / "model.pt").exists(), "the run finished before it was killed: the test proved nothing"
    epoch_at_kill = load_checkpoint(crashed / "checkpoint.pt")["epoch"]
    assert 1 <= epoch_at_kill < 4

    out = _finish(_driver(folder, crashed))
    assert f"resuming {crashed} from its checkpoint after epoch {epoch_at_kill}" in out
    assert (crashed / "scores.npy").read_bytes() == (one_process_run / "scores.npy").read_bytes()
    assert (crashed / "model.pt").read_bytes() == (one_process_run / "model.pt").read_bytes()


@pytest.mark.parametrize("step_in_epoch_2", [3, "last"])
def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny_run, tmp_path, monkeypatch,
                                                                         step_in_epoch_2):
    """A NaN 3 steps into epoch 2, or in epoch 2's last step (checked one step late, so only when the epoch ends):
    either way the message names the step and epoch 1's checkpoint stays, not overwritten by epoch 2's."""
    folder, cfg = tiny_run
    steps_per_epoch = len(GlobalBatchSampler(150, cfg["data"]["batch_size"], 0))
    bad_step = steps_per_epoch + (steps_per_epoch if step_in_epoch_2 == "last" else step_in_epoch_2)
    real_loss, calls = train_module.training_loss, {"n": 0}

    def poisoned(out, targets, objective="bce"):
        calls["n"] += 1
        loss = real_loss(out, targets, objective)
        return loss * float("nan") if calls["n"] == bad_step else loss

    monkeypatch.setattr(train_module, "training_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match=rf"loss is nan at step {bad_step} \(epoch 2\)") as err:
        train_run(cfg, folder / "train.npz", tmp_path, progress=False)
    assert "last good checkpoint is kept" in str(err.value)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize("keep", [False, True])
def test_the_last_epoch_writes_a_checkpoint_only_when_it_is_kept(tiny_run, tmp_path, monkeypatch, keep):
    """After the last epoch model.pt holds the weights: the resume checkpoint is written only under keep_checkpoint
    (on the paper profile that write is up to 2.3 GB per run), and every earlier epoch still writes one."""
    folder, cfg = tiny_run
    written = []
    real_save = train_module.save_checkpoint
    monkeypatch.setattr(train_module, "save_checkpoint", lambda path, state: (written.append(state["epoch"]),
                                                                              real_save(path, state)))
    run_cfg = {**cfg, "train": {**cfg["train"], "epochs": 2, "eval_every": 0, "keep_checkpoint": keep}}
    train_run(run_cfg, folder / "train.npz", tmp_path, progress=False)
    assert written == ([1, 2] if keep else [1])
    assert (tmp_path / "model.pt").exists() and (tmp_path / "checkpoint.pt").exists() == keep
    if keep:
        assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2


def test_train_json_says_where_the_time_went(tiny_run, tmp_path, monkeypatch, capsys):
    """Each part of the loop gets a known delay; each must land in its own entry of train.json's timing, and the
    parts must not add up to more than the wall time (nothing counted twice)."""
    folder, cfg = tiny_run
    delay = {"data": 0.03, "steps": 0.05, "test_map": 0.2, "checkpoints": 0.1}

    def slowed(function, seconds):
        def wrapper(*args, **kwargs):
            time.sleep(seconds)
            return function(*args, **kwargs)
        return wrapper

    def slow_batches(loader, timeout, real=train_module.batches):
        for batch in real(loader, timeout):
            time.sleep(delay["data"])
            yield batch

    monkeypatch.setattr(train_module, "batches", slow_batches)
    monkeypatch.setattr(train_module, "train_step", slowed(train_module.train_step, delay["steps"]))
    scored_epochs = []
    slow_test_map = slowed(train_module._test_map, delay["test_map"])
    monkeypatch.setattr(train_module, "_test_map", lambda *args: scored_epochs.append(len(scored_epochs) + 1)
                        or slow_test_map(*args))
    monkeypatch.setattr(train_module, "save_checkpoint", slowed(train_module.save_checkpoint, delay["checkpoints"]))
    run_cfg = {**cfg, "train": {**cfg["train"], "epochs": 2, "eval_every": 1}}
    timing = train_run(run_cfg, folder / "train.npz", tmp_path, progress=False,
                       test_index=folder / "test.npz")["timing"]
    assert timing == json.loads((tmp_path / "train.json").read_text())["timing"]
    steps = 2 * len(GlobalBatchSampler(150, cfg["data"]["batch_size"], 0))
    # epoch 1's test mAP in the loop; the last epoch's comes from the pass of model.pt after it (test_pass_s)
    expected = {"data": steps * delay["data"], "steps": steps * delay["steps"], "test_map": delay["test_map"],
                "checkpoints": delay["checkpoints"]}  # no checkpoint after the last epoch
    for part, least in expected.items():
        assert timing[f"{part}_s"] >= least, (part, timing)
    rounding = 0.0005 * (len(delay) + 1)  # every entry is rounded to the millisecond
    assert sum(timing[f"{part}_s"] for part in delay) <= timing["wall_s"] + rounding, timing
    assert scored_epochs == [1] and timing["test_pass_s"] > 0, (scored_epochs, timing)
    shares = r"drmoe/voc seed 0: [0-9.]+ s: data [0-9]+%, steps [0-9]+%, test map [0-9]+%, checkpoints [0-9]+%"
    assert re.search(shares, capsys.readouterr().out)


@pytest.mark.parametrize("interval", [60.0, 0.0])
def test_without_bars_a_long_epoch_and_its_evaluation_report_in_plain_lines(tiny_run, tmp_path, monkeypatch, capsys,
                                                                             interval):
    """`progress=False` (the Snakemake jobs' --no-progress): epochs and evaluations quicker than the line interval
    print nothing (the loss shown beside a bar every 10 steps must not force a line either); on work longer than
    the interval (0 s here) each epoch and the test-set evaluation after it say how far they are, in lines."""
    monkeypatch.setattr(progress, "LINE_EVERY_S", interval)
    folder, cfg = tiny_run
    run_cfg = {**cfg, "train": {**cfg["train"], "epochs": 1, "eval_every": 1}}
    train_run(run_cfg, folder / "train.npz", tmp_path, progress=False, test_index=folder / "test.npz")
    lines = capsys.readouterr().err.splitlines()
    if interval:
        assert lines == []
        return
    steps = len(GlobalBatchSampler(150, cfg["data"]["batch_size"], 0))
    test_batches = -(-150 // cfg["train"]["eval_batch_size"])
    assert any(line.startswith(f"drmoe/voc epoch 1/1: {steps}/{steps} batches [") for line in lines), lines
    assert any(line.startswith(f"evaluate drmoe/voc: {test_batches}/{test_batches} batches [") for line in lines), lines


@pytest.fixture(scope="module")
def demo_project(demo_voc_root, tmp_path_factory):
    """A folder laid out as the pipeline lays it out (config.yaml, results/demo/...) with one trained demo run whose
    training ended with its pass over the test split (test_scores.npz); the demo profile at 32 px and one epoch."""
    folder = tmp_path_factory.mktemp("demo_project")
    config = load_config(DEFAULT_CONFIG)
    demo = config["profiles"]["demo"]
    demo["input"]["image_size"] = 32
    demo["train"]["epochs"] = 1
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    paths = {split: folder / index_path("demo", "voc", split) for split in ("train", "test")}
    for split, name in (("train", "trainval"), ("test", "test")):
        paths[split].parent.mkdir(parents=True, exist_ok=True)
        load_voc(demo_voc_root, name).save(paths[split])
    cfg = resolve_run(config, "demo", "voc", "drmoe", 0)
    run = folder / run_dir("demo", "voc", "drmoe", 0)
    train_run(cfg, paths["train"], run, progress=False, test_index=paths["test"])
    return {"folder": folder, "cfg": cfg, "run": run, **paths}


def _evaluation_files(run: Path) -> dict[str, bytes]:
    return {name: without_timing(run / name) for name in (*EVALUATE_OUTPUTS, GATES)}


def test_evaluate_scores_the_pass_training_made_without_torch_and_gives_the_same_bytes(demo_project, tmp_path,
                                                                                        monkeypatch):
    """Training ends with a pass of model.pt over the test split; `evaluate` scores it in a process where torch
    cannot even be imported, and its files equal, byte for byte, those of an evaluation that makes the pass itself
    from model.pt. The kept pass is dropped once evaluated: model.pt stays the one source."""
    folder, cfg, run = demo_project["folder"], demo_project["cfg"], demo_project["run"]
    summary = json.loads((run / TRAIN_SUMMARY).read_text())
    assert (run / TEST_SCORES).exists() and summary["timing"]["test_pass_s"] > 0
    assert "test_mAP" in summary["history"][-1]  # the demo's eval_every: the last epoch's, from that pass
    again = tmp_path / "again"
    shutil.copytree(run, again)
    (again / TEST_SCORES).unlink()

    result = subprocess.run([sys.executable, "-m", "drmoe_repro", "evaluate", "--config", "config.yaml", "--profile",
                             "demo", "--dataset", "voc", "--system", "drmoe", "--seed", "0", "--no-progress"],
                            cwd=folder, env=_poisoned_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "the test split as training scored it with model.pt" in result.stdout
    assert not (run / TEST_SCORES).exists()

    monkeypatch.chdir(folder)  # run.json's git_commit is that of the folder, as for the command
    evaluate_run(cfg, demo_project["train"], demo_project["test"], again, progress=False)  # makes its own pass
    assert _evaluation_files(run) == _evaluation_files(again)
    metrics = json.loads((run / METRICS).read_text())
    assert summary["history"][-1]["test_mAP"] == pytest.approx(metrics["mAP[ap=noninterp]"], abs=1e-12)


def test_a_pass_from_other_weights_settings_or_test_index_is_not_used(demo_project, tmp_path, capsys):
    cfg, test_index = demo_project["cfg"], demo_project["test"]
    run = tmp_path / "run"
    shutil.copytree(demo_project["run"], run)
    save_test_scores(cfg, test_index, run, ScoredTestSplit(scores=np.zeros((3, 2), np.float32), gates=None,
                                                           decisions=None, device="cpu: test", wall_s=0.5))
    kept = load_test_scores(cfg, test_index, run)
    assert kept is not None and kept.scores.shape == (3, 2) and kept.device == "cpu: test" and kept.gates is None

    other_cfg = {**cfg, "train": {**cfg["train"], "eval_batch_size": cfg["train"]["eval_batch_size"] + 1}}
    other_index = tmp_path / "test.npz"
    other_index.write_bytes(test_index.read_bytes() + b"\0")
    assert load_test_scores(other_cfg, test_index, run) is None
    assert load_test_scores(cfg, other_index, run) is None
    weights = torch.load(run / MODEL)
    name = next(key for key, value in weights.items() if value.is_floating_point())
    weights[name] = weights[name] + 1
    torch.save(weights, run / MODEL)
    assert load_test_scores(cfg, test_index, run) is None
    said = capsys.readouterr().out
    assert said.count("was made from another model.pt, config or test index") == 3, said
    (run / TEST_SCORES).write_bytes(b"not an npz")
    assert load_test_scores(cfg, test_index, run) is None
    assert "cannot be read" in capsys.readouterr().out


def test_the_loss_watch_checks_each_loss_one_step_late():
    watch = LossWatch(torch.device("cpu"))
    watch.push(torch.tensor(0.5), "step 1")
    assert watch.last is None  # step 1 waits until step 2 is queued
    watch.push(torch.tensor(float("inf")), "step 2")
    assert watch.last == 0.5
    with pytest.raises(NonFiniteLossError, match=r"loss is inf at step 2$"):
        watch.push(torch.tensor(0.25), "step 3")
    assert not watch.pending  # nothing left to report twice
    watch.push(torch.tensor(float("nan")), "step 4")
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 4$"):
        watch.flush()


def test_global_batches_are_split_across_processes_without_loss_or_overlap():
    one = list(GlobalBatchSampler(37, 8, seed=3))
    shares = [list(GlobalBatchSampler(37, 8, seed=3, ctx=DistContext(rank, 2))) for rank in range(2)]
    assert len(one) == len(shares[0]) == len(shares[1]) == 5
    for batch, first, second in zip(one, *shares):
        items, combined = [i for i, _ in batch], [i for i, _ in first + second]
        if len(items) % 2 == 0:  # full global batches: the two shares are exactly the batch, split in two
            assert sorted(combined) == sorted(items) and len(first) == len(second)
        else:  # the short last batch (37 = 4 x 8 + 5) is topped up by one image so both processes get 3
            assert set(items) <= set(combined) and len(first) == len(second) == 3
    flattened = [i for batch in one for i, _ in batch]
    assert sorted(flattened) == list(range(37))


def test_drop_last_keeps_only_full_batches_of_the_same_permutation():
    """Query2Label's and ADD-GCN's loaders drop an epoch's short last batch: 37 images at 8 give 4 batches of 8, the
    first 32 images of the permutation the sampler draws without drop_last."""
    kept = list(GlobalBatchSampler(37, 8, seed=3, drop_last=True))
    full = list(GlobalBatchSampler(37, 8, seed=3))
    assert len(GlobalBatchSampler(37, 8, seed=3, drop_last=True)) == len(kept) == 4
    assert kept == full[:4] and all(len(batch) == 8 for batch in kept)
    shares = [list(GlobalBatchSampler(37, 8, seed=3, ctx=DistContext(rank, 2), drop_last=True)) for rank in range(2)]
    assert [sorted(a + b) for a, b in zip(*shares)] == [sorted(batch) for batch in kept]
    assert len(GlobalBatchSampler(32, 8, seed=3, drop_last=True)) == 4  # nothing to drop
    with pytest.raises(ValueError, match=r"drop_last with batch size 64 leaves no full batch of the 40 training"):
        GlobalBatchSampler(40, 64, seed=0, drop_last=True)


@pytest.mark.slow  # training subprocesses
def test_two_process_ddp_agrees_with_one_process(tiny_run, one_process_run, tmp_path):
    """gloo DDP on 2 CPU processes sees the same global batches; BatchNorm statistics per half-batch and the
    per-process loss normalisation make it differ slightly: mean |score difference| must stay below 0.05."""
    folder, _ = tiny_run
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    _finish(_driver(folder, tmp_path / "two", launcher))
    one, two = np.load(one_process_run / "scores.npy"), np.load(tmp_path / "two" / "scores.npy")
    assert json.loads((tmp_path / "two" / "train.json").read_text())["world_size"] == 2
    kept = np.load(tmp_path / "two" / "test_scores.npz")  # the first process's pass over the test split
    assert kept["scores"].tobytes() == two.tobytes()
    difference = np.abs(one - two).mean()
    assert difference < 0.05, difference


@pytest.mark.slow
def test_throughput_benchmark_runs_its_tiny_configuration(tmp_path):
    """Every registered model, as bench/gpu_checks.sh asks for them (`--models all`)."""
    out = tmp_path / "bench.csv"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "train_throughput.py"), "--tiny", "--device", "cpu", "--threads", "1",
         "--models", "all", "--out", str(out)], capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = __import__("pandas").read_csv(out)
    assert table["model"].tolist() == sorted(MODELS)
    assert (table["images_per_s"] > 0).all() and (table["gflop_per_image"] > 0).all()
    assert table["peak_gib_per_run"].isna().all()  # GPU memory: none on a CPU (the GPU check fills it)


@pytest.mark.slow
def test_throughput_benchmark_runs_concurrent_runs_and_the_naive_comparison(tmp_path):
    """Two runs side by side through the real data path (JPEG files), fused Adam, and the naive eager reference."""
    out = tmp_path / "bench.csv"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "train_throughput.py"), "--tiny", "--device", "cpu", "--threads", "1",
         "--models", "drmoe", "--concurrent-runs", "2", "--data", "real", "--fused", "--compare-naive",
         "--out", str(out)], capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    row = __import__("pandas").read_csv(out).iloc[0]
    assert row["runs"] == 2 and row["data"] == "real/cpu" and bool(row["fused"])
    assert row["images_per_s"] > 0 and row["naive_images_per_s"] > 0
    assert row["speedup"] == pytest.approx(row["images_per_s"] / row["naive_images_per_s"], rel=0.01)


@pytest.mark.slow
def test_slurm_profile_gives_a_valid_plan_for_the_paper_profile():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm", "--config", "profile=paper",
         "-n", "results/table1.csv"], cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "fetch" in out and "train" in out and "table" in out
    assert "gpu=1" in out


@pytest.mark.slow
def test_slurm_plan_gives_training_its_gpus_and_evaluation_one(tmp_path):
    """gpus_per_run: 2 makes each training job ask for 2 GPUs (it then runs torchrun), each evaluation for 1."""
    override = tmp_path / "two_gpus.yaml"
    override.write_text("profiles:\n  paper:\n    gpus_per_run: 2\n")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm", "--config", "profile=paper",
         "--configfile", str(override), "-n", "results/table1.csv"], cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    asked = {}
    for block in out.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        gpus = [part for part in block.split(", ") if part.startswith("gpu=")]
        asked.setdefault(rule, set()).update(part.split()[0] for part in gpus)
    assert asked["train"] == {"gpu=2"} and asked["evaluate"] == {"gpu=1"}


def test_gradient_accumulation_matches_one_full_batch():
    """Two micro-batches of 4 give the gradient of one batch of 8 (no BatchNorm or dropout in this model)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    wrapped = lambda images, targets=None: {"logits": model(images)}  # noqa: E731
    images, targets = torch.randn(8, 3, 2, 2), (torch.rand(8, 5) < 0.5).float()
    grads = []
    for steps in (1, 2):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: compare gradients, keep the weights
        loss = train_module.train_step(wrapped, optimizer, images, targets, accum_steps=steps)
        grads.append([p.grad.clone() for p in model.parameters()])
        assert torch.isfinite(loss)
    for full, accumulated in zip(*grads):
        torch.testing.assert_close(full, accumulated)


@pytest.mark.slow
def test_compiled_training_in_cuda_graph_mode_with_fused_adam_follows_the_eager_run(tiny_run, tmp_path, monkeypatch):
    """The speed options change kernels, not the recipe: one epoch's losses agree with the eager, unfused run.

    What is ours is checked here: the options reach torch.compile (the mode asked for is the mode given), DR-MoE's
    training step traces through TorchDynamo and AOTAutograd and trains, and the fused optimizer. The code generator
    runs as the `aot_eager` backend: Inductor's own kernels are PyTorch's and differ by device (C++ on a CPU, Triton on
    a GPU); the GPU check (bench/gpu_checks.sh, `all_compiled`) compiles every model with Inductor and CUDA graphs
    where they run, while on this CPU their C++ compilation alone took 154 s of the suite's time.
    """
    folder, cfg = tiny_run
    real_compile, asked = torch.compile, []

    def compile_with_aot_eager(model, **kwargs):
        asked.append(kwargs)
        return real_compile(model, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", compile_with_aot_eager)
    histories = []
    for name, speed in (("eager", {}), ("compiled", {"compile": True, "compile_mode": "reduce-overhead",
                                                    "fused_optimizer": True})):
        run_cfg = {**cfg, "train": {**cfg["train"], "epochs": 1, **speed}}
        histories.append(train_run(run_cfg, folder / "train.npz", tmp_path / name, progress=False)["history"])
    assert asked == [{"mode": "reduce-overhead"}]  # the eager run compiled nothing
    eager, compiled = (history[0]["mean_loss"] for history in histories)
    assert np.isfinite(compiled) and compiled == pytest.approx(eager, rel=1e-3)
