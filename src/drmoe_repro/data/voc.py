"""PASCAL VOC 2007 as a multi-label data set, read from the official devkit layout unchanged.

`voc_root` is the folder holding `JPEGImages/`, `Annotations/` and `ImageSets/Main/` (i.e. `VOCdevkit/VOC2007`).
Labels come from the per-class files `ImageSets/Main/<class>_<set>.txt`, as in ML-GCN and every paper since:

    000005 -1     class absent          -> target 0 (negative)
    000007  1     class present         -> target 1 (positive)
    000012  0     only "difficult" objects of the class -> target -1 (ignored; see README "Metric conventions" for how
                  training and each metric treat it)

The XML annotations are read as a consistency check, not as the label source: every listed image must have an
annotation with at least one `<object>`, and the classes of its non-difficult objects must be exactly the
classes labelled 1 (and its difficult-only classes exactly those labelled 0). A mismatch means a corrupt or
mixed-up copy of the data set, and the loader stops naming the file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from drmoe_repro.data.image_files import DatasetFormatError, verify_images
from drmoe_repro.data.index import IGNORED, NEGATIVE, POSITIVE, LabelIndex
from drmoe_repro.data.voc_classes import VOC_CLASSES

# ImageSets value -> LabelIndex target.
_VOC_TO_TARGET = {1: POSITIVE, -1: NEGATIVE, 0: IGNORED}


def _read_id_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetFormatError(path, "image set file is missing")
    ids = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not ids:
        raise DatasetFormatError(path, "image set file lists no images")
    if len(set(ids)) != len(ids):
        raise DatasetFormatError(path, "image set file lists an image more than once")
    return ids


def _read_class_file(path: Path) -> dict[str, int]:
    """Read `<class>_<set>.txt` into {image id: 1 | 0 | -1}."""
    if not path.is_file():
        raise DatasetFormatError(path, "per-class image set file is missing")
    labels: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            image_id, value = fields[0], int(fields[1])
        except (IndexError, ValueError):
            raise DatasetFormatError(path, f"line {number} is not '<image id> <1|0|-1>': {line!r}") from None
        if value not in _VOC_TO_TARGET:
            raise DatasetFormatError(path, f"line {number} has label {value}, expected 1, 0 or -1")
        labels[image_id] = value
    return labels


def _objects_in_annotation(path: Path) -> list[tuple[str, bool]]:
    """Return [(class name, difficult)] for every `<object>` of a VOC XML annotation."""
    if not path.is_file():
        raise DatasetFormatError(path, "annotation file is missing")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise DatasetFormatError(path, f"annotation is not valid XML ({error})") from None
    objects = []
    for element in root.iter("object"):
        name = (element.findtext("name") or "").strip()
        if not name:
            raise DatasetFormatError(path, "an <object> has no <name>")
        difficult = (element.findtext("difficult") or "0").strip() == "1"
        objects.append((name, difficult))
    if not objects:
        raise DatasetFormatError(path, "annotation has no <object>")
    return objects


def load_voc(voc_root: str | Path, image_set: str, *, check_images: bool = True) -> LabelIndex:
    """Read one VOC 2007 image set ("trainval", "test", "train", "val") into a `LabelIndex`.

    `check_images` runs the reader's acceptance check (image_files.file_problem) on every image; without it, only
    that each exists.
    Image ids are the VOC ids ("000005") in the order of `ImageSets/Main/<image_set>.txt`.
    """
    voc_root = Path(voc_root)
    main = voc_root / "ImageSets" / "Main"
    image_ids = _read_id_list(main / f"{image_set}.txt")
    row_of = {image_id: row for row, image_id in enumerate(image_ids)}

    targets = np.empty((len(image_ids), len(VOC_CLASSES)), dtype=np.int8)  # [N, L]
    for column, name in enumerate(VOC_CLASSES):
        class_file = main / f"{name}_{image_set}.txt"
        labels = _read_class_file(class_file)
        missing = [image_id for image_id in image_ids if image_id not in labels]
        if missing:
            raise DatasetFormatError(class_file, f"no label for {len(missing)} listed images, e.g. {missing[0]}")
        extra = [image_id for image_id in labels if image_id not in row_of]
        if extra:
            raise DatasetFormatError(class_file, f"labels {len(extra)} images not in {image_set}.txt, e.g. {extra[0]}")
        targets[:, column] = [_VOC_TO_TARGET[labels[image_id]] for image_id in image_ids]

    # Cross-check every annotation against the ImageSets labels.
    class_set = set(VOC_CLASSES)
    for row, image_id in enumerate(image_ids):
        xml_path = voc_root / "Annotations" / f"{image_id}.xml"
        objects = _objects_in_annotation(xml_path)
        unknown = sorted({name for name, _ in objects} - class_set)
        if unknown:
            raise DatasetFormatError(xml_path, f"unknown class names {unknown}")
        easy = {name for name, difficult in objects if not difficult}
        difficult_only = {name for name, _ in objects} - easy
        labelled_positive = {VOC_CLASSES[c] for c in np.flatnonzero(targets[row] == POSITIVE)}
        labelled_ignored = {VOC_CLASSES[c] for c in np.flatnonzero(targets[row] == IGNORED)}
        if easy != labelled_positive or difficult_only != labelled_ignored:
            raise DatasetFormatError(
                xml_path,
                f"objects disagree with ImageSets/Main/<class>_{image_set}.txt: annotation has non-difficult "
                f"{sorted(easy)} and difficult-only {sorted(difficult_only)}, image sets say 1 for "
                f"{sorted(labelled_positive)} and 0 for {sorted(labelled_ignored)}",
            )

    image_paths = tuple(f"JPEGImages/{image_id}.jpg" for image_id in image_ids)
    verify_images(voc_root, image_paths, check_content=check_images)
    return LabelIndex(
        image_root=str(voc_root),
        image_ids=tuple(image_ids),
        image_paths=image_paths,
        label_names=VOC_CLASSES,
        targets=targets,
    )
