"""Torch datasets over a LabelIndex: decoded, transformed image + target row.

Training augmentations are seeded per (run seed, epoch, image), so an image's crop and flip do not depend on the
order it is drawn in, on DataLoader workers, on the number of data-parallel processes, or on where a resumed run
restarted. Keys are `(image index, epoch)` pairs (see engine.distributed.GlobalBatchSampler); a plain int key
(evaluation) applies the transform unseeded, as it is deterministic there.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch.utils.data import Dataset

from drmoe_repro.data.image_files import read_image_bytes
from drmoe_repro.data.images import decode_rgb, read_rgb
from drmoe_repro.data.index import IGNORED, POSITIVE, LabelIndex

# How VOC "difficult" labels (-1 in the index) enter the training loss; they are always ignored in AP.
DIFFICULT_AS = {"positive": POSITIVE, "negative": 0, "ignore": IGNORED}


def training_targets(targets: np.ndarray, difficult_in_training: str = "ignore") -> np.ndarray:
    """Recode the index's ignored labels for the loss; -1 left in place is masked out of the loss."""
    out = targets.copy()
    out[targets == IGNORED] = DIFFICULT_AS[difficult_in_training]
    return out


@contextlib.contextmanager
def seeded_rng(seed: int, epoch: int, item: int):
    """Run the block with torch's CPU RNG seeded from (seed, epoch, item), restoring the RNG afterwards.

    Only the CPU generator (the one transforms draw from) is touched: `torch.manual_seed` and `fork_rng` would also
    visit the CUDA generators and cost ~0.5 ms per image, a third of the demo's data time.
    """
    generator = torch.default_generator
    saved = generator.get_state()
    generator.manual_seed((seed * 1_000_003 + epoch) * 10_000_019 + item)
    try:
        yield
    finally:
        generator.set_state(saved)


class ImageLabelDataset(Dataset):
    """Item `(i, epoch)` -> (transformed image [3, H, W], target row [L], i).

    With `decode_on_device`, the item is the still-encoded image instead (its checked file bytes, as `bytes`, which
    cross worker processes safely), for the training loop to decode and augment on the device
    (`decode_and_transform`).
    """

    def __init__(self, index: LabelIndex, transform, targets: np.ndarray | None = None, seed: int = 0,
                 decode_on_device: bool = False):
        self.index = index
        self.transform = transform
        self.targets = torch.from_numpy((index.targets if targets is None else targets).astype(np.float32))
        self.seed = seed
        self.decode_on_device = decode_on_device

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | tuple[int, int]):
        i, epoch = key if isinstance(key, tuple) else (key, None)
        if self.decode_on_device:
            return read_image_bytes(self.index.path_of(i)), self.targets[i], i, -1 if epoch is None else epoch
        image = read_rgb(self.index.path_of(i))  # uint8 [3, H, W]; raises naming the file if corrupt
        if epoch is None:
            return self.transform(image), self.targets[i], i
        with seeded_rng(self.seed, epoch, i):
            return self.transform(image), self.targets[i], i


def collate_encoded(batch):
    """Collate for `decode_on_device`: the encoded images stay a list of `bytes` (their lengths differ)."""
    encoded, targets, items, epochs = zip(*batch)
    return list(encoded), torch.stack(targets), torch.tensor(items), torch.tensor(epochs)


def decode_and_transform(encoded: list[bytes], items, epochs, transform, seed: int, device: torch.device,
                         index: LabelIndex) -> torch.Tensor:
    """Decode a batch of images on `device` (nvjpeg on a GPU) and apply the seeded per-image transform there.

    `index` names the files in error messages (a batch holds bytes and row numbers, not paths).
    """
    paths = [index.path_of(i) for i in items.tolist()]
    images = decode_rgb(encoded, paths, device)  # list of uint8 [3, H, W] on device
    out = []
    for image, item, epoch in zip(images, items.tolist(), epochs.tolist()):
        if epoch < 0:
            out.append(transform(image))
        else:
            with seeded_rng(seed, epoch, item):
                out.append(transform(image))
    return torch.stack(out)  # [B, 3, S, S]
