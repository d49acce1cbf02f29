"""MS-COCO 2014 as a multi-label data set, read from the official layout unchanged through pycocotools.

`coco_root` holds `annotations/instances_<split>.json` and the image folders `train2014/`, `val2014/`.

Conventions (as ML-GCN's, ASL's and Query2Label's code read COCO):
* Classes are in category-id order (ASL, Query2Label), named by the `categories` entries; COCO's ids are not
  contiguous (1..90 for 80 classes), and the column of a class is its rank among the ids, not its id.
* An image is positive for every category with at least one annotation in it, crowd annotations (`iscrowd: 1`)
  included: a crowd of people is people, and ML-GCN, ASL and Query2Label all count them. There are no ignored
  labels: targets are 1 or 0.
* Images without any annotation are left out by default, as in ML-GCN and ASL (82,081 train / 40,137 val);
  `keep_unannotated=True` keeps them as all-negative rows, as Query2Label does (82,783 / 40,504).
* Image ids are `str(image id)`; rows are ordered by image id (the JSON's own order is arbitrary).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from drmoe_repro.data.image_files import DatasetFormatError, verify_images
from drmoe_repro.data.index import NEGATIVE, POSITIVE, LabelIndex

COCO_SPLITS = ("train2014", "val2014")


def _load_coco_api(path: Path) -> COCO:
    """Load an instances JSON with pycocotools, turning its failures into errors that name the file."""
    if not path.is_file():
        raise DatasetFormatError(path, "annotation file is missing")
    api = COCO()
    try:
        with open(path, encoding="utf-8") as handle:
            dataset = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetFormatError(path, f"annotation file is not valid JSON ({error})") from None
    if not isinstance(dataset, dict):
        raise DatasetFormatError(path, "annotation file is not a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(dataset.get(key), list):
            raise DatasetFormatError(path, f"annotation file has no '{key}' list")
    if not dataset["categories"]:
        raise DatasetFormatError(path, "annotation file has an empty 'categories' list")
    api.dataset = dataset
    # createIndex prints progress lines; keep the pipeline's logs clean.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            api.createIndex()
        except (KeyError, TypeError) as error:
            raise DatasetFormatError(path, f"an image, annotation or category entry lacks a field ({error})") from None
    return api


def load_coco(
    coco_root: str | Path, split: str, keep_unannotated: bool = False, *, check_images: bool = True,
    images_root: str | Path | None = None,
) -> LabelIndex:
    """Read one COCO 2014 split ("train2014" or "val2014") into a `LabelIndex`.

    Annotations are read from `coco_root/annotations/`, images from `images_root/<split>/` (default: `coco_root`,
    the archives' own layout; they differ when the image and annotation archives sit in different folders).
    `check_images` runs the reader's acceptance check (image_files.file_problem) on every image; without it, only
    that each exists.
    """
    coco_root = Path(coco_root)
    images_root = coco_root if images_root is None else Path(images_root)
    if split not in COCO_SPLITS:
        raise ValueError(f"split must be one of {COCO_SPLITS}, got {split!r}")
    annotation_path = coco_root / "annotations" / f"instances_{split}.json"
    api = _load_coco_api(annotation_path)

    category_ids = sorted(api.cats)
    column_of = {category_id: column for column, category_id in enumerate(category_ids)}
    label_names = tuple(str(api.cats[category_id]["name"]) for category_id in category_ids)
    if len(set(label_names)) != len(label_names):
        raise DatasetFormatError(annotation_path, "two categories share a name")

    image_ids = sorted(api.imgs)
    rows: list[int] = []
    targets = np.full((len(image_ids), len(category_ids)), NEGATIVE, dtype=np.int8)  # [N, L]
    for row, image_id in enumerate(image_ids):
        annotations = api.imgToAnns.get(image_id, [])  # crowd annotations included on purpose
        if not annotations and not keep_unannotated:
            continue
        for annotation in annotations:
            column = column_of.get(annotation["category_id"])
            if column is None:
                raise DatasetFormatError(
                    annotation_path,
                    f"annotation {annotation.get('id')} has category_id {annotation['category_id']}, "
                    "which is not in 'categories'",
                )
            targets[row, column] = POSITIVE
        rows.append(row)
    for annotation in api.dataset["annotations"]:
        if annotation["image_id"] not in api.imgs:
            raise DatasetFormatError(
                annotation_path, f"annotation {annotation.get('id')} refers to unknown image {annotation['image_id']}"
            )

    kept_ids = [image_ids[row] for row in rows]
    image_paths = tuple(f"{split}/{api.imgs[image_id]['file_name']}" for image_id in kept_ids)
    verify_images(images_root, image_paths, check_content=check_images)
    return LabelIndex(
        image_root=str(images_root),
        image_ids=tuple(str(image_id) for image_id in kept_ids),
        image_paths=image_paths,
        label_names=label_names,
        targets=targets[rows],
    )
