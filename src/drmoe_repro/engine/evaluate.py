"""Evaluation of a trained run: writes the evaluation files of its run directory (layout.py).

predictions.npz (image_ids, label_names, targets, scores[, decisions]), gates.npz for mixture-of-experts models,
metrics.json (every metric named with its convention, the label-prior reference), conventions.csv (the same scores
under each metric convention) and run.json (resolved config, seed, code version, libraries, device, timing).

The scores are those of the pass that training made over the test split with its saved weights (test_scores.npz,
engine/predict.py) when that pass matches the run's model.pt, config and test index; otherwise evaluation makes the
pass itself. This module imports no torch: scoring a pass that training made needs none.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drmoe_repro import metrics
from drmoe_repro.data.index import LabelIndex
from drmoe_repro.engine.provenance import git_commit, library_versions
from drmoe_repro.layout import CONVENTIONS, GATES, METRICS, MODEL, PREDICTIONS, RUN_INFO, TEST_SCORES, TRAIN_SUMMARY
from drmoe_repro.io import dumps_json, load_json, load_npz, save_json, save_npz, write_text


@dataclass
class ScoredTestSplit:
    """One pass of a run's saved weights over its test split (engine/predict.py)."""

    scores: np.ndarray  # [N, L] float32, after the sigmoid
    gates: np.ndarray | None  # [N, L, E] float32, mixture-of-experts models
    decisions: np.ndarray | None  # [N, L] int8, models that decide label sets (CNN-RNN's beam search)
    device: str  # where the pass ran (provenance.device_description)
    wall_s: float  # loading model.pt and the pass


def pass_key(cfg: dict, test_index: Path, run_dir: Path) -> str:
    """What a pass depends on: the run's resolved config, the bytes of its model.pt and of the test index."""
    digest = hashlib.sha256(dumps_json(cfg).encode())
    for path in (run_dir / MODEL, test_index):
        with open(path, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def save_test_scores(cfg: dict, test_index: Path, run_dir: Path, scored: ScoredTestSplit) -> None:
    """Keep a pass in the run directory (layout.TEST_SCORES) under the key of what it was made from."""
    optional = {name: value for name, value in (("gates", scored.gates), ("decisions", scored.decisions))
                if value is not None}
    save_npz(run_dir / TEST_SCORES, key=np.array(pass_key(cfg, test_index, run_dir)), scores=scored.scores,
             device=np.array(scored.device), wall_s=np.array(scored.wall_s), **optional)


def load_test_scores(cfg: dict, test_index: Path, run_dir: Path) -> ScoredTestSplit | None:
    """The pass training made, if it was made from this model.pt, config and test index; else None (and why)."""
    path = run_dir / TEST_SCORES
    if not path.exists() or not (run_dir / MODEL).exists():
        return None
    try:
        saved = load_npz(path)
        matches = str(saved["key"]) == pass_key(cfg, test_index, run_dir)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        print(f"{path} cannot be read ({exc}): scoring the test split with model.pt again")
        return None
    if not matches:
        print(f"{path} was made from another model.pt, config or test index: scoring the test split again")
        return None
    return ScoredTestSplit(scores=saved["scores"], gates=saved.get("gates"), decisions=saved.get("decisions"),
                           device=str(saved["device"]), wall_s=float(saved["wall_s"]))


def label_prior(train_index: Path) -> np.ndarray:
    """Per-label frequency of positives in the training set: the scores of the label-prior reference."""
    targets = LabelIndex.load(train_index).targets
    return (targets == 1).mean(axis=0).astype(np.float32)  # [L]


def evaluate_run(cfg: dict, train_index: Path, test_index: Path, run_dir: Path, progress: bool = True,
                 scored: ScoredTestSplit | None = None) -> dict:
    """Write the run's evaluation files from `scored` (the pass training made, `load_test_scores`), or from a pass
    over the test split made here when it is None. test_scores.npz is then dropped: model.pt stays the one source."""
    index = LabelIndex.load(test_index)
    if scored is None:
        from drmoe_repro.engine.predict import score_test_split  # torch, only where a pass is needed

        scored = score_test_split(cfg, train_index, test_index, run_dir, progress)
    scores, gates, decisions, wall = scored.scores, scored.gates, scored.decisions, scored.wall_s

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
        "device": scored.device,
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
    (run_dir / TEST_SCORES).unlink(missing_ok=True)
    return results
