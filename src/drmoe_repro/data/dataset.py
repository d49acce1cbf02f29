"""A torch Dataset over a LabelIndex: decoded image tensor + target row."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from drmoe_repro.data.images import read_rgb
from drmoe_repro.data.index import IGNORED, POSITIVE, LabelIndex

# How VOC "difficult" labels (-1 in the index) enter the training loss; they are always ignored in AP.
DIFFICULT_AS = {"positive": POSITIVE, "negative": 0, "ignore": IGNORED}


def training_targets(targets: np.ndarray, difficult_in_training: str = "ignore") -> np.ndarray:
    """Recode the index's ignored labels for the loss; -1 left in place is masked out of the loss."""
    out = targets.copy()
    out[targets == IGNORED] = DIFFICULT_AS[difficult_in_training]
    return out


class ImageLabelDataset(Dataset):
    def __init__(self, index: LabelIndex, transform, targets: np.ndarray | None = None):
        self.index = index
        self.transform = transform
        self.targets = torch.from_numpy((index.targets if targets is None else targets).astype(np.float32))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image = read_rgb(self.index.path_of(i))  # uint8 [3, H, W]; raises naming the file if corrupt
        return self.transform(image), self.targets[i], i
