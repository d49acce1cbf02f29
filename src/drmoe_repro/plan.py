"""What a target will cost before anything runs: trainings, epochs, images, disk, and (estimated) GPU-hours.

`drmoe-repro plan [TARGET ...]` prints it, and the report repeats the deterministic part (no time estimates) in its
first lines. Counts come from the config: the training images of a data set are its `expected_images` (or the demo's
`demo_images`, or the prepared index where it exists); parameters are counted on a model built on the meta device
(no memory, no weights read). Time is an estimate from a throughput: the user's `--images-per-s`, or the best
matching row of a `bench/train_throughput.py --out` CSV; evaluation is taken as a third of a training step per
image (a forward pass without the backward), and said to be.
"""

from __future__ import annotations

import csv
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from drmoe_repro.config import expected_counts, profile_of, resolve_run
from drmoe_repro.layout import index_path, report_outputs, report_runs, table_runs

# Label counts of the data sets before `prepare` has read them (COCO 2014: 80, VOC 2007: 20; the demo: 20).
LABELS_BY_FORMAT = {"coco": 80, "voc": 20}
DEMO_LABELS = 20
EVAL_COST = 1 / 3  # a forward pass, relative to a training step, per image
BYTES_PER_PARAMETER = 4  # fp32 weights
CHECKPOINT_FACTOR = 3  # resume checkpoint: weights + Adam's two moments


@dataclass(frozen=True)
class RunCost:
    dataset: str
    system: str
    seed: int
    model: str
    epochs: int
    train_images: int | None
    test_images: int | None
    parameters: int
    image_size: int

    @property
    def trained_images(self) -> int | None:
        return None if self.train_images is None else self.epochs * self.train_images


def _image_counts(prof: dict, profile: str, dataset: str) -> dict[str, int | None]:
    spec = prof["datasets"][dataset]
    counts: dict[str, int | None] = {"train": None, "test": None}
    full = expected_counts(prof, dataset) or (spec.get("demo_images") if spec["source"] == "demo" else None)
    if full:
        counts.update(full)
    for split in ("train", "test"):  # a prepared index knows the real count (a subset, say)
        path = index_path(profile, dataset, split)
        if path.is_file():
            import numpy as np

            with np.load(path) as data:
                counts[split] = int(data["image_ids"].shape[0])
    return counts


def label_count(prof: dict, profile: str, dataset: str) -> int:
    """L of a data set: from its prepared index where there is one, else its format's known count (or the demo's)."""
    path = index_path(profile, dataset, "train")
    if path.is_file():
        import numpy as np

        with np.load(path) as data:
            return int(data["label_names"].shape[0])
    spec = prof["datasets"][dataset]
    return DEMO_LABELS if spec["source"] == "demo" else LABELS_BY_FORMAT[spec["format"]]


def count_parameters(model_name: str, model_cfg: dict, num_labels: int) -> int:
    """Parameters of a model at this configuration, built on the meta device: nothing is allocated or read."""
    import numpy as np
    import torch

    from drmoe_repro.models import DataInfo, build_model

    cfg = {**model_cfg, "pretrained": False}
    info = DataInfo(tuple(f"label{i}" for i in range(num_labels)), np.zeros((1, num_labels), dtype=np.int8),
                    label_vectors=torch.zeros(num_labels, 300) if cfg.get("label_embedding") == "glove" else None)
    with torch.device("meta"):
        model = build_model(model_name, cfg, info, init_weights=False)
    return sum(p.numel() for p in model.parameters())


def run_costs(config: dict, profile: str, runs: list[tuple[str, str, int]]) -> list[RunCost]:
    prof = profile_of(config, profile)
    costs, parameters = [], {}
    for dataset, system, seed in runs:
        cfg = resolve_run(config, profile, dataset, system, seed)
        counts = _image_counts(prof, profile, dataset)
        key = (cfg["model_name"], repr(sorted(cfg["model"].items())), dataset)
        if key not in parameters:
            parameters[key] = count_parameters(cfg["model_name"], cfg["model"], label_count(prof, profile, dataset))
        costs.append(RunCost(dataset, system, seed, cfg["model_name"], cfg["train"]["epochs"], counts["train"],
                             counts["test"], parameters[key], cfg["input"]["image_size"]))
    return costs


# ----------------------------------------------------------------------------------------------------------------
# Throughput
# ----------------------------------------------------------------------------------------------------------------


def bench_throughputs(path: Path) -> dict[tuple[str, int], tuple[float, str]]:
    """(model, image size) -> (images/s, which row) from a bench/train_throughput.py CSV: one run per GPU, the real
    data path where measured, the fastest such row."""
    best: dict[tuple[str, int], tuple[tuple, float, str]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                rate, size, runs = float(row["images_per_s"]), int(row["image_size"]), int(row.get("runs") or 1)
            except (KeyError, ValueError):
                continue
            if runs != 1:
                continue
            rank = (str(row.get("data", "")).startswith("real"), rate)
            key = (row["model"], size)
            if key not in best or rank > best[key][0]:
                desc = f"{path}: {row['model']} {row.get('data', '')} {row.get('precision', '')} batch {row.get('batch')}"
                best[key] = (rank, rate, desc)
    return {key: (rate, desc) for key, (_, rate, desc) in best.items()}


# ----------------------------------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------------------------------


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:,.1f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:,.1f} MB"


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def summary_lines(costs: list[RunCost], profile: str, assets: Mapping[str, dict | None]) -> list[str]:
    """The deterministic part of a plan: trainings, epochs, images, disk (no time).

    `assets`: every asset the runs need -> its config entry (`profiles.<profile>.assets.<name>`), or None for one
    the suite generates (the demo data sets)."""
    if not costs:
        return ["Nothing to train."]
    trained = [c.trained_images for c in costs]
    known = [t for t in trained if t is not None]
    images = f"{sum(known):,}" + ("" if len(known) == len(trained) else f" (and {len(trained) - len(known)} runs "
                                                                             "of unknown size)")
    model_bytes = sum(c.parameters for c in costs) * BYTES_PER_PARAMETER
    largest = max(c.parameters for c in costs) * BYTES_PER_PARAMETER
    datasets = sorted({c.dataset for c in costs})
    lines = [
        f"{len(costs)} trainings ({', '.join(f'{sum(c.dataset == d for c in costs)} on {d}' for d in datasets)}), "
        f"{sum(c.epochs for c in costs):,} epochs in all, {images} training images at "
        f"{'/'.join(str(s) for s in sorted({c.image_size for c in costs}))} px.",
        f"Disk: model.pt {_size(model_bytes)} in all (kept); while a run trains its resume checkpoint takes up to "
        f"{_size(largest * CHECKPOINT_FACTOR)} more (dropped when it finishes, unless train.keep_checkpoint).",
    ]
    return lines + asset_lines(assets)


def asset_lines(assets: Mapping[str, dict | None]) -> list[str]:
    """What the runs need before they start: downloads with their bytes (the config's `size`), local copies, and
    generated data sets."""
    downloads = {name: spec for name, spec in assets.items() if spec is not None and spec.get("local") is None}
    local = [name for name, spec in assets.items() if spec is not None and spec.get("local") is not None]
    generated = [name for name, spec in assets.items() if spec is None]
    lines = []
    if downloads:
        sized = [spec["size"] for spec in downloads.values() if spec.get("size")]
        unsized = [name for name, spec in downloads.items() if not spec.get("size")]
        if not sized:
            size = "sizes not in the config"
        else:
            size = _size(sum(sized))
            if unsized:
                size += f", not counting {', '.join(unsized)} (no size in the config)"
        lines.append(f"Downloads first (where not fetched yet): {', '.join(downloads)}: {size}. Archives are kept "
                     "after extraction, which needs their unpacked size on top (fetch checks it against the free "
                     "disk before it extracts).")
    if local:
        lines.append(f"Local copies, used where they are (the config's `local`): {', '.join(local)}.")
    if generated:
        lines.append(f"Generated first (where not generated yet): {', '.join(generated)}.")
    return lines


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_space_line(folders: dict[str, Path]) -> str:
    """How much disk is free now where each kind of output will go, e.g. the runs and the data, to set beside the
    plan's sizes. A folder not made yet is measured on its nearest existing parent."""
    parts = []
    for what, folder in folders.items():
        try:
            free = shutil.disk_usage(_existing_ancestor(folder)).free
        except OSError:
            parts.append(f"unknown for {what} ({folder})")
            continue
        parts.append(f"{_size(free)} for {what} ({folder})")
    return "Free disk now: " + ", ".join(parts) + "."


def time_lines(costs: list[RunCost], images_per_s: float | None, bench: dict, unit: str) -> list[str]:
    """Estimated device-hours per model and in all, labelled as an estimate, from the given or benched rates."""
    by_model: dict[str, list[RunCost]] = {}
    for c in costs:
        by_model.setdefault(c.model, []).append(c)
    lines, total, missing = [], 0.0, []
    for model, group in sorted(by_model.items()):
        size = group[0].image_size
        if (model, size) in bench:
            rate, source = bench[(model, size)]
        elif images_per_s:
            rate, source = images_per_s, "--images-per-s"
        else:
            missing.append(model)
            continue
        images = sum((c.trained_images or 0) + EVAL_COST * (c.test_images or 0) for c in group)
        hours = images / rate / 3600
        total += hours
        lines.append(f"  {model}: {_runs(len(group))}, {hours:,.1f} {unit}-hours at {rate:,.0f} images/s ({source})")
    if len(missing) == len(by_model):
        head = [f"Estimated {unit}-hours: unknown without a throughput."]
    else:
        head = [f"Estimated {unit}-hours (an estimate: throughput x images; evaluation counted as "
                f"{EVAL_COST:.2f} of a training step per image): {total:,.1f} in all"
                + (f", not counting {', '.join(missing)}" if missing else "") + "."]
    if missing:
        lines.append(f"  no throughput for {', '.join(missing)}: give --images-per-s, or --bench-csv from "
                     "`python bench/train_throughput.py --out FILE`")
    return head + lines


TABLE_TARGET = re.compile(r"^results/(table[1-6]|recipes|ablations)\.csv$")


def runs_for_targets(config: dict, profile: str, targets: list[str]) -> list[tuple[str, str, int]]:
    """The runs the given Snakemake targets need (none given: the default target, every table and the report)."""
    report_targets = {str(p) for p in report_outputs(config, profile).values()} | {"all"}
    runs: set[tuple[str, str, int]] = set()
    for target in targets or ["all"]:
        match = TABLE_TARGET.match(target)
        if match:
            runs.update(table_runs(config, profile, match.group(1).removeprefix("table")))
        elif target in report_targets:
            runs.update(report_runs(config, profile))
        else:
            raise ValueError(f"plan: unknown target {target!r}; targets: results/table1.csv ... results/table6.csv, "
                             "results/recipes.csv, results/ablations.csv, "
                             f"or the report's outputs ({', '.join(sorted(report_targets))})")
    return sorted(runs)
