"""Turn a data set on disk into label indices: read the VOC or COCO annotation files with the format's loader,
check the image counts, write train/test indices.

A data set is read where `fetch` recorded each of its assets (data/locations.py): the split's images (and VOC's
annotations) in the folder of its `train` or `test` asset, COCO's annotation files in the folder of its
`annotations` asset, each under the data set's `root` inside that folder. The demo data set is one asset,
`demo_<dataset>`, which `fetch` generates into the profile's data_dir.
"""

from __future__ import annotations

from pathlib import Path

from drmoe_repro.config import expected_counts
from drmoe_repro.data import coco, voc
from drmoe_repro.data.image_files import DatasetFormatError
from drmoe_repro.data.index import LabelIndex
from drmoe_repro.data.locations import asset_locations
from drmoe_repro.layout import dataset_assets


def split_roots(prof: dict, dataset: str, profile: str) -> dict[str, Path]:
    """Folders of the data set's parts: "train", "test" (images; VOC annotations too) and, for COCO, "annotations"."""
    spec = prof["datasets"][dataset]
    return {role: folder / spec["root"]
            for role, folder in asset_locations(prof, dataset_assets(prof, dataset), profile).items()}


def load_split(prof: dict, dataset: str, split: str, roots: dict[str, Path]) -> LabelIndex:
    """`split` is "train" or "test"; the data set's own split names (trainval, val2014, ...) come from the config."""
    spec = prof["datasets"][dataset]
    name = spec[f"{split}_split"]
    if spec["format"] == "voc":
        return voc.load_voc(roots[split], name)
    return coco.load_coco(roots["annotations"], name, keep_unannotated=spec.get("keep_unannotated", False),
                          images_root=roots[split])


def check_counts(dataset: str, prof: dict, train: LabelIndex, test: LabelIndex) -> None:
    expected = expected_counts(prof, dataset)
    if expected is None:
        return
    got = {"train": len(train), "test": len(test)}
    if got != expected:
        key = "expected_images_with_unannotated" if prof["datasets"][dataset].get("keep_unannotated") \
            else "expected_images"
        raise ValueError(
            f"{dataset}: found {got['train']} training and {got['test']} test images, but the config's "
            f"datasets.{dataset}.{key} expects {expected['train']} and {expected['test']}: the download or extraction "
            f"is incomplete. To run on a subset on purpose, set datasets.{dataset}.{key}: null (the tables then say "
            "'subset')"
        )


def prepare_dataset(prof: dict, dataset: str, profile: str, train_out: Path, test_out: Path) -> dict:
    roots = split_roots(prof, dataset, profile)
    train = load_split(prof, dataset, "train", roots)
    test = load_split(prof, dataset, "test", roots)
    if train.label_names != test.label_names:
        raise DatasetFormatError(roots["test"], f"{dataset}: the train and test splits list different labels")
    check_counts(dataset, prof, train, test)
    train.save(train_out)
    test.save(test_out)
    return {"train": len(train), "test": len(test), "labels": len(train.label_names)}
