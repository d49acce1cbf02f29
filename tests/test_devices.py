"""GPU placement (engine/devices.py): slots claimed with file locks, no GPU needed to test the bookkeeping."""

import os
import signal
import subprocess
import sys
import textwrap
from argparse import Namespace
from pathlib import Path

import pytest

from drmoe_repro.commands import common
from drmoe_repro.engine import devices
from drmoe_repro.engine.devices import claim_gpus, slot_folder, try_claim, visible_gpus


def test_runs_spread_over_the_gpus_before_any_gpu_gets_a_second_run(tmp_path):
    held = [claim_gpus(1, runs_per_gpu=2, gpus=["0", "1"], folder=tmp_path, wait_s=0) for _ in range(4)]
    assert [claim.gpus for claim in held] == [["0"], ["1"], ["0"], ["1"]]
    with pytest.raises(RuntimeError, match=r"no 1 free GPU slot\(s\) within 0 s.*pid"):
        claim_gpus(1, runs_per_gpu=2, gpus=["0", "1"], folder=tmp_path, wait_s=0)
    held[1].release()
    assert claim_gpus(1, runs_per_gpu=2, gpus=["0", "1"], folder=tmp_path, wait_s=0).gpus == ["1"]


def test_one_run_per_gpu_by_default(tmp_path):
    first = claim_gpus(1, gpus=["GPU-a1"], folder=tmp_path, wait_s=0)
    assert first.gpus == ["GPU-a1"] and first.indices == [0]
    assert try_claim(1, 1, ["GPU-a1"], tmp_path) is None
    first.release()
    assert try_claim(1, 1, ["GPU-a1"], tmp_path) is not None


def test_a_multi_gpu_claim_takes_all_or_nothing(tmp_path):
    gpus = ["3", "5", "7"]
    pair = claim_gpus(2, gpus=gpus, folder=tmp_path, wait_s=0)
    assert pair.gpus == ["3", "5"] and pair.indices == [0, 1]
    assert try_claim(2, 1, gpus, tmp_path) is None  # only "7" is free: nothing is kept
    assert claim_gpus(1, gpus=gpus, folder=tmp_path, wait_s=0).gpus == ["7"]


def test_asking_for_more_gpus_than_visible_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(RuntimeError, match=r"asks for 2 GPUs \(gpus_per_run\) but this process sees 1 "
                                           r"\(CUDA_VISIBLE_DEVICES=0\)"):
        claim_gpus(2, folder=tmp_path)


def test_a_killed_run_frees_its_gpu(tmp_path):
    holder = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from drmoe_repro.engine.devices import claim_gpus
        claim = claim_gpus(1, gpus=["0"], folder=Path({str(tmp_path)!r}), wait_s=0)
        print("claimed", flush=True)
        time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "claimed"
        with pytest.raises(RuntimeError, match=f"pid {process.pid}"):
            claim_gpus(1, gpus=["0"], folder=tmp_path, wait_s=0)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert claim_gpus(1, gpus=["0"], folder=tmp_path, wait_s=0).gpus == ["0"]


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-1b2c, 2")
    assert visible_gpus() == ["GPU-1b2c", "2"]


def test_each_slurm_job_claims_within_its_own_allocation(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    local = slot_folder()
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert slot_folder() != local and slot_folder().name == "4242"


# ----------------------------------------------------------------------------------------------------------------
# The commands' side: a CPU profile never claims, a GPU profile claims, several GPUs start torchrun
# ----------------------------------------------------------------------------------------------------------------

ARGS = Namespace(config=Path("workflow/config.yaml"), dataset="coco", system="drmoe", seed=1, no_progress=True)


@pytest.fixture
def fake_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6,9")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(devices, "slot_folder", lambda: tmp_path)
    return tmp_path


def test_a_cpu_profile_runs_without_claiming(fake_gpus):
    assert devices.run_on_claimed_gpus({"device": "cpu"}, 1, lambda: 7, ["train"]) == 7
    assert list(fake_gpus.glob("*.lock")) == []


def test_a_single_gpu_run_claims_a_slot_and_makes_it_current(fake_gpus, monkeypatch):
    import torch

    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    first = try_claim(1, 1, ["4", "6", "9"], fake_gpus)  # another run already has GPU 4

    def work():
        assert try_claim(2, 1, ["4", "6", "9"], fake_gpus) is None  # this run holds GPU 6 while it works
        return 0

    assert devices.run_on_claimed_gpus({"device": "cuda", "runs_per_gpu": 1}, 1, work, ["train"]) == 0
    assert chosen == [1]  # the second visible GPU, "6"
    first.release()
    assert try_claim(3, 1, ["4", "6", "9"], fake_gpus) is not None  # all free again


def test_a_multi_gpu_run_starts_torchrun_on_its_claimed_gpus(fake_gpus, monkeypatch):
    calls = []

    def fake_call(command, env, pass_fds):
        calls.append((command, env["CUDA_VISIBLE_DEVICES"]))
        assert try_claim(2, 1, ["4", "6", "9"], fake_gpus) is None  # held while torchrun runs
        assert len(pass_fds) == 2  # torchrun inherits both locks
        return 0

    monkeypatch.setattr(devices.subprocess, "call", fake_call)
    cli = common.run_cli_args("train", ARGS, "paper")
    assert devices.run_on_claimed_gpus({"device": "cuda"}, 2, lambda: pytest.fail("trained in the launcher"), cli) == 0
    (command, visible), = calls
    assert visible == "4,6"
    assert command[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert command[5:] == ["-m", "drmoe_repro", "train", "--config", "workflow/config.yaml", "--profile", "paper",
                           "--dataset", "coco", "--system", "drmoe", "--seed", "1", "--no-progress"]


def test_torchrun_processes_train_without_claiming_again(fake_gpus, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert devices.run_on_claimed_gpus({"device": "cuda"}, 2, lambda: 5, ["train"]) == 5
    assert list(fake_gpus.glob("*.lock")) == []


def test_sharing_a_gpu_needs_one_gpu_per_run():
    from drmoe_repro.config import DEFAULT_CONFIG, ConfigError, load_config, validate

    config = load_config(DEFAULT_CONFIG)
    config["profiles"]["paper"].update(runs_per_gpu=3, gpus_per_run=2)
    with pytest.raises(ConfigError, match=r"profiles.paper.runs_per_gpu=3 .* gpus_per_run must be 1 \(got 2\)"):
        validate(config)


def test_a_child_that_inherits_the_locks_keeps_the_gpus_claimed_after_its_parent_dies(tmp_path):
    """What the torchrun launch relies on: the claim lives as long as any process holding its descriptors."""
    claim = claim_gpus(1, gpus=["0"], folder=tmp_path, wait_s=0)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], pass_fds=claim.handles)
    try:
        for handle in claim.handles:
            os.close(handle)  # the parent lets go (as if it died); the child still holds the lock
        claim.handles.clear()
        assert try_claim(1, 1, ["0"], tmp_path) is None
    finally:
        child.kill()
        child.wait()
    assert try_claim(1, 1, ["0"], tmp_path) is not None
