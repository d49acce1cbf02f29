"""The one pass of a trained run's saved weights (model.pt) over its test split.

Training ends with this pass (engine/train.py) and keeps its result in the run directory (layout.TEST_SCORES), so
that `evaluate` neither starts the model again nor waits for a GPU; `evaluate` makes the pass itself where that file
is missing or was made from other weights, settings or test index (engine/evaluate.py). Either way the scores come
from this function, on the same weights loaded from model.pt the same way: the evaluation files have the same bytes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from drmoe_repro.data.dataset import ImageLabelDataset
from drmoe_repro.data.index import LabelIndex
from drmoe_repro.data.transforms import build_eval_transform
from drmoe_repro.engine.determinism import make_deterministic
from drmoe_repro.engine.evaluate import ScoredTestSplit
from drmoe_repro.engine.provenance import device_description
from drmoe_repro.engine.train import DEFAULT_LOADER_TIMEOUT_S, batches, load_trained_model
from drmoe_repro.progress import progress_bar


@torch.no_grad()
def predict(model: torch.nn.Module, index: LabelIndex, cfg: dict, progress: bool = True,
            device: torch.device | None = None):
    """Scores [N, L] float32 after the sigmoid, gates [N, L, E] float32 and decided label sets [N, L] int8 (None for
    models without gates or decisions).

    The loader has a generator of its own: predicting never draws from the global RNG, so evaluating during
    training (train.eval_every) leaves the training run's random stream, and its bytes, unchanged.
    """
    device = torch.device(cfg["device"]) if device is None else device
    was_training = model.training
    model.to(device).eval()
    workers = cfg["train"]["num_workers"]
    timeout = cfg["train"].get("loader_timeout_s", DEFAULT_LOADER_TIMEOUT_S) if workers > 0 else None
    loader = DataLoader(
        ImageLabelDataset(index, build_eval_transform(cfg["input"])),
        batch_size=cfg["train"]["eval_batch_size"],
        shuffle=False,
        num_workers=workers,
        timeout=timeout or 0,
        generator=torch.Generator().manual_seed(0),
    )
    scores, gates, decisions = [], [], []
    for images, _, _ in progress_bar(batches(loader, timeout), total=len(loader), unit="batches", bars=progress,
                                     desc=f"evaluate {cfg['system']}/{cfg['dataset']}", leave=False):
        out = model(images.to(device))
        scores.append(torch.sigmoid(out["logits"].float()).cpu())
        if "gates" in out:
            gates.append(out["gates"].float().cpu())
        if "decisions" in out:
            decisions.append(out["decisions"].cpu())
    score_matrix = torch.cat(scores).numpy().astype(np.float32)
    gate_tensor = torch.cat(gates).numpy().astype(np.float32) if gates else None
    decided = torch.cat(decisions).numpy().astype(np.int8) if decisions else None
    model.train(was_training)
    return score_matrix, gate_tensor, decided


def score_test_split(cfg: dict, train_index: Path, test_index: Path, run_dir: Path, progress: bool = True,
                     device: torch.device | None = None) -> ScoredTestSplit:
    """Load the run's model.pt (as `load_trained_model` does) and score the test split with it."""
    make_deterministic(cfg["seed"], cfg["torch_threads"])
    started = time.perf_counter()
    model = load_trained_model(cfg, train_index, run_dir)
    scores, gates, decisions = predict(model, LabelIndex.load(test_index), cfg, progress, device)
    return ScoredTestSplit(scores=scores, gates=gates, decisions=decisions, device=device_description(cfg["device"]),
                           wall_s=round(time.perf_counter() - started, 3))
