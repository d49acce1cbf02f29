"""Seeding and deterministic-mode switches, applied once at the start of every command that computes.

Same config + same seed + same thread count gives byte-identical outputs on the CPU (README, "Determinism").
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def make_deterministic(seed: int, threads: int) -> torch.Generator:
    """Seed Python, NumPy and torch, pin the thread count, forbid non-deterministic kernels.

    Returns a torch.Generator seeded from `seed`, for the DataLoader's shuffling and its workers' base seeds.
    """
    # cuBLAS needs this set before the first CUDA call to be deterministic.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: derive NumPy/Python seeds from the per-worker torch seed the loader assigns."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
