"""Which GPUs a run trains on: free GPU slots, claimed with file locks.

Snakemake starts runs side by side as its `--resources gpu=N` allows, but it does not say which GPU each should
use. Every run started outside torchrun therefore claims a slot here before it touches CUDA: each visible GPU
has `runs_per_gpu` slots (1 by default: a GPU per run), a slot is an exclusive `flock` on a file in a per-user
folder under the temporary directory, and the kernel drops the lock when the process ends, however it ends (a
killed run never leaves a GPU claimed). Runs spread over the GPUs first and share one only when every GPU already
has a run. A run that finds every slot taken waits for one.

Under SLURM each job claims within its own allocation (the lock folder is per job): the scheduler already gave it
its GPUs, and a job's GPU 0 is not another job's GPU 0.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (ids or UUIDs), else '0'..'N-1'."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [name.strip() for name in listed.split(",") if name.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def slot_folder() -> Path:
    """Where the slot locks live: one folder per user, and per SLURM job inside an allocation."""
    job = os.environ.get("SLURM_JOB_ID", "local")
    return Path(tempfile.gettempdir()) / f"drmoe-repro-gpu-slots-{getpass.getuser()}" / job


@dataclass
class GpuClaim:
    """GPUs held by this process until `release()` (or its exit). `indices` count within the visible GPUs."""

    gpus: list[str]
    indices: list[int]
    handles: list[int] = field(default_factory=list, repr=False)  # lock file descriptors

    def release(self) -> None:
        for handle in self.handles:
            os.ftruncate(handle, 0)  # no stale pid in the waiting message
            os.close(handle)  # closing the last descriptor of the lock drops it
        self.handles.clear()

    def __enter__(self) -> "GpuClaim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock_path(folder: Path, gpu: str, slot: int) -> Path:
    return folder / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', gpu)}-slot{slot}.lock"


def _try_lock(path: Path) -> int | None:
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return None
    os.ftruncate(handle, 0)
    os.write(handle, f"{os.getpid()}\n".encode())  # who holds it, for the waiting message
    return handle


def _holders(folder: Path) -> list[str]:
    pids = []
    for path in sorted(folder.glob("gpu-*.lock")):
        text = path.read_text(errors="replace").strip()
        if text:
            pids.append(f"{path.name}: pid {text}")
    return pids


def try_claim(count: int, runs_per_gpu: int, gpus: list[str], folder: Path) -> GpuClaim | None:
    """`count` distinct GPUs, one slot on each, or None if that many are not free now."""
    folder.mkdir(parents=True, exist_ok=True)
    claimed: dict[int, int] = {}  # visible index -> lock handle
    for slot in range(runs_per_gpu):  # slot-major: every GPU gets its first run before any GPU gets a second
        for index, gpu in enumerate(gpus):
            if index in claimed:
                continue
            handle = _try_lock(_lock_path(folder, gpu, slot))
            if handle is not None:
                claimed[index] = handle
                if len(claimed) == count:
                    indices = sorted(claimed)
                    return GpuClaim([gpus[i] for i in indices], indices, [claimed[i] for i in indices])
    for handle in claimed.values():
        os.close(handle)
    return None


def claim_gpus(count: int, runs_per_gpu: int = 1, gpus: list[str] | None = None, folder: Path | None = None,
               wait_s: float | None = None, poll_s: float = 5.0) -> GpuClaim:
    """Claim `count` GPUs (a slot on each), waiting up to `wait_s` seconds (None: as long as it takes)."""
    gpus = visible_gpus() if gpus is None else gpus
    folder = slot_folder() if folder is None else folder
    if count < 1 or runs_per_gpu < 1:
        raise ValueError(f"a run needs at least one GPU and one slot per GPU (got {count} GPUs, {runs_per_gpu} slots)")
    if count > len(gpus):
        raise RuntimeError(f"the run asks for {count} GPUs (gpus_per_run) but this process sees {len(gpus)} "
                           f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    deadline = None if wait_s is None else time.monotonic() + wait_s
    announced = False
    while True:
        claim = try_claim(count, runs_per_gpu, gpus, folder)
        if claim is not None:
            return claim
        if deadline is not None and time.monotonic() >= deadline:
            raise RuntimeError(f"no {count} free GPU slot(s) within {wait_s:g} s; held in {folder}: "
                               f"{'; '.join(_holders(folder)) or 'none'}")
        if not announced:
            print(f"every GPU slot is taken ({'; '.join(_holders(folder))}); waiting for one. Give Snakemake "
                  f"`--resources gpu=N` (N = GPUs x runs_per_gpu) to start only as many runs as there are slots.",
                  file=sys.stderr, flush=True)
            announced = True
        time.sleep(poll_s)


def under_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def torchrun_command(nproc: int, cli_args: list[str]) -> list[str]:
    """The command that re-runs `drmoe-repro <cli_args>` as `nproc` data-parallel processes on one node."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "drmoe_repro", *cli_args]


def run_on_claimed_gpus(prof: dict, gpus_needed: int, work: Callable[[], int], cli_args: list[str]) -> int:
    """Run `work` on GPUs claimed for this run, or right away on a CPU profile or under torchrun.

    A run that needs several GPUs starts torchrun with one process per claimed GPU, each repeating `cli_args`;
    torchrun inherits the lock descriptors, so the GPUs stay claimed as long as it runs, even if this process dies.
    """
    if prof["device"] != "cuda" or under_torchrun():
        return work()
    with claim_gpus(gpus_needed, prof.get("runs_per_gpu", 1)) as claim:
        print(f"{cli_args[0]} on GPU {', '.join(claim.gpus)}", flush=True)
        if gpus_needed > 1:
            env = dict(os.environ, CUDA_VISIBLE_DEVICES=",".join(claim.gpus))
            return subprocess.call(torchrun_command(gpus_needed, cli_args), env=env, pass_fds=claim.handles)
        import torch

        torch.cuda.set_device(claim.indices[0])
        return work()
