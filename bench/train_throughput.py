"""Images/s of a training step for every registered model, with the model FLOPs utilisation (MFU).

    python bench/train_throughput.py                        # paper configuration: ResNet-101, 448 px, L = 80
    python bench/train_throughput.py --precision bf16 --channels-last --compile --device cuda
    python bench/train_throughput.py --data real --workers 16 --decode device   # through the real data path
    python bench/train_throughput.py --compile --compile-mode reduce-overhead --fused   # CUDA graphs, fused Adam
    python bench/train_throughput.py --concurrent-runs 3     # three runs (batch 32 each) sharing the device
    python bench/train_throughput.py --compare-naive         # also each model's naive eager rate, and the ratio
    python bench/train_throughput.py --tiny                  # a quick CPU check of the demo's models (the tests)
    python bench/train_throughput.py --profile demo --device cpu --threads 1 --channels-last
                                                             # the demo's models, as `make demo` trains them

Synthetic input isolates the step; `--data real` writes COCO-sized JPEGs (640x480) to a temporary folder and feeds
the step through the engine's own dataset, sampler and transforms (CPU workers, or nvjpeg decoding on the GPU with
`--decode device`). The step is the engine's `train_step`, with the loss checked one step late, as `drmoe-repro
train` runs it; the clock spans all timed steps (the GPU is synchronised at its two ends only). FLOPs per image are
counted once with torch's FlopCounterMode (forward + backward); MFU = achieved FLOP/s / `--peak-tflops`.

`--concurrent-runs K` starts K processes that each train their own copy of the model at the same batch, as K runs
of the pipeline sharing one GPU would (`runs_per_gpu: K`); they start their timed steps together, and the table's
rate is their aggregate: all images / (last end - first start). (On a GPU, NVIDIA's MPS daemon lets their kernels
overlap; without it the GPU time-slices between them.) `--compare-naive` also times each model as a naive eager
step (bf16 autocast, channels_last, torch's default optimizer, no compile, one process, synthetic input: the
naive reference's configuration) and reports `speedup` = rate / naive rate.
On a GPU, `peak_gib_per_run` is the most memory one run's tensors held (torch.cuda.max_memory_allocated, from the
model's construction to its last timed step): whether a run at this batch fits a card, e.g. Query2Label's published
batch of 64 (`--models q2l --batch 64`).
Prints a table; `--out` also writes it as CSV. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from drmoe_repro.config import DEFAULT_CONFIG, load_config, profile_of, resolve_run
from drmoe_repro.data.dataset import ImageLabelDataset, collate_encoded, decode_and_transform
from drmoe_repro.data.index import LabelIndex
from drmoe_repro.data.transforms import build_train_transform
from drmoe_repro.engine.distributed import GlobalBatchSampler
from drmoe_repro.engine.loss_watch import LossWatch
from drmoe_repro.engine.recipes import build_recipe
from drmoe_repro.engine.train import train_step
from drmoe_repro.model_keys import model_config_for
from drmoe_repro.models import MODELS, DataInfo, build_model
from drmoe_repro.plan import label_count

BARRIER_TIMEOUT_S = 1800  # the runs wait for each other after warm-up, which includes compilation


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="all", help="comma-separated registered models, or 'all'")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--profile", default="paper",
                        help="whose model and input settings: 'paper' (ResNet-101, 448 px) or 'demo' (tiny_cnn, 64 px)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32, help="images per step (the paper's COCO batch: 32)")
    parser.add_argument("--image-size", type=int, default=None, help="default: the profile's (paper: 448)")
    parser.add_argument("--labels", type=int, default=None,
                        help="L (default: the profile's COCO, as `drmoe-repro plan` counts it: 80, the demo's 20)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, cuDNN autotune)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--compile-mode", default="default",
                        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
                        help="torch.compile mode (reduce-overhead: CUDA graphs)")
    parser.add_argument("--fused", action="store_true", help="fused optimizer (train.fused_optimizer)")
    parser.add_argument("--concurrent-runs", type=int, default=1, metavar="K",
                        help="K processes train side by side on the device; the rate is their aggregate")
    parser.add_argument("--compare-naive", action="store_true",
                        help="also time each model's naive eager step and report the speedup over it")
    parser.add_argument("--data", choices=["synthetic", "real"], default="synthetic")
    parser.add_argument("--decode", choices=["cpu", "device"], default="cpu", help="real data: where JPEGs decode")
    parser.add_argument("--workers", type=int, default=8, help="real data: DataLoader workers")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak for MFU (default: 790 bf16 / 395 fp32-tf32 on a GPU, none on a CPU)")
    parser.add_argument("--tiny", action="store_true",
                        help="a quick CPU check: the demo profile's models, at most 4 images a step, 2 steps")
    parser.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    args = parser.parse_args(argv)
    if args.labels is None:  # the profile's COCO, as `plan` counts it
        profile = "demo" if args.tiny else args.profile
        args.labels = label_count(profile_of(load_config(args.config), profile), profile, "coco")
    return args


def model_config(args, name: str) -> tuple[dict, dict, dict]:
    """Model `name`'s own settings in the profile (the keys it reads, model_keys.py), the input and train blocks."""
    config = load_config(args.config)
    profile = "demo" if args.tiny else args.profile
    cfg = resolve_run(config, profile, "coco", "drmoe", 0)  # the input and train blocks every system shares
    model_cfg = model_config_for(name, copy.deepcopy(profile_of(config, profile)["model"]))
    model_cfg["pretrained"] = False  # weights and word vectors do not change the speed, and need no download
    if "label_embedding" in model_cfg:
        model_cfg["label_embedding"] = "random"
    input_cfg = copy.deepcopy(cfg["input"])
    if args.image_size:
        input_cfg["image_size"] = args.image_size
    return model_cfg, input_cfg, cfg["train"]


def synthetic_batches(args, size, device, memory_format):
    """One fixed batch, already on the device in the step's memory format (as the naive reference keeps it)."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, size, size, generator=gen).to(device, memory_format=memory_format)
    targets = (torch.rand(args.batch, args.labels, generator=gen) < 0.05).float().to(device)
    while True:
        yield images, targets


def fake_coco_index(folder: Path, count: int, labels: int) -> LabelIndex:
    """COCO-sized JPEGs (640x480, noise plus gradients), written once per folder, and an index over them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = [f"{i:06d}.jpg" for i in range(count)]
    written = folder / f"written-{count}"
    for path in ([] if written.exists() else paths):
        base = np.linspace(0, 255, 640, dtype=np.float32)[None, :, None] * rng.random(3, dtype=np.float32)
        pixels = np.clip(base + rng.normal(0, 40, (480, 640, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / path, quality=90)
    written.touch()
    targets = (np.random.default_rng(1).random((count, labels)) < 0.05).astype(np.int8)
    return LabelIndex(str(folder), tuple(str(i) for i in range(count)), tuple(paths),
                      tuple(f"label{j}" for j in range(labels)), targets)


def image_count(args) -> int:
    return max(4 * args.batch, 64)


def real_batches(args, input_cfg, decode: str, folder: Path, device):
    index = fake_coco_index(folder, image_count(args), args.labels)
    transform = build_train_transform(input_cfg)
    on_device = decode == "device"
    sampler = GlobalBatchSampler(len(index), args.batch, seed=0)
    loader = torch.utils.data.DataLoader(
        ImageLabelDataset(index, None if on_device else transform, seed=0, decode_on_device=on_device),
        batch_sampler=sampler, num_workers=args.workers, persistent_workers=args.workers > 0,
        collate_fn=collate_encoded if on_device else None, pin_memory=device.type == "cuda",
        prefetch_factor=4 if args.workers > 0 else None,
    )
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        for batch in loader:
            if on_device:
                encoded, targets, items, epochs = batch
                yield decode_and_transform(encoded, items, epochs, transform, 0, device, index), targets
            else:
                images, targets, _ = batch
                yield images, targets
        epoch += 1


def flops_per_image(model, images, targets, precision) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = model(images[:2], targets[:2])
        loss = out["loss"] if "loss" in out else out["logits"].float().sum()
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


@dataclasses.dataclass(frozen=True)
class Variant:
    """How a step runs: what the flags choose, or the naive reference's configuration."""

    precision: str
    channels_last: bool
    compile: bool
    compile_mode: str
    fused: bool
    data: str
    decode: str

    @classmethod
    def from_args(cls, args) -> "Variant":
        return cls(args.precision, args.channels_last, args.compile, args.compile_mode, args.fused, args.data,
                   args.decode)

    @classmethod
    def naive(cls) -> "Variant":
        return cls("bf16", True, False, "default", False, "synthetic", "cpu")


def timed_steps(name, args, variant: Variant, device, folder: Path, barrier=None) -> dict:
    """Warm up, wait for the other runs at `barrier` (if any), then time `args.steps` steps of model `name`."""
    model_cfg, input_cfg, train_cfg = model_config(args, name)
    memory_format = torch.channels_last if variant.channels_last else torch.contiguous_format
    batches = synthetic_batches(args, input_cfg["image_size"], device, memory_format) \
        if variant.data == "synthetic" else real_batches(args, input_cfg, variant.decode, folder, device)
    info = DataInfo(tuple(f"label{j}" for j in range(args.labels)),
                    (np.random.default_rng(0).random((256, args.labels)) < 0.05).astype(np.int8))
    torch.manual_seed(0)
    if device.type == "cuda":  # the peak of this model's steps alone, not of the models benchmarked before it
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = build_model(name, model_cfg, info).to(device)
    model = model.to(memory_format=memory_format)
    recipe = build_recipe(model, name, {**train_cfg, "fused_optimizer": variant.fused}, steps_per_epoch=10**6)
    optimizer, grad_clip = recipe.optimizer, recipe.grad_clip
    images, targets = next(batches)
    flops = flops_per_image(model, images.to(device), targets.to(device), variant.precision)
    step_model = torch.compile(model, mode=variant.compile_mode) if variant.compile else model
    watch = LossWatch(device)

    def step():
        images, targets = next(batches)
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        targets = targets.to(device, non_blocking=True)
        loss = train_step(step_model, optimizer, images, targets, precision=variant.precision, grad_clip=grad_clip)
        watch.push(loss, name)  # as the training loop does: checked one step late, no wait for this step

    def finish():
        watch.flush()
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    finish()
    if barrier is not None:  # every run starts its timed steps together
        try:
            barrier.wait(timeout=BARRIER_TIMEOUT_S)
        except threading.BrokenBarrierError:
            raise RuntimeError(f"another concurrent run of {name} did not finish its warm-up within "
                               f"{BARRIER_TIMEOUT_S} s (it failed or is stuck: see its messages)") from None
    # One window over all timed steps, as training runs them: the CPU queues a step while the GPU runs the one
    # before, so a per-step clock (which would have to wait for each step) would understate the rate. The window
    # includes waiting for batches: with --data real a starved GPU shows as a lower rate.
    window_start = time.monotonic()  # system-wide: concurrent runs' windows are compared
    for _ in range(args.steps):
        step()
    finish()
    window_end = time.monotonic()
    # Tensors only (weights, optimizer state, activations, workspaces), as torch's allocator counts them: the CUDA
    # context and the caching allocator's unused reserve come on top, so a card needs some headroom beyond this.
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"step_s": (window_end - window_start) / args.steps, "window": (window_start, window_end), "flops": flops,
            "parameters": sum(p.numel() for p in model.parameters()), "image_size": input_cfg["image_size"],
            "peak_bytes": peak}


def _concurrent_run(name, args, variant, device_name, folder, barrier, rank):
    set_up_torch(args)  # a spawned process starts with torch's defaults
    result = timed_steps(name, args, variant, torch.device(device_name), Path(folder), barrier)
    (Path(folder) / f"concurrent-{rank}.json").write_text(json.dumps(result))


def measure(name, args, variant: Variant, device, folder: Path, runs: int = 1) -> dict:
    """Mean step time and images/s of one run, or the aggregate images/s of `runs` runs side by side."""
    if runs == 1:
        result = timed_steps(name, args, variant, device, folder)
        return {**result, "images_per_s": args.batch / result["step_s"]}
    # Each run writes its result to the temporary folder: no Manager, whose server would be one more spawned
    # process importing torch.
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    barrier = context.Barrier(runs)
    processes = [context.Process(target=_concurrent_run,
                                 args=(name, args, variant, str(device), str(folder), barrier, rank))
                 for rank in range(runs)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = [rank for rank, process in enumerate(processes) if process.exitcode != 0]
    if failed:
        raise RuntimeError(f"concurrent runs {failed} of {name} failed (exit codes "
                           f"{[processes[r].exitcode for r in failed]})")
    files = [folder / f"concurrent-{rank}.json" for rank in range(runs)]
    parts = [json.loads(file.read_text()) for file in files]
    for file in files:
        file.unlink()  # the next model's runs write their own
    start = min(part["window"][0] for part in parts)
    end = max(part["window"][1] for part in parts)
    peaks = [part["peak_bytes"] for part in parts if part["peak_bytes"] is not None]
    return {**parts[0], "step_s": statistics.median(part["step_s"] for part in parts),
            "images_per_s": runs * args.steps * args.batch / (end - start),
            "peak_bytes": max(peaks) if peaks else None}  # per run: each process counts its own tensors


def bench_model(name, args, device, folder: Path) -> dict:
    variant = Variant.from_args(args)
    result = measure(name, args, variant, device, folder, args.concurrent_runs)
    rate = result["images_per_s"]
    peak = args.peak_tflops or ((790 if args.precision == "bf16" else 395) if device.type == "cuda" else None)
    row = {
        "model": name, "batch": args.batch, "runs": args.concurrent_runs, "image_size": result["image_size"],
        "precision": args.precision,
        "compile": args.compile_mode if args.compile else "no", "fused": args.fused,
        "data": args.data if args.data == "synthetic" else f"real/{args.decode}",
        "step_ms": round(1000 * result["step_s"], 2), "images_per_s": round(rate, 1),
        "gflop_per_image": round(result["flops"] / 1e9, 2),
        "mfu_percent": round(100 * rate * result["flops"] / (peak * 1e12), 1) if peak else None,
        "parameters_M": round(result["parameters"] / 1e6, 2),
        # Peak GPU memory of one run (empty on a CPU): whether a run of this batch fits a card of a given size.
        "peak_gib_per_run": None if result["peak_bytes"] is None else round(result["peak_bytes"] / 2**30, 2),
    }
    if args.compare_naive:
        naive = measure(name, args, Variant.naive(), device, folder)["images_per_s"]
        row.update(naive_images_per_s=round(naive, 1), speedup=round(rate / naive, 2))
    return row


def set_up_torch(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True  # speed, not determinism, is measured here
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.tiny:
        args.steps, args.warmup, args.batch, args.workers = min(args.steps, 2), 1, min(args.batch, 4), 0
    set_up_torch(args)
    device = torch.device(args.device)
    names = sorted(MODELS) if args.models == "all" else args.models.split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        print(f"unknown models {unknown}; registered: {', '.join(sorted(MODELS))}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.data == "real":
            fake_coco_index(Path(tmp), image_count(args), args.labels)  # before any concurrent run reads them
        for name in names:
            rows.append(bench_model(name, args, device, Path(tmp)))
            print(rows[-1], flush=True)
    import pandas as pd

    table = pd.DataFrame(rows)
    print(f"\ndevice: {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}")
    print(table.to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
