"""The label index: what `prepare` writes and everything downstream reads, whatever the source format.

A VOC or COCO loader turns its annotation files into one `LabelIndex` per split; training and evaluation never
look at XML or JSON again. Targets use the suite's coding (layout.py, predictions.npz): 1 positive, 0 negative, -1 ignored (VOC "difficult").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drmoe_repro.io import load_npz, save_npz

POSITIVE, NEGATIVE, IGNORED = 1, 0, -1


@dataclass(frozen=True)
class LabelIndex:
    image_root: str  # folder the image paths are relative to
    image_ids: tuple[str, ...]  # [N] stable ids: VOC "000005", COCO "391895"
    image_paths: tuple[str, ...]  # [N] relative to image_root
    label_names: tuple[str, ...]  # [L] in the data set's canonical order
    targets: np.ndarray  # [N, L] int8 in {1, 0, -1}

    def __post_init__(self) -> None:
        n, n_labels = len(self.image_ids), len(self.label_names)
        if len(self.image_paths) != n:
            raise ValueError(f"{n} image ids but {len(self.image_paths)} image paths")
        if self.targets.shape != (n, n_labels):
            raise ValueError(f"targets have shape {self.targets.shape}, expected ({n}, {n_labels})")
        if self.targets.dtype != np.int8:
            raise ValueError(f"targets must be int8, got {self.targets.dtype}")
        bad = np.setdiff1d(np.unique(self.targets), [POSITIVE, NEGATIVE, IGNORED])
        if bad.size:
            raise ValueError(f"targets hold values other than 1, 0, -1: {bad.tolist()}")

    def __len__(self) -> int:
        return len(self.image_ids)

    def path_of(self, i: int) -> Path:
        return Path(self.image_root) / self.image_paths[i]

    def save(self, path: str | Path) -> None:
        save_npz(
            path,
            image_root=np.array(self.image_root),
            image_ids=np.array(self.image_ids, dtype=str),
            image_paths=np.array(self.image_paths, dtype=str),
            label_names=np.array(self.label_names, dtype=str),
            targets=self.targets,
        )

    @classmethod
    def load(cls, path: str | Path) -> "LabelIndex":
        data = load_npz(path)
        return cls(
            image_root=str(data["image_root"]),
            image_ids=tuple(data["image_ids"].tolist()),
            image_paths=tuple(data["image_paths"].tolist()),
            label_names=tuple(data["label_names"].tolist()),
            targets=data["targets"].astype(np.int8),
        )
