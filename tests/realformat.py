"""Miniature MS-COCO 2014 and PASCAL VOC 2007 in the real archive names and member layouts, and stand-ins for the
ImageNet ResNet-101 weights and the GloVe 6B vectors: what a test of the paper profile downloads, offline.

A helper module for tests, not a test. Everything is drawn from a seed: the same call writes the same bytes (archive
members sorted, with fixed timestamps, owners and modes). The images are flat colour with a rectangle per object,
so they are small and fast to write; the annotations follow the official files field by field.

* `build_coco2014` writes ``train2014.zip``, ``val2014.zip`` and ``annotations_trainval2014.zip``;
* `build_voc2007` writes ``VOCtrainval_06-Nov-2007.tar`` and ``VOCtest_06-Nov-2007.tar``;
* `write_standin_resnet101` writes an untrained torchvision ResNet-101 state dict as ``resnet101-63fe2227.pth``;
* `write_standin_glove` and `glove_zip` write ``glove.6B.300d.txt`` (and ``glove.6B.zip``) for the class names.

Each returns a dict; its "assets" entry maps the asset names of ``profiles.paper.assets`` in workflow/config.yaml to
{"path", "filename", "md5", "sha256", "extract_to"}, which `asset_specs` turns into fetch specs once the files are
served (tests/loopback.py: `serve_files`).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from PIL import Image

from drmoe_repro.data.index import IGNORED, NEGATIVE, POSITIVE
from drmoe_repro.data.voc import VOC_CLASSES

# The 80 COCO 2014 categories as in instances_*2014.json: (id, name, supercategory). Ids run 1..90 with 10 gaps.
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"),
    (2, "bicycle", "vehicle"),
    (3, "car", "vehicle"),
    (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"),
    (6, "bus", "vehicle"),
    (7, "train", "vehicle"),
    (8, "truck", "vehicle"),
    (9, "boat", "vehicle"),
    (10, "traffic light", "outdoor"),
    (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"),
    (14, "parking meter", "outdoor"),
    (15, "bench", "outdoor"),
    (16, "bird", "animal"),
    (17, "cat", "animal"),
    (18, "dog", "animal"),
    (19, "horse", "animal"),
    (20, "sheep", "animal"),
    (21, "cow", "animal"),
    (22, "elephant", "animal"),
    (23, "bear", "animal"),
    (24, "zebra", "animal"),
    (25, "giraffe", "animal"),
    (27, "backpack", "accessory"),
    (28, "umbrella", "accessory"),
    (31, "handbag", "accessory"),
    (32, "tie", "accessory"),
    (33, "suitcase", "accessory"),
    (34, "frisbee", "sports"),
    (35, "skis", "sports"),
    (36, "snowboard", "sports"),
    (37, "sports ball", "sports"),
    (38, "kite", "sports"),
    (39, "baseball bat", "sports"),
    (40, "baseball glove", "sports"),
    (41, "skateboard", "sports"),
    (42, "surfboard", "sports"),
    (43, "tennis racket", "sports"),
    (44, "bottle", "kitchen"),
    (46, "wine glass", "kitchen"),
    (47, "cup", "kitchen"),
    (48, "fork", "kitchen"),
    (49, "knife", "kitchen"),
    (50, "spoon", "kitchen"),
    (51, "bowl", "kitchen"),
    (52, "banana", "food"),
    (53, "apple", "food"),
    (54, "sandwich", "food"),
    (55, "orange", "food"),
    (56, "broccoli", "food"),
    (57, "carrot", "food"),
    (58, "hot dog", "food"),
    (59, "pizza", "food"),
    (60, "donut", "food"),
    (61, "cake", "food"),
    (62, "chair", "furniture"),
    (63, "couch", "furniture"),
    (64, "potted plant", "furniture"),
    (65, "bed", "furniture"),
    (67, "dining table", "furniture"),
    (70, "toilet", "furniture"),
    (72, "tv", "electronic"),
    (73, "laptop", "electronic"),
    (74, "mouse", "electronic"),
    (75, "remote", "electronic"),
    (76, "keyboard", "electronic"),
    (77, "cell phone", "electronic"),
    (78, "microwave", "appliance"),
    (79, "oven", "appliance"),
    (80, "toaster", "appliance"),
    (81, "sink", "appliance"),
    (82, "refrigerator", "appliance"),
    (84, "book", "indoor"),
    (85, "clock", "indoor"),
    (86, "vase", "indoor"),
    (87, "scissors", "indoor"),
    (88, "teddy bear", "indoor"),
    (89, "hair drier", "indoor"),
    (90, "toothbrush", "indoor"),
)
COCO_NAMES: tuple[str, ...] = tuple(name for _, name, _ in COCO_CATEGORIES)

# The person category of person_keypoints_*2014.json.
COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)
COCO_SKELETON = (
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10], [9, 11],
    [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
)

COCO_SIZE = (640, 480)  # (width, height) of every miniature COCO image
VOC_SIZES = ((500, 375), (375, 500))  # VOC's usual landscape and portrait sizes
JPEG_QUALITY = 75
ZIP_DATE = (2014, 8, 20, 0, 0, 0)  # member timestamps: fixed, so the same call gives the same bytes
TAR_MTIME = 1194307200  # 2007-11-06 00:00 UTC
RESNET101_FILENAME = "resnet101-63fe2227.pth"
GLOVE_FILLER = ("the", ",", ".", "of", "to", "and", "in", "a", '"', "'s")  # the real file's first words
VOC_POSES = ("Unspecified", "Frontal", "Rear", "Left", "Right")


# --------------------------------------------------------------------------------------------------------------------
# Files, archives, checksums
# --------------------------------------------------------------------------------------------------------------------


def file_digests(path: Path) -> tuple[str, str]:
    """(md5, sha256) of a file."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def _asset(path: Path, extract_to: str | None) -> dict:
    md5, sha256 = file_digests(path)
    return {"path": path, "filename": path.name, "md5": md5, "sha256": sha256, "extract_to": extract_to}


def _parent_dirs(names: Iterable[str]) -> set[str]:
    """Every folder above the given member names, as 'a/', 'a/b/'."""
    dirs = set()
    for name in names:
        parts = name.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) + "/" for i in range(len(parts)))
    return dirs


def write_zip(path: Path, members: Mapping[str, bytes], *, dirs: Iterable[str] = (), deflate: bool = True) -> Path:
    """A zip of `members` and the folder entries `dirs` ('train2014/'), sorted, with fixed dates and modes."""
    entries = {**{d: None for d in dirs}, **members}
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = 3  # unix, so external_attr holds the mode
            if entries[name] is None:
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
            else:
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
                zf.writestr(info, entries[name])
    return path


def write_tar(path: Path, members: Mapping[str, bytes]) -> Path:
    """An uncompressed tar of `members` with an entry for every folder above them, sorted, fixed owner and mtime."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for name in sorted(set(members) | _parent_dirs(members)):
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime, info.uid, info.gid, info.uname, info.gname = TAR_MTIME, 0, 0, "", ""
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            else:
                info.mode, info.size = 0o644, len(members[name])
                tf.addfile(info, io.BytesIO(members[name]))
    return path


def asset_specs(assets: Mapping[str, dict], urls: Mapping[str, str | list[str]]) -> dict[str, dict]:
    """Fetch specs {name: {urls, md5, sha256, filename, size, extract_to | extract: false}} of `assets` served at
    `urls`."""
    specs = {}
    for name, asset in assets.items():
        url = urls[name]
        spec = {"urls": [url] if isinstance(url, str) else list(url), "md5": asset["md5"],
                "sha256": asset["sha256"], "filename": asset["filename"], "size": Path(asset["path"]).stat().st_size}
        spec.update({"extract_to": asset["extract_to"]} if asset["extract_to"] else {"extract": False})
        specs[name] = spec
    return specs


# --------------------------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------------------------


def _class_colours(n_classes: int) -> np.ndarray:
    """[n_classes, 3] uint8, fixed: a class looks the same in every image and every build."""
    return np.random.default_rng(20140807).integers(40, 256, size=(n_classes, 3), dtype=np.uint8)


def draw_picture(rng: np.random.Generator, size: tuple[int, int], boxes: Iterable[tuple[int, int, int, int, int]],
                 colours: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8: a flat background and a filled rectangle per (x0, y0, x1, y1, class) box, inclusive."""
    width, height = size
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = rng.integers(0, 256, size=3, dtype=np.uint8)
    for x0, y0, x1, y1, column in boxes:
        pixels[y0 : y1 + 1, x0 : x1 + 1] = colours[column]
    return pixels


def encode_image(pixels: np.ndarray, kind: str = "rgb") -> bytes:
    """The image file's bytes. kind: rgb | grayscale | cmyk (JPEGs in those PIL modes) | png (PNG data)."""
    image = Image.fromarray(pixels)  # RGB
    buffer = io.BytesIO()
    if kind == "png":
        image.save(buffer, format="PNG")
    else:
        mode = {"rgb": "RGB", "grayscale": "L", "cmyk": "CMYK"}[kind]
        image.convert(mode).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _random_box(rng: np.random.Generator, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), 0-based inclusive pixel bounds inside an image of `size` (width, height)."""
    width, height = size
    w, h = (int(v) for v in rng.integers(16, min(width, height) // 2, size=2))
    x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
    return x0, y0, x0 + w - 1, y0 + h - 1


def _spread_labels(rng: np.random.Generator, n_images: int, n_classes: int, extra: int) -> list[list[int]]:
    """Columns per image: every class once, dealt round-robin in a shuffled order, plus up to `extra` random more."""
    labels: list[set[int]] = [set() for _ in range(n_images)]
    for position, column in enumerate(rng.permutation(n_classes)):
        labels[position % n_images].add(int(column))
    for image_labels in labels:
        image_labels.update(int(c) for c in rng.choice(n_classes, size=int(rng.integers(0, extra + 1)), replace=False))
    return [sorted(image_labels) for image_labels in labels]


def _random_labels(rng: np.random.Generator, n_images: int, n_classes: int, most: int) -> list[list[int]]:
    return [sorted(int(c) for c in rng.choice(n_classes, size=int(rng.integers(1, most + 1)), replace=False))
            for _ in range(n_images)]


# --------------------------------------------------------------------------------------------------------------------
# MS-COCO 2014
# --------------------------------------------------------------------------------------------------------------------

_COCO_INFO = {
    "description": "Miniature stand-in for the 2014 MS COCO dataset (drmoe-repro tests, synthetic images)",
    "url": "http://mscoco.org",
    "version": "1.0",
    "year": 2014,
    "contributor": "drmoe-repro tests",
    "date_created": "2015-01-27 09:11:52.357475",
}
_COCO_LICENSES = [
    {"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1,
     "name": "Attribution-NonCommercial-ShareAlike License"},
    {"url": "http://creativecommons.org/licenses/by/2.0/", "id": 4, "name": "Attribution License"},
]
# Train images with a part to play (by position in the split's shuffled id list); the rest are plain RGB JPEGs.
_COCO_TRAIN_SPECIALS = ("grayscale", "cmyk", "png_as_jpg", "unannotated", "crowd_only")


def _rle(box: tuple[int, int, int, int], size: tuple[int, int]) -> dict:
    """Uncompressed RLE of a filled box, as COCO stores crowd masks: column-major runs, starting with background."""
    width, height = size
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y0 : y1 + 1, x0 : x1 + 1] = 1
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    counts = [int(c) for c in np.diff(np.concatenate([[0], changes, [flat.size]]))]
    return {"counts": ([0] if flat[0] else []) + counts, "size": [height, width]}


def _coco_annotation(next_id: int, image_id: int, column: int, box, crowd: bool) -> dict:
    x0, y0, x1, y1 = box
    x, y, w, h = float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)
    segmentation = _rle(box, COCO_SIZE) if crowd else [[x, y, x + w, y, x + w, y + h, x, y + h]]
    return {"segmentation": segmentation, "area": w * h, "iscrowd": int(crowd), "image_id": image_id,
            "bbox": [x, y, w, h], "category_id": COCO_CATEGORIES[column][0], "id": next_id}


def _coco_image_entry(split: str, image_id: int) -> dict:
    return {"license": 1 + 3 * (image_id % 2), "file_name": f"COCO_{split}_{image_id:012d}.jpg",
            "coco_url": f"http://mscoco.org/images/{image_id}", "height": COCO_SIZE[1], "width": COCO_SIZE[0],
            "date_captured": "2013-11-14 11:18:45", "flickr_url": "", "id": image_id}


def _coco_split(rng: np.random.Generator, split: str, ids: list[int], labels: list[list[int]], kinds: list[str],
                first_annotation_id: int, png_as_jpg: bool) -> tuple[dict[str, bytes], dict, dict, dict]:
    """Images (member name -> bytes), the instances JSON dict, what was meant, and the special images of a split."""
    colours = _class_colours(len(COCO_CATEGORIES))
    members, images, annotations = {}, [], []
    targets = np.zeros((len(ids), len(COCO_CATEGORIES)), dtype=np.int8)  # [N, 80], rows in `ids` order
    specials: dict[str, str] = {}
    crowd_only: list[tuple[str, str]] = []
    for row, (image_id, columns, kind) in enumerate(zip(ids, labels, kinds)):
        entry = _coco_image_entry(split, image_id)
        images.append(entry)
        boxes = []
        for rank, column in enumerate(columns):
            crowd = kind == "crowd_only" and rank == 0  # this class is in the image only as a crowd
            for _ in range(1 if crowd else int(rng.integers(1, 3))):
                box = _random_box(rng, COCO_SIZE)
                boxes.append((*box, column))
                next_id = first_annotation_id + len(annotations)
                annotations.append(_coco_annotation(next_id, image_id, column, box, crowd))
            if crowd:
                crowd_only.append((str(image_id), COCO_NAMES[column]))
            targets[row, column] = POSITIVE
        if kind == "png_as_jpg" and not png_as_jpg:
            kind = "plain"
        encoding = {"grayscale": "grayscale", "cmyk": "cmyk", "png_as_jpg": "png"}.get(kind, "rgb")
        members[f"{split}/{entry['file_name']}"] = encode_image(draw_picture(rng, COCO_SIZE, boxes, colours), encoding)
        if kind != "plain":
            specials[kind] = f"{split}/{entry['file_name']}"
    order = rng.permutation(len(images))  # the official files list images in no particular order
    instances = {"info": _COCO_INFO, "licenses": _COCO_LICENSES, "images": [images[i] for i in order],
                 "annotations": annotations,
                 "categories": [{"supercategory": s, "id": i, "name": n} for i, n, s in COCO_CATEGORIES]}
    meant = _coco_meant(ids, targets, labels)
    meant["crowd_only"] = tuple(crowd_only)
    return members, instances, meant, specials


def _coco_meant(ids: list[int], targets: np.ndarray, labels: list[list[int]]) -> dict:
    """What load_coco should return: rows by image id, unannotated images left out (or kept as all-negative)."""
    order = np.argsort(ids, kind="stable")
    annotated = np.array([bool(labels[i]) for i in order])
    all_ids = tuple(str(ids[i]) for i in order)
    return {
        "image_ids": tuple(i for i, keep in zip(all_ids, annotated) if keep),
        "targets": targets[order][annotated],
        "image_ids_with_unannotated": all_ids,
        "targets_with_unannotated": targets[order],
        "unannotated": tuple(i for i, keep in zip(all_ids, annotated) if not keep),
    }


def _coco_side_files(split: str, instances: dict) -> dict[str, bytes]:
    """captions_<split>.json and person_keypoints_<split>.json, which the real annotation zip also holds."""
    images = instances["images"]
    captions = [{"image_id": image["id"], "id": 1 + n, "caption": "A synthetic picture of coloured rectangles."}
                for n, image in enumerate(sorted(images, key=lambda image: image["id"]))]
    people = [{**a, "num_keypoints": 0, "keypoints": [0] * (3 * len(COCO_KEYPOINTS))}
              for a in instances["annotations"] if a["category_id"] == 1]
    person = {"supercategory": "person", "id": 1, "name": "person", "keypoints": list(COCO_KEYPOINTS),
              "skeleton": [list(pair) for pair in COCO_SKELETON]}
    common = {"info": _COCO_INFO, "licenses": _COCO_LICENSES, "images": images}
    return {
        f"annotations/captions_{split}.json": _json_bytes({**common, "annotations": captions}),
        f"annotations/person_keypoints_{split}.json": _json_bytes({**common, "annotations": people,
                                                                    "categories": [person]}),
    }


def _json_bytes(data: dict) -> bytes:
    return json.dumps(data).encode("utf-8")


def _coco_plan(rng: np.random.Generator, n_train: int, n_val: int) -> dict[str, tuple[list[int], list, list[str]]]:
    """{split: (image ids, label columns per image, kind per image)}; ids sparse in 1..581929, splits disjoint."""
    if n_train < len(_COCO_TRAIN_SPECIALS) + 1 or n_val < 2:
        raise ValueError(f"need n_train >= {len(_COCO_TRAIN_SPECIALS) + 1} and n_val >= 2")
    ids = [int(i) for i in rng.choice(581929, size=n_train + n_val, replace=False) + 1]
    train_kinds = list(_COCO_TRAIN_SPECIALS) + ["plain"] * (n_train - len(_COCO_TRAIN_SPECIALS))
    train_labels = _spread_labels(rng, n_train - 1, len(COCO_CATEGORIES), extra=2)  # all 80 classes in train
    train_labels.insert(train_kinds.index("unannotated"), [])
    val_kinds = ["unannotated"] + ["plain"] * (n_val - 1)
    val_labels = [[]] + _random_labels(rng, n_val - 1, len(COCO_CATEGORIES), most=4)
    return {"train2014": (ids[:n_train], train_labels, train_kinds), "val2014": (ids[n_train:], val_labels, val_kinds)}


def build_coco2014(folder: str | Path, n_train: int = 24, n_val: int = 8, seed: int = 0, *,
                   png_as_jpg: bool = True) -> dict:
    """Write train2014.zip, val2014.zip and annotations_trainval2014.zip into `folder`; return what they hold.

    Train holds all 80 categories (several per image), a grayscale JPEG, a CMYK JPEG, a PNG under a .jpg name
    (`png_as_jpg=False` makes it a plain JPEG), an image listed with no annotation, and an image whose first class
    has only a crowd annotation (iscrowd 1, RLE mask). Val holds 1-4 random classes per image and one unannotated
    image. All images are 640x480.

    Returns {"archives": {filename: path}, "md5": {filename: md5}, "assets": {asset name: {path, filename, md5,
    sha256, extract_to: "coco"}}, "label_names": the 80 names in category-id order, "category_ids",
    "counts": {"expected_images": {"train", "test"}, "expected_images_with_unannotated": {"train", "test"}}
    (as in the config's datasets.coco), "splits": {"train2014" | "val2014": {"image_ids", "targets" [N, 80] int8
    (rows by image id, as load_coco orders them), "image_ids_with_unannotated", "targets_with_unannotated",
    "unannotated", "crowd_only" ((image id, class name), ...)}}, "special_images": {grayscale | cmyk | png_as_jpg |
    unannotated | crowd_only: the train image's path relative to the extracted coco/ folder}}.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 2014])
    annotation_members: dict[str, bytes] = {}
    splits, archives, specials, next_annotation_id = {}, {}, {}, 1
    for split, (ids, labels, kinds) in _coco_plan(rng, n_train, n_val).items():
        members, instances, meant, found = _coco_split(rng, split, ids, labels, kinds, next_annotation_id, png_as_jpg)
        specials.update(found if split == "train2014" else {})
        next_annotation_id += len(instances["annotations"])
        archives[f"{split}.zip"] = write_zip(folder / f"{split}.zip", members, dirs=[f"{split}/"])
        annotation_members[f"annotations/instances_{split}.json"] = _json_bytes(instances)
        annotation_members.update(_coco_side_files(split, instances))
        splits[split] = meant
    name = "annotations_trainval2014.zip"
    archives[name] = write_zip(folder / name, annotation_members, dirs=["annotations/"])
    asset_names = {"train2014.zip": "coco_train2014", "val2014.zip": "coco_val2014", name: "coco_annotations2014"}
    assets = {asset_names[f]: _asset(path, "coco") for f, path in archives.items()}
    train, val = splits["train2014"], splits["val2014"]
    return {
        "archives": archives,
        "md5": {asset["filename"]: asset["md5"] for asset in assets.values()},
        "assets": assets,
        "label_names": COCO_NAMES,
        "category_ids": tuple(i for i, _, _ in COCO_CATEGORIES),
        "counts": {
            "expected_images": {"train": len(train["image_ids"]), "test": len(val["image_ids"])},
            "expected_images_with_unannotated": {"train": len(train["image_ids_with_unannotated"]),
                                                 "test": len(val["image_ids_with_unannotated"])},
        },
        "splits": splits,
        "special_images": specials,
    }


# --------------------------------------------------------------------------------------------------------------------
# PASCAL VOC 2007
# --------------------------------------------------------------------------------------------------------------------

VOC_PREFIX = "VOCdevkit/VOC2007/"
# Trainval images with a part to play: a grayscale and a CMYK JPEG; a class present only as difficult objects (0 in
# the devkit files); a class with one difficult and one non-difficult object (1); only difficult objects at all.
_VOC_TRAINVAL_SPECIALS = ("grayscale", "cmyk", "difficult_only", "mixed_difficult", "all_difficult")


def _voc_objects(rng: np.random.Generator, columns: list[int], kind: str, size) -> list[dict]:
    """The objects of one image: 1-2 per class. Only the special kinds make a class difficult-only (0 in the devkit
    files); elsewhere a class's second object is difficult one time in three, and its first never is."""
    objects = []
    for rank, column in enumerate(columns):
        count = 2 if kind == "mixed_difficult" and rank == 0 else int(rng.integers(1, 3))
        for instance in range(count):
            if kind == "all_difficult" or (kind == "difficult_only" and rank == 0):
                difficult = True
            elif kind == "mixed_difficult" and rank == 0:
                difficult = instance == 1
            else:  # a second instance may be difficult; the first is not, so the class stays positive
                difficult = instance > 0 and bool(rng.random() < 1 / 3)
            objects.append({"column": column, "box": _random_box(rng, size), "difficult": difficult,
                            "truncated": int(rng.random() < 0.3), "pose": VOC_POSES[int(rng.integers(5))]})
    return objects


def _voc_xml(image_id: str, size: tuple[int, int], objects: list[dict], depth: int) -> bytes:
    width, height = size
    lines = [
        "<annotation>", "\t<folder>VOC2007</folder>", f"\t<filename>{image_id}.jpg</filename>",
        "\t<source>", "\t\t<database>The VOC2007 Database</database>", "\t\t<annotation>PASCAL VOC2007</annotation>",
        "\t\t<image>flickr</image>", f"\t\t<flickrid>{100000000 + int(image_id)}</flickrid>", "\t</source>",
        "\t<owner>", "\t\t<flickrid>drmoe-repro</flickrid>", "\t\t<name>?</name>", "\t</owner>",
        "\t<size>", f"\t\t<width>{width}</width>", f"\t\t<height>{height}</height>", f"\t\t<depth>{depth}</depth>",
        "\t</size>", "\t<segmented>0</segmented>",
    ]
    for obj in objects:
        x0, y0, x1, y1 = obj["box"]
        lines += [
            "\t<object>", f"\t\t<name>{VOC_CLASSES[obj['column']]}</name>", f"\t\t<pose>{obj['pose']}</pose>",
            f"\t\t<truncated>{obj['truncated']}</truncated>", f"\t\t<difficult>{int(obj['difficult'])}</difficult>",
            "\t\t<bndbox>", f"\t\t\t<xmin>{x0 + 1}</xmin>", f"\t\t\t<ymin>{y0 + 1}</ymin>",  # 1-based, inclusive
            f"\t\t\t<xmax>{x1 + 1}</xmax>", f"\t\t\t<ymax>{y1 + 1}</ymax>", "\t\t</bndbox>", "\t</object>",
        ]
    lines.append("</annotation>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _voc_targets(objects: list[dict]) -> np.ndarray:
    """[20] int8 in LabelIndex coding: 1 if a non-difficult object of the class, -1 if only difficult ones, else 0."""
    row = np.full(len(VOC_CLASSES), NEGATIVE, dtype=np.int8)
    for obj in objects:
        if not obj["difficult"]:
            row[obj["column"]] = POSITIVE
        elif row[obj["column"]] == NEGATIVE:
            row[obj["column"]] = IGNORED
    return row


def _voc_image_set_files(image_set: str, ids: list[str], targets: np.ndarray) -> dict[str, bytes]:
    """ImageSets/Main/<set>.txt and <class>_<set>.txt, in the devkit's coding (1, -1, 0 = difficult only)."""
    devkit = {POSITIVE: 1, NEGATIVE: -1, IGNORED: 0}
    main = f"{VOC_PREFIX}ImageSets/Main/"
    files = {f"{main}{image_set}.txt": "".join(f"{i}\n" for i in ids).encode("ascii")}
    for column, name in enumerate(VOC_CLASSES):
        text = "".join(f"{i} {devkit[int(targets[row, column])]:2d}\n" for row, i in enumerate(ids))
        files[f"{main}{name}_{image_set}.txt"] = text.encode("ascii")
    return files


def _voc_plan(rng: np.random.Generator, n_trainval: int, n_test: int) -> dict[str, tuple[list[str], list, list[str]]]:
    """{image set: (sorted ids, label columns per image, kind per image)}; ids in 1..9963, the sets disjoint."""
    if n_trainval < len(_VOC_TRAINVAL_SPECIALS) + 1 or n_test < 2:
        raise ValueError(f"need n_trainval >= {len(_VOC_TRAINVAL_SPECIALS) + 1} and n_test >= 2")
    numbers = rng.choice(9963, size=n_trainval + n_test, replace=False) + 1
    trainval, test = sorted(int(i) for i in numbers[:n_trainval]), sorted(int(i) for i in numbers[n_trainval:])
    kinds = list(_VOC_TRAINVAL_SPECIALS) + ["plain"] * (n_trainval - len(_VOC_TRAINVAL_SPECIALS))
    rng.shuffle(kinds)
    # Every class gets a non-difficult object in trainval: the classes are dealt to the images whose first class is
    # not made difficult; the two that are get two random classes of their own.
    dealt = iter(_spread_labels(rng, n_trainval - 2, len(VOC_CLASSES), extra=1))
    labels = []
    for kind in kinds:
        if kind in ("difficult_only", "all_difficult"):
            labels.append(sorted(int(c) for c in rng.choice(len(VOC_CLASSES), size=2, replace=False)))
        else:
            labels.append(next(dealt))
    test_kinds = ["difficult_only"] + ["plain"] * (n_test - 1)
    test_labels = [sorted({0, 1 + int(rng.integers(len(VOC_CLASSES) - 1))})]
    test_labels += _random_labels(rng, n_test - 1, len(VOC_CLASSES), most=3)
    return {"trainval": ([f"{i:06d}" for i in trainval], labels, kinds),
            "test": ([f"{i:06d}" for i in test], test_labels, test_kinds)}


def _voc_image_set(rng: np.random.Generator, ids: list[str], labels: list, kinds: list[str]):
    """(members, targets [N, 20], special images) of one image set: JPEGs, XML annotations, ImageSets files."""
    colours = _class_colours(len(VOC_CLASSES))
    members: dict[str, bytes] = {}
    targets = np.zeros((len(ids), len(VOC_CLASSES)), dtype=np.int8)
    specials: dict[str, str] = {}
    for row, (image_id, columns, kind) in enumerate(zip(ids, labels, kinds)):
        size = VOC_SIZES[int(rng.random() < 0.25)]
        objects = _voc_objects(rng, columns, kind, size)
        boxes = [(*obj["box"], obj["column"]) for obj in objects]
        encoding = kind if kind in ("grayscale", "cmyk") else "rgb"
        members[f"{VOC_PREFIX}JPEGImages/{image_id}.jpg"] = encode_image(draw_picture(rng, size, boxes, colours),
                                                                          encoding)
        members[f"{VOC_PREFIX}Annotations/{image_id}.xml"] = _voc_xml(image_id, size, objects, depth=3)
        targets[row] = _voc_targets(objects)
        if kind != "plain":
            specials[kind] = f"JPEGImages/{image_id}.jpg"
    return members, targets, specials


def build_voc2007(folder: str | Path, n_trainval: int = 20, n_test: int = 10, seed: int = 0) -> dict:
    """Write VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar into `folder`; return what they hold.

    Members lie under VOCdevkit/VOC2007/: JPEGImages/NNNNNN.jpg, Annotations/NNNNNN.xml, ImageSets/Main/<set>.txt
    and <class>_<set>.txt (trainval tar: train, val and trainval; test tar: test). Trainval holds all 20 classes, a
    grayscale and a CMYK JPEG, a class present only as difficult objects, a class with one difficult and one
    non-difficult object, and an image whose objects are all difficult; test holds a difficult-only class too.

    Returns {"archives", "md5", "assets" (voc2007_trainval, voc2007_test; extract_to "voc"), "label_names" (the 20
    devkit names), "counts": {"expected_images": {"train", "test"}}, "splits": {"trainval" | "train" | "val" |
    "test": {"image_ids", "targets" [N, 20] int8 in LabelIndex coding: 1, 0, -1 for difficult only}},
    "special_images": {kind: path relative to the extracted VOCdevkit/VOC2007 folder}}.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 2007])
    plan = _voc_plan(rng, n_trainval, n_test)
    splits, specials, tar_members = {}, {}, {}
    for image_set, (ids, labels, kinds) in plan.items():
        members, targets, found = _voc_image_set(rng, ids, labels, kinds)
        specials.update({kind: path for kind, path in found.items() if image_set == "trainval"})
        subsets = {image_set: np.arange(len(ids))}
        if image_set == "trainval":  # train and val: alternate images, as disjoint halves of trainval
            subsets.update(train=np.arange(0, len(ids), 2), val=np.arange(1, len(ids), 2))
        for subset, rows in subsets.items():
            subset_ids = [ids[r] for r in rows]
            splits[subset] = {"image_ids": tuple(subset_ids), "targets": targets[rows]}
            members.update(_voc_image_set_files(subset, subset_ids, targets[rows]))
        tar_members[image_set] = members
    archives = {
        "VOCtrainval_06-Nov-2007.tar": write_tar(folder / "VOCtrainval_06-Nov-2007.tar", tar_members["trainval"]),
        "VOCtest_06-Nov-2007.tar": write_tar(folder / "VOCtest_06-Nov-2007.tar", tar_members["test"]),
    }
    assets = {"voc2007_trainval": _asset(archives["VOCtrainval_06-Nov-2007.tar"], "voc"),
              "voc2007_test": _asset(archives["VOCtest_06-Nov-2007.tar"], "voc")}
    return {
        "archives": archives,
        "md5": {asset["filename"]: asset["md5"] for asset in assets.values()},
        "assets": assets,
        "label_names": VOC_CLASSES,
        "counts": {"expected_images": {"train": n_trainval, "test": n_test}},
        "splits": splits,
        "special_images": specials,
    }


# --------------------------------------------------------------------------------------------------------------------
# Stand-in ImageNet weights and GloVe vectors
# --------------------------------------------------------------------------------------------------------------------


def write_standin_resnet101(folder: str | Path, seed: int = 0, *, num_batches_tracked: bool = True) -> dict:
    """An untrained torchvision ResNet-101 state dict (seeded init), torch.save'd as `folder`/resnet101-63fe2227.pth.

    ~170 MB, about a second. Its SHA-256 does not start with 63fe2227 as the name says: put the returned "sha256"
    into the asset spec. `num_batches_tracked=False` drops the BatchNorm counters, as in state dicts saved by
    PyTorch < 0.4.

    Returns {"path", "filename", "md5", "sha256", "extract_to": None} (an asset entry: `asset_specs` gives it
    extract: false).
    """
    import torch
    import torchvision

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = torchvision.models.resnet101(weights=None).state_dict()
    if not num_batches_tracked:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = folder / RESNET101_FILENAME
    torch.save(state, path)
    return _asset(path, None)


_SEPARATORS = re.compile(r"[\s_\-]+")  # as drmoe_repro.data.pretrained splits a label


def glove_tokens(words: Iterable[str]) -> tuple[str, ...]:
    """The GloVe tokens load_glove looks up for `words`: each lower-cased, aliased label if one token, and its parts."""
    from drmoe_repro.data.pretrained import GLOVE_ALIASES  # imports torch: kept out of conftest's imports

    tokens = set()
    for word in words:
        whole = word.strip().lower()
        whole = GLOVE_ALIASES.get(whole, whole)
        parts = [p for p in _SEPARATORS.split(whole) if p]
        tokens.update(parts)
        if len(parts) == 1:
            tokens.add(whole)
    return tuple(sorted(tokens))


def write_standin_glove(folder: str | Path, words: Iterable[str] | None = None, *, dim: int = 300,
                        seed: int = 0) -> dict:
    """`folder`/glove.6B.<dim>d.txt: the real file's first words, then every token `words` need (default: the 80 COCO
    and 20 VOC class names), each with `dim` seeded N(0, 0.4) values written with 5 decimals.

    Returns {"path", "tokens" (those for `words`), "vectors": {token: float32 [dim], exactly as written}}.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokens = glove_tokens(COCO_NAMES + VOC_CLASSES if words is None else words)
    vocabulary = list(GLOVE_FILLER) + [t for t in tokens if t not in GLOVE_FILLER]
    values = np.random.default_rng([seed, dim]).normal(0.0, 0.4, size=(len(vocabulary), dim))
    lines = [f"{token} " + " ".join(f"{v:.5f}" for v in row) for token, row in zip(vocabulary, values)]
    path = folder / f"glove.6B.{dim}d.txt"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    vectors = {token: np.asarray(line.split(" ")[1:], dtype=np.float32) for token, line in zip(vocabulary, lines)}
    return {"path": path, "tokens": tokens, "vectors": {t: vectors[t] for t in tokens}}


def glove_zip(folder: str | Path, words: Iterable[str] | None = None, *, seed: int = 0,
              dims: tuple[int, ...] = (50, 100, 200, 300)) -> dict:
    """`folder`/glove.6B.zip holding glove.6B.<dim>d.txt for each of `dims` at its top level, as the real zip.

    Returns the asset entry {"path", "filename", "md5", "sha256", "extract_to": "glove"} plus "members" (sorted names)
    and "vectors" (the 300-d ones, or the largest dim's, as `write_standin_glove` returns them).
    """
    folder = Path(folder)
    words = None if words is None else tuple(words)
    written = {dim: write_standin_glove(folder / "glove_txt", words, dim=dim, seed=seed) for dim in dims}
    members = {info["path"].name: info["path"].read_bytes() for info in written.values()}
    path = write_zip(folder / "glove.6B.zip", members)
    return {**_asset(path, "glove"), "members": tuple(sorted(members)), "vectors": written[max(dims)]["vectors"]}
