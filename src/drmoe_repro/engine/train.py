"""Training of one (profile, data set, system, seed) run: the paper's recipe (§4.2), seeded and resumable.

Adam with coupled weight decay, step decay x lr_gamma at the configured fractions of the epochs (the paper's 30 and
40 of 50), BCE over the labels that are not ignored (eq 10) plus the model's auxiliary loss (DR-MoE's entropy
term, eqs 11-12); a baseline's published recipe (optimizer, schedule, loss, weight EMA, augmentation) comes from
engine/recipes.py. A checkpoint after every epoch; `model.pt` (the final weights, or their EMA where the recipe
keeps one: the weights evaluated), the pass of model.pt over the test split that `evaluate` reuses (test_scores.npz,
engine/predict.py) and `train.json` (loss history, the test mAP per epoch with `train.eval_every`, timing) at the end.

Speed options (profile `train:` block): bf16 autocast, channels_last, torch.compile (with CUDA graphs under
`compile_mode: reduce-overhead`), a fused optimizer, gradient accumulation, and JPEG decoding on the training
device (`input.decode: device`, nvjpeg on a GPU). Under torchrun each process trains on its share of every global
batch (engine/distributed.py) and only the first process writes files.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from drmoe_repro.data.dataset import ImageLabelDataset, collate_encoded, decode_and_transform, training_targets
from drmoe_repro.data.index import LabelIndex
from drmoe_repro.data.transforms import build_recipe_train_transform
from drmoe_repro.data.pretrained import load_glove, load_imagenet_state_dict
from drmoe_repro.engine.checkpoint import load_checkpoint, load_weights, restore_rng_states, rng_states, save_checkpoint
from drmoe_repro.engine.determinism import make_deterministic, seed_worker
from drmoe_repro.engine.distributed import GlobalBatchSampler, init_distributed, shutdown_distributed
from drmoe_repro.engine.loss_watch import LossWatch, NonFiniteLossError
from drmoe_repro.engine.ema import ModelEma
from drmoe_repro.engine.evaluate import save_test_scores
from drmoe_repro.engine.losses import masked_asymmetric_loss
from drmoe_repro.engine.recipes import build_recipe
from drmoe_repro.layout import CHECKPOINT, MODEL, TRAIN_SUMMARY
from drmoe_repro.io import save_json, save_torch
from drmoe_repro.models.registry import DataInfo, build_model
from drmoe_repro.progress import progress_bar


def masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq 10 averaged over every (image, label) whose target is not ignored (-1)."""
    mask = (targets >= 0).to(logits.dtype)  # [B, L]
    losses = F.binary_cross_entropy_with_logits(logits, targets.clamp(min=0), reduction="none")  # [B, L]
    return (losses * mask).sum() / mask.sum().clamp_min(1.0)


def training_loss(out: dict, targets: torch.Tensor, loss: str = "bce") -> torch.Tensor:
    """Eq 10 (+ the model's auxiliary term, eq 11), or Query2Label's asymmetric loss ("asl", its published recipe);
    a model with its own objective (CNN-RNN) returns "loss"."""
    if "loss" in out:
        return out["loss"]
    if loss == "asl":
        return masked_asymmetric_loss(out["logits"].float(), targets) + out.get("aux_loss", 0.0)
    return masked_bce(out["logits"].float(), targets) + out.get("aux_loss", 0.0)


# Seconds to wait for the next batch from DataLoader workers before stopping the run (train.loader_timeout_s).
DEFAULT_LOADER_TIMEOUT_S = 600


def data_info_for(index: LabelIndex, model_cfg: dict, inputs: dict[str, Path] | None = None) -> DataInfo:
    """What the model builder gets: the training labels, and the tensors its settings ask for, loaded here.

    `inputs` maps layout.model_assets' roles to fetched locations: "backbone_weights" (a weights file),
    "label_vectors" (the GloVe folder or file). Models never read files themselves.
    """
    inputs = inputs or {}
    weights = vectors = None
    if "backbone_weights" in inputs:
        weights = load_imagenet_state_dict(model_cfg["backbone"], inputs["backbone_weights"])
    if "label_vectors" in inputs:
        vectors = torch.from_numpy(load_glove(inputs["label_vectors"], list(index.label_names)))  # [L, 300]
    return DataInfo(label_names=index.label_names, train_targets=index.targets, backbone_weights=weights,
                    label_vectors=vectors)


def train_step(model, optimizer, images: torch.Tensor, targets: torch.Tensor, *, precision: str = "fp32",
               accum_steps: int = 1, grad_clip: float | None = None, objective: str = "bce") -> torch.Tensor:
    """One optimiser step over a batch, split into `accum_steps` micro-batches; returns the batch's mean loss.

    The loss stays on the device, unchecked: testing it here would make the CPU wait for the step (the training
    loop checks it one step later, engine/loss_watch.py).
    """
    autocast = torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=images.device)
    chunks = list(zip(images.chunk(accum_steps), targets.chunk(accum_steps), strict=True))  # fewer if batch < steps
    for micro_images, micro_targets in chunks:
        with autocast:
            loss = training_loss(model(micro_images, micro_targets), micro_targets, objective)
        (loss / len(chunks)).backward()
        total += loss.detach() / len(chunks)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return total


def _device_for(cfg: dict) -> torch.device:
    """The current CUDA device: torchrun's local rank, or the GPU slot the command claimed (engine/devices.py)."""
    if cfg["device"] == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("the profile asks for device: cuda, but no CUDA device is visible")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def train_run(cfg: dict, train_index: Path, run_dir: Path, progress: bool = True,
              inputs: dict[str, Path] | None = None, test_index: Path | None = None) -> dict:
    """Train the run described by `cfg` (config.resolve_run) and write model.pt and train.json to run_dir.

    `inputs`: the fetched locations of what the model settings ask for (see `data_info_for`). `test_index`: the
    test split, which the saved model.pt is scored on at the end (test_scores.npz, for `evaluate`) and where
    `train.eval_every: N` scores the test mAP every N epochs (recorded in train.json; never used for choosing).
    """
    ctx = init_distributed(cfg["device"])
    try:
        summary = _train(cfg, train_index, run_dir, progress, inputs, ctx, test_index)
    finally:
        shutdown_distributed(ctx)
    if ctx.is_main:  # after the process group is gone: the pass is the first process's alone
        if test_index is not None:
            _score_saved_weights(cfg, summary, train_index, test_index, run_dir, progress)
        save_json(run_dir / TRAIN_SUMMARY, summary)
        if not cfg["train"].get("keep_checkpoint", False):
            (run_dir / CHECKPOINT).unlink(missing_ok=True)  # model.pt has the final weights
    return summary


def _test_map(model: torch.nn.Module, test: LabelIndex, cfg: dict, device: torch.device) -> float:
    """mAP of `model` on the test split (default convention), without touching the training RNG."""
    from drmoe_repro.engine.predict import predict

    scores, _, _ = predict(model, test, cfg, progress=False, device=device)
    return _map_of(scores, test)


def _map_of(scores: np.ndarray, test: LabelIndex) -> float:
    from drmoe_repro.metrics import compute_metrics

    return compute_metrics(scores, test.targets, test.label_names, top_k=None)["mAP[ap=noninterp]"]


def _score_saved_weights(cfg: dict, summary: dict, train_index: Path, test_index: Path, run_dir: Path,
                         progress: bool) -> None:
    """The pass of model.pt over the test split, kept for `evaluate` (engine/predict.py), once the training's own
    state is freed. Its mAP is the last epoch's test mAP where train.eval_every records one."""
    from drmoe_repro.engine.predict import score_test_split

    scored = score_test_split(cfg, train_index, test_index, run_dir, progress, device=_device_for(cfg))
    save_test_scores(cfg, test_index, run_dir, scored)
    if cfg["train"].get("eval_every") and summary["history"]:
        summary["history"][-1]["test_mAP"] = _map_of(scored.scores, LabelIndex.load(test_index))
    summary["timing"]["test_pass_s"] = scored.wall_s


def batches(loader: DataLoader, timeout: float | None):
    """Iterate the loader, turning a worker timeout into an error that says what happened and what to do."""
    try:
        yield from loader
    except RuntimeError as exc:
        if "DataLoader timed out" not in str(exc):
            raise
        raise RuntimeError(
            f"no batch arrived from the {loader.num_workers} data-loading workers within {timeout:g} s: a worker is "
            "stuck or died (see the messages above). Raise train.loader_timeout_s if your storage is that slow, or "
            "set train.num_workers: 0 to load in the training process"
        ) from None


def _train(cfg, train_index, run_dir, progress, inputs, ctx, test_index=None) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    generator = make_deterministic(cfg["seed"], cfg["torch_threads"])
    device = _device_for(cfg)
    train, seed = cfg["train"], cfg["seed"]
    index = LabelIndex.load(train_index)
    targets = training_targets(index.targets, cfg["data"].get("difficult_in_training", "ignore"))
    model = build_model(cfg["model_name"], cfg["model"], data_info_for(index, cfg["model"], inputs)).to(device)
    if train.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    sampler = GlobalBatchSampler(len(index), cfg["data"]["batch_size"], seed, ctx,
                                 drop_last=train.get("drop_last", False))
    recipe = build_recipe(model, cfg["model_name"], train, len(sampler))  # engine/recipes.py
    optimizer, scheduler = recipe.optimizer, recipe.scheduler
    ema = ModelEma(model, recipe.ema_decay) if recipe.ema_decay is not None else None
    eval_every = train.get("eval_every", 0)
    keep_checkpoint = train.get("keep_checkpoint", False)
    test = LabelIndex.load(test_index) if eval_every and test_index is not None else None
    step_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if ctx.enabled else model
    if train.get("compile"):
        # reduce-overhead records the step as CUDA graphs: one launch instead of hundreds of kernel launches.
        step_model = torch.compile(step_model, mode=train.get("compile_mode", "default"))

    transform = build_recipe_train_transform(recipe.augment, cfg["input"])
    on_device = cfg["input"].get("decode", "cpu") == "device"
    workers = train["num_workers"]
    timeout = train.get("loader_timeout_s", DEFAULT_LOADER_TIMEOUT_S) if workers > 0 else None
    loader = DataLoader(
        ImageLabelDataset(index, None if on_device else transform, targets, seed=seed, decode_on_device=on_device),
        batch_sampler=sampler,
        num_workers=workers,
        worker_init_fn=seed_worker,
        generator=generator,
        collate_fn=collate_encoded if on_device else None,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        timeout=timeout or 0,
    )

    checkpoint_path = run_dir / CHECKPOINT
    start_epoch, history = 0, []
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)  # names the file and the remedy if it is damaged
        if state["config"] == repr(cfg):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if ema is not None:
                ema.module.load_state_dict(state["ema"])
            restore_rng_states(state["rng"], generator)
            start_epoch, history = state["epoch"], list(state["history"])
            print(f"resuming {run_dir} from its checkpoint after epoch {start_epoch}")
        else:
            print(f"{checkpoint_path} belongs to another configuration: training from scratch")

    started = time.perf_counter()
    # Where the wall time goes, as the host sees it (DETR and mmengine log the same split per iteration): a large
    # share in "data" means the model waited for its batches. On a GPU, steps run asynchronously; the loss check
    # one step late is where the host waits for them, so that wait is counted in "steps".
    spent = dict.fromkeys(("data", "steps", "test_map", "checkpoints"), 0.0)
    images_seen, step = 0, start_epoch * len(sampler)
    channels_last = torch.channels_last if train.get("channels_last") else torch.contiguous_format
    watch = LossWatch(device)
    for epoch in range(start_epoch, train["epochs"]):
        sampler.set_epoch(epoch)
        step_model.train()
        losses = []
        bar = progress_bar(batches(loader, timeout), total=len(loader), unit="batches", bars=progress,
                           desc=f"{cfg['system']}/{cfg['dataset']} epoch {epoch + 1}/{train['epochs']}",
                           disable=not ctx.is_main, leave=False)
        tick = time.perf_counter()
        try:
            for batch in bar:
                if on_device:
                    encoded, batch_targets, items, epochs = batch
                    images = decode_and_transform(encoded, items, epochs, transform, seed, device, index)
                else:
                    images, batch_targets, _ = batch
                images = images.to(device, non_blocking=True, memory_format=channels_last)
                batch_targets = batch_targets.to(device, non_blocking=True)
                ready = time.perf_counter()
                spent["data"] += ready - tick
                step += 1
                loss = train_step(step_model, optimizer, images, batch_targets,
                                  precision=train.get("precision", "fp32"), accum_steps=train.get("accum_steps", 1),
                                  grad_clip=recipe.grad_clip, objective=recipe.loss)
                if recipe.scheduler_per_step:
                    scheduler.step()
                if ema is not None:
                    ema.update(model)
                watch.push(loss, f"step {step} (epoch {epoch + 1})")  # raises for the step before, if non-finite
                losses.append(loss)  # a device tensor: no host sync per step
                images_seen += images.shape[0] * ctx.world_size
                if ctx.is_main and step % 10 == 0 and watch.last is not None:
                    bar.set_postfix(loss=f"{watch.last:.4f}", refresh=progress)  # lines: shown with the next one
                tick = time.perf_counter()
                spent["steps"] += tick - ready
            watch.flush()  # every step of the epoch checked before its checkpoint is written
            spent["steps"] += time.perf_counter() - tick
        except NonFiniteLossError as exc:
            raise NonFiniteLossError(
                f"{exc} of {run_dir}; the run stopped and the last good checkpoint is kept at {checkpoint_path}"
            ) from None
        if not recipe.scheduler_per_step:
            scheduler.step()
        mean_loss = torch.stack(losses).mean().item() if losses else math.nan
        history.append({"epoch": epoch + 1, "mean_loss": mean_loss, "lr": optimizer.param_groups[0]["lr"]})
        last_epoch = epoch + 1 == train["epochs"]
        if test is not None and ctx.is_main and (epoch + 1) % eval_every == 0 and not last_epoch:
            # Recorded, never used to pick the checkpoint: the evaluated one is the last epoch's. The last epoch's
            # comes from the pass of its saved weights over the test split (`_score_saved_weights`).
            tick = time.perf_counter()
            history[-1]["test_mAP"] = _test_map(ema.module if ema is not None else model, test, cfg, device)
            spent["test_map"] += time.perf_counter() - tick
        if ctx.is_main:
            print(f"{cfg['system']}/{cfg['dataset']} seed {seed}: epoch {epoch + 1}/{train['epochs']} "
                  f"mean loss {mean_loss:.4f}", flush=True)
        # After the last epoch model.pt is written next and the checkpoint would only be deleted (a crash before
        # model.pt resumes from the epoch before and retrains the last one, with the same bytes): not written, which
        # spares the paper profile a write of up to 2.3 GB per run (see `drmoe-repro plan`).
        if ctx.is_main and (not last_epoch or keep_checkpoint):
            tick = time.perf_counter()
            save_checkpoint(checkpoint_path, {
                "config": repr(cfg),
                "epoch": epoch + 1,
                "history": history,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                **({"ema": ema.module.state_dict()} if ema is not None else {}),
                "rng": rng_states(generator),
            })
            spent["checkpoints"] += time.perf_counter() - tick
        ctx.barrier()

    wall = time.perf_counter() - started
    summary = {
        "history": history,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "num_train_images": len(index),
        "evaluated_weights": "the weight EMA (its recipe's)" if ema is not None else "the last epoch's",
        "world_size": ctx.world_size,
        "timing": {
            "wall_s": round(wall, 3),
            "images_per_s": round(images_seen / wall, 2) if wall > 0 else math.nan,
            "resumed_from_epoch": start_epoch,
            **{f"{part}_s": round(seconds, 3) for part, seconds in spent.items()},
        },
    }
    if ctx.is_main:
        shares = ", ".join(f"{part.replace('_', ' ')} {seconds / max(wall, 1e-9):.0%}"
                           for part, seconds in spent.items())
        print(f"{cfg['system']}/{cfg['dataset']} seed {seed}: {wall:.1f} s: {shares}", flush=True)
        save_torch(run_dir / MODEL, (ema.module if ema is not None else model).state_dict())
    return summary


def load_trained_model(cfg: dict, train_index: Path, run_dir: Path) -> torch.nn.Module:
    """The trained model of a run: its architecture, then every parameter and buffer from model.pt.

    model.pt holds every weight, the pretrained ones included, so the model is built without its pretrained inputs:
    no ImageNet weights or GloVe file is read (GloVe's place is held by zeros until the state dict fills it), and
    without drawing the random weights that the state dict replaces (models/registry.py: init_weights).
    """
    index = LabelIndex.load(train_index)
    model_cfg = {**cfg["model"], "pretrained": False}
    info = data_info_for(index, model_cfg)
    if model_cfg.get("label_embedding") == "glove":
        info = DataInfo(info.label_names, info.train_targets, label_vectors=torch.zeros(len(index.label_names), 300))
    model = build_model(cfg["model_name"], model_cfg, info, init_weights=False)
    model.load_state_dict(load_weights(run_dir / MODEL))  # strict: every parameter and buffer is replaced
    return model
