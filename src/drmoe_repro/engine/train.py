"""Training of one (profile, data set, system, seed) run: the paper's recipe (§4.2), seeded and resumable.

Adam with coupled weight decay, step decay x lr_gamma at the configured fractions of the epochs (the paper's 30 and
40 of 50), BCE over the labels that are not ignored (eq 10) plus the model's auxiliary loss (DR-MoE's entropy
term, eqs 11-12). A checkpoint after every epoch; `model.pt` (final weights) and `train.json` (loss history,
timing) at the end.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from drmoe_repro.data.dataset import ImageLabelDataset, training_targets
from drmoe_repro.data.index import LabelIndex
from drmoe_repro.data.transforms import build_train_transform
from drmoe_repro.engine.checkpoint import load_checkpoint, restore_rng_states, rng_states, save_checkpoint
from drmoe_repro.engine.determinism import make_deterministic, seed_worker
from drmoe_repro.io import atomic_path, save_json
from drmoe_repro.models.registry import DataInfo, build_model


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


def masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq 10 averaged over every (image, label) whose target is not ignored (-1)."""
    mask = (targets >= 0).to(logits.dtype)  # [B, L]
    losses = F.binary_cross_entropy_with_logits(logits, targets.clamp(min=0), reduction="none")  # [B, L]
    return (losses * mask).sum() / mask.sum().clamp_min(1.0)


def training_loss(out: dict, targets: torch.Tensor) -> torch.Tensor:
    """Eq 10 (+ the model's auxiliary term, eq 11); a model with its own objective (CNN-RNN) returns "loss"."""
    if "loss" in out:
        return out["loss"]
    return masked_bce(out["logits"], targets) + out.get("aux_loss", 0.0)


def lr_milestone_epochs(train_cfg: dict) -> list[int]:
    return [int(round(f * train_cfg["epochs"])) for f in train_cfg["lr_milestones"]]


def data_info_for(index: LabelIndex) -> DataInfo:
    return DataInfo(label_names=index.label_names, train_targets=index.targets)


def train_run(cfg: dict, train_index: Path, run_dir: Path, progress: bool = True) -> dict:
    """Train the run described by `cfg` (config.resolve_run) and write model.pt and train.json to run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    generator = make_deterministic(cfg["seed"], cfg["torch_threads"])
    device = torch.device(cfg["device"])
    index = LabelIndex.load(train_index)
    targets = training_targets(index.targets, cfg["data"].get("difficult_in_training", "ignore"))
    model = build_model(cfg["model_name"], cfg["model"], data_info_for(index)).to(device)

    train = cfg["train"]
    optimizer = torch.optim.Adam(model.parameters(), lr=train["lr"], weight_decay=train["weight_decay"])
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, lr_milestone_epochs(train), gamma=train["lr_gamma"])
    dataset = ImageLabelDataset(index, build_train_transform(cfg["input"]), targets)
    loader = DataLoader(
        dataset,
        batch_size=cfg["data"]["batch_size"],
        shuffle=True,
        generator=generator,
        num_workers=train["num_workers"],
        worker_init_fn=seed_worker,
        pin_memory=device.type == "cuda",
    )

    checkpoint_path = run_dir / "checkpoint.pt"
    start_epoch, history = 0, []
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        if state["config"] == repr(cfg):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            restore_rng_states(state["rng"], generator)
            start_epoch, history = state["epoch"], list(state["history"])
            print(f"resuming {run_dir} from its checkpoint after epoch {start_epoch}")
        else:
            print(f"{checkpoint_path} belongs to another configuration: training from scratch")

    started = time.perf_counter()
    images_seen = 0
    step = start_epoch * len(loader)
    for epoch in range(start_epoch, train["epochs"]):
        model.train()
        total, batches = 0.0, 0
        bar = tqdm(loader, desc=f"{cfg['system']}/{cfg['dataset']} epoch {epoch + 1}/{train['epochs']}",
                   disable=not progress, leave=False)
        for images, batch_targets, _ in bar:
            images, batch_targets = images.to(device, non_blocking=True), batch_targets.to(device, non_blocking=True)
            out = model(images, batch_targets)
            loss = training_loss(out, batch_targets)
            step += 1
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"loss is {loss.item()} at step {step} (epoch {epoch + 1}) of {run_dir}; "
                    f"the last good checkpoint is kept at {checkpoint_path}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
            images_seen += images.shape[0]
            bar.set_postfix(loss=f"{loss.item():.4f}")
        scheduler.step()
        history.append({"epoch": epoch + 1, "mean_loss": total / max(batches, 1), "lr": optimizer.param_groups[0]["lr"]})
        print(f"{cfg['system']}/{cfg['dataset']} seed {cfg['seed']}: epoch {epoch + 1}/{train['epochs']} "
              f"mean loss {history[-1]['mean_loss']:.4f}", flush=True)
        save_checkpoint(checkpoint_path, {
            "config": repr(cfg),
            "epoch": epoch + 1,
            "history": history,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_states(generator),
        })

    wall = time.perf_counter() - started
    with atomic_path(run_dir / "model.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    summary = {
        "history": history,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "timing": {
            "wall_s": round(wall, 3),
            "images_per_s": round(images_seen / wall, 2) if wall > 0 else math.nan,
            "resumed_from_epoch": start_epoch,
        },
    }
    save_json(run_dir / "train.json", summary)
    return summary


def load_trained_model(cfg: dict, train_index: Path, run_dir: Path) -> torch.nn.Module:
    index = LabelIndex.load(train_index)
    model = build_model(cfg["model_name"], cfg["model"], data_info_for(index))
    model.load_state_dict(torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True))
    return model


def label_prior(train_index: Path) -> np.ndarray:
    """Per-label frequency of positives in the training set: the scores of the label-prior reference."""
    targets = LabelIndex.load(train_index).targets
    return (targets == 1).mean(axis=0).astype(np.float32)  # [L]
