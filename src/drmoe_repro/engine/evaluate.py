"""Evaluation of a trained run: writes the evaluation files of its run directory (layout.py).

predictions.npz (image_ids, label_names, targets, scores), gates.npz for mixture-of-experts models, metrics.json
(every metric named with its convention, the label-prior reference), conventions.csv (the same scores under each
metric convention) and run.json (resolved config, seed, code version, libraries, device, timing).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from drmoe_repro import metrics
from drmoe_repro.data.dataset import ImageLabelDataset
from drmoe_repro.data.index import LabelIndex
from drmoe_repro.data.transforms import build_eval_transform
from drmoe_repro.engine.determinism import make_deterministic
from drmoe_repro.engine.provenance import device_description, git_commit, library_versions
from drmoe_repro.engine.train import DEFAULT_LOADER_TIMEOUT_S, batches, label_prior, load_trained_model
from drmoe_repro.layout import CONVENTIONS, GATES, METRICS, PREDICTIONS, RUN_INFO, TRAIN_SUMMARY
from drmoe_repro.io import load_json, save_json, save_npz, write_text
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


def evaluate_run(cfg: dict, train_index: Path, test_index: Path, run_dir: Path, progress: bool = True) -> dict:
    make_deterministic(cfg["seed"], cfg["torch_threads"])
    started = time.perf_counter()
    index = LabelIndex.load(test_index)
    model = load_trained_model(cfg, train_index, run_dir)
    scores, gates, decisions = predict(model, index, cfg, progress)
    wall = time.perf_counter() - started

    image_ids = np.array(index.image_ids, dtype=str)
    label_names = np.array(index.label_names, dtype=str)
    save_npz(run_dir / PREDICTIONS, image_ids=image_ids, label_names=label_names,
             targets=index.targets, scores=scores, **({} if decisions is None else {"decisions": decisions}))
    if gates is not None:
        n_shared = gates.shape[2] - 1
        expert_names = np.array([f"shared_{j + 1}" for j in range(n_shared)] + ["task"], dtype=str)
        save_npz(run_dir / GATES, image_ids=image_ids, label_names=label_names,
                 expert_names=expert_names, gates=gates)

    results = metrics.compute_metrics(scores, index.targets, index.label_names, decisions=decisions)
    results["headline_f1_from"] = metrics.f1_source(results)
    if gates is not None:
        results["gates"] = metrics.gate_statistics(gates)
    prior = np.broadcast_to(label_prior(train_index), scores.shape)
    prior_metrics = metrics.compute_metrics(prior, index.targets, index.label_names, top_k=None)
    results["reference"] = {"label_prior_mAP": metrics.headline(prior_metrics)["mAP"]}
    results["headline"] = metrics.headline(results)
    save_json(run_dir / METRICS, results)
    # COCO images without any annotation (kept with keep_unannotated) get their own rows: with and without them.
    unannotated = (index.targets == 1).sum(axis=1) == 0 if cfg["data"]["format"] == "coco" else None
    sensitivity = metrics.convention_sensitivity(scores, index.targets, index.label_names, unannotated_mask=unannotated,
                                                 decisions=decisions)
    write_text(run_dir / CONVENTIONS, metrics.conventions_csv(sensitivity))

    train_summary = load_json(run_dir / TRAIN_SUMMARY)
    save_json(run_dir / RUN_INFO, {
        "config": cfg,
        "seed": cfg["seed"],
        "git_commit": git_commit(),
        "libraries": library_versions(),
        "device": device_description(cfg["device"]),
        "num_parameters": train_summary["num_parameters"],
        "num_train_images": train_summary.get("num_train_images"),
        "num_test_images": len(index),
        "timing": {
            "train_wall_s": train_summary["timing"]["wall_s"],
            "train_images_per_s": train_summary["timing"]["images_per_s"],
            "eval_wall_s": round(wall, 3),
            "eval_images_per_s": round(len(index) / wall, 2) if wall > 0 else None,
        },
    })
    return results
