"""Images/s of a training step for every registered model, with the model FLOPs utilisation (MFU).

    python bench/train_throughput.py                        # paper configuration: ResNet-101, 448 px, L = 80
    python bench/train_throughput.py --precision bf16 --channels-last --compile --device cuda
    python bench/train_throughput.py --data real --workers 16 --decode device   # through the real data path
    python bench/train_throughput.py --tiny                  # a CPU-sized configuration (run by the tests)

Synthetic input isolates the step; `--data real` writes COCO-sized JPEGs (640x480) to a temporary folder and feeds
the step through the engine's own dataset, sampler and transforms (CPU workers, or nvjpeg decoding on the GPU with
`--decode device`). The step is the engine's `train_step` (the one `drmoe-repro train` runs). FLOPs per image are
counted once with torch's FlopCounterMode (forward + backward); MFU = achieved FLOP/s / `--peak-tflops`.
Prints a table; `--out` also writes it as CSV. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from drmoe_repro.config import DEFAULT_CONFIG, load_config, resolve_run
from drmoe_repro.data.dataset import ImageLabelDataset, collate_encoded, decode_and_transform
from drmoe_repro.data.index import LabelIndex
from drmoe_repro.data.transforms import build_train_transform
from drmoe_repro.engine.distributed import GlobalBatchSampler
from drmoe_repro.engine.recipes import build_optimizer
from drmoe_repro.engine.train import train_step
from drmoe_repro.models import MODELS, DataInfo, build_model

TINY = {"backbone": "tiny_cnn", "d_model": 32, "n_heads": 2, "n_enc": 1, "n_dec": 1, "ffn_dim": 64}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="all", help="comma-separated registered models, or 'all'")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32, help="images per step (the paper's COCO batch: 32)")
    parser.add_argument("--image-size", type=int, default=None, help="default: the paper profile's 448")
    parser.add_argument("--labels", type=int, default=80, help="L (COCO: 80)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, cuDNN autotune)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--data", choices=["synthetic", "real"], default="synthetic")
    parser.add_argument("--decode", choices=["cpu", "device"], default="cpu", help="real data: where JPEGs decode")
    parser.add_argument("--workers", type=int, default=8, help="real data: DataLoader workers")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak for MFU (default: 790 bf16 / 395 fp32-tf32 on a GPU, none on a CPU)")
    parser.add_argument("--tiny", action="store_true", help="tiny CPU configuration: tiny_cnn, 64 px, 2 steps")
    parser.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    return parser.parse_args(argv)


def model_config(args) -> tuple[dict, dict, dict]:
    config = load_config(args.config)
    cfg = resolve_run(config, "paper", "coco", "drmoe", 0)
    model_cfg = copy.deepcopy(cfg["model"])
    model_cfg["pretrained"] = False  # weights and word vectors do not change the speed, and need no download
    model_cfg["label_embedding"] = "random"
    input_cfg = copy.deepcopy(cfg["input"])
    if args.tiny:
        model_cfg.update(TINY)
        input_cfg["image_size"] = 64
    if args.image_size:
        input_cfg["image_size"] = args.image_size
    return model_cfg, input_cfg, cfg["train"]


def synthetic_batches(args, size):
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, size, size, generator=gen)
    targets = (torch.rand(args.batch, args.labels, generator=gen) < 0.05).float()
    while True:
        yield images, targets


def write_fake_coco_jpegs(folder: Path, count: int, labels: int) -> LabelIndex:
    """COCO-sized JPEGs (640x480, noise plus gradients), and an index over them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        base = np.linspace(0, 255, 640, dtype=np.float32)[None, :, None] * rng.random(3, dtype=np.float32)
        pixels = np.clip(base + rng.normal(0, 40, (480, 640, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:06d}.jpg", quality=90)
        paths.append(f"{i:06d}.jpg")
    targets = (rng.random((count, labels)) < 0.05).astype(np.int8)
    return LabelIndex(str(folder), tuple(str(i) for i in range(count)), tuple(paths),
                      tuple(f"label{j}" for j in range(labels)), targets)


def real_batches(args, input_cfg, folder: Path, device):
    index = write_fake_coco_jpegs(folder, max(4 * args.batch, 64), args.labels)
    transform = build_train_transform(input_cfg)
    on_device = args.decode == "device"
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
                yield decode_and_transform(encoded, items, epochs, transform, 0, device), targets
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


def bench_model(name, args, model_cfg, input_cfg, train_cfg, batches, device) -> dict:
    info = DataInfo(tuple(f"label{j}" for j in range(args.labels)),
                    (np.random.default_rng(0).random((256, args.labels)) < 0.05).astype(np.int8))
    torch.manual_seed(0)
    model = build_model(name, model_cfg, info).to(device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer, _, grad_clip = build_optimizer(model, name, train_cfg)
    images, targets = next(batches)
    flops = flops_per_image(model, images.to(device), targets.to(device), args.precision)
    step_model = torch.compile(model) if args.compile else model
    times = []
    for i in range(args.warmup + args.steps):
        # The clock includes waiting for the batch: with --data real a starved GPU shows as a lower rate.
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        images, targets = next(batches)
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        targets = targets.to(device, non_blocking=True)
        train_step(step_model, optimizer, images, targets, precision=args.precision, grad_clip=grad_clip)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    rate = args.batch / step_s
    peak = args.peak_tflops or ((790 if args.precision == "bf16" else 395) if device.type == "cuda" else None)
    return {
        "model": name, "batch": args.batch, "image_size": input_cfg["image_size"], "precision": args.precision,
        "data": args.data if args.data == "synthetic" else f"real/{args.decode}",
        "step_ms": round(1000 * step_s, 2), "images_per_s": round(rate, 1),
        "gflop_per_image": round(flops / 1e9, 2),
        "mfu_percent": round(100 * rate * flops / (peak * 1e12), 1) if peak else None,
        "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.tiny:
        args.steps, args.warmup, args.batch, args.workers = min(args.steps, 2), 1, min(args.batch, 4), 0
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True  # speed, not determinism, is measured here
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    model_cfg, input_cfg, train_cfg = model_config(args)
    names = sorted(MODELS) if args.models == "all" else args.models.split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        print(f"unknown models {unknown}; registered: {', '.join(sorted(MODELS))}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            batches = synthetic_batches(args, input_cfg["image_size"]) if args.data == "synthetic" \
                else real_batches(args, input_cfg, Path(tmp), device)
            rows.append(bench_model(name, args, model_cfg, input_cfg, train_cfg, batches, device))
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
