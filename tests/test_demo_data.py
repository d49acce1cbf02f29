"""The embedded demo data set: determinism, real formats, and the statistical properties it promises."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from drmoe_repro.data.coco import load_coco
from drmoe_repro.data.demo import (
    COCO_DEMO_CATEGORIES,
    COMPLETE_MARKER,
    GLYPHS,
    describe_demo,
    write_demo_coco,
    write_demo_voc,
)
from drmoe_repro.data.images import read_rgb
from drmoe_repro.data.voc import VOC_CLASSES, load_voc


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def demo_params(root: Path) -> dict:
    """The parameters a fixture's demo tree was made with (its completion marker holds them)."""
    return json.loads((root / COMPLETE_MARKER).read_text())


def lift(present: np.ndarray, a: int, b: int) -> float:
    """P(a and b) / (P(a) P(b)) over images; present is bool [N, L]."""
    return present[:, a].__and__(present[:, b]).mean() / (present[:, a].mean() * present[:, b].mean())


def test_same_seed_gives_identical_bytes(tmp_path, demo_voc_root, demo_coco_root):
    voc_params, coco_params = demo_params(demo_voc_root), demo_params(demo_coco_root)
    seed, n_trainval, n_test = voc_params["seed"], voc_params["n_trainval"], voc_params["n_test"]
    write_demo_voc(tmp_path / "voc", seed=seed, n_trainval=n_trainval, n_test=n_test)
    n_train, n_val = coco_params["n_train"], coco_params["n_val"]
    write_demo_coco(tmp_path / "coco", seed=coco_params["seed"], n_train=n_train, n_val=n_val)
    voc, coco = tree_digest(tmp_path / "voc"), tree_digest(tmp_path / "coco")
    assert voc == tree_digest(demo_voc_root)
    assert coco == tree_digest(demo_coco_root)
    # images, xml, set lists, class lists, marker
    assert len(voc) == 2 * (n_trainval + n_test) + 2 + 2 * 20 + 1

    write_demo_voc(tmp_path / "voc_other", seed=seed + 1, n_trainval=n_trainval, n_test=n_test)
    assert tree_digest(tmp_path / "voc_other") != voc


def test_skips_complete_output_and_regenerates_on_new_parameters(tmp_path):
    root = tmp_path / "voc"
    write_demo_voc(root, seed=1, n_trainval=6, n_test=4)
    image = root / "JPEGImages" / "000001.jpg"
    stamp = image.stat().st_mtime_ns
    write_demo_voc(root, seed=1, n_trainval=6, n_test=4)
    assert image.stat().st_mtime_ns == stamp  # nothing rewritten

    write_demo_voc(root, seed=1, n_trainval=3, n_test=2)
    assert len(list((root / "JPEGImages").iterdir())) == 5  # old extra images removed
    assert json.loads((root / COMPLETE_MARKER).read_text())["n_trainval"] == 3
    assert len(load_voc(root, "trainval")) == 3

    # A crash mid-way leaves no complete marker; the next call cleans up and finishes.
    (root / COMPLETE_MARKER).unlink()
    (root / ".demo_generating").write_bytes(b"")
    write_demo_voc(root, seed=1, n_trainval=3, n_test=2)
    assert (root / COMPLETE_MARKER).is_file() and not (root / ".demo_generating").exists()


def test_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "real" / "JPEGImages").mkdir(parents=True)
    (tmp_path / "real" / "JPEGImages" / "000005.jpg").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="refusing"):
        write_demo_voc(tmp_path / "real", seed=0, n_trainval=2, n_test=2)
    assert (tmp_path / "real" / "JPEGImages" / "000005.jpg").read_bytes() == b"precious"


def test_voc_demo_reads_and_has_the_planted_structure(demo_voc_root):
    trainval, test = load_voc(demo_voc_root, "trainval"), load_voc(demo_voc_root, "test")
    params = demo_params(demo_voc_root)
    assert (len(trainval), len(test)) == (params["n_trainval"], params["n_test"])
    assert not set(trainval.image_ids) & set(test.image_ids)
    assert trainval.label_names == VOC_CLASSES
    targets = np.concatenate([trainval.targets, test.targets])  # [N, 20]
    present = targets != 0  # drawn at all, difficult included

    assert (targets == 1).sum(axis=1).mean() > 1.5  # a multi-label task
    assert present.any(axis=1).all()  # at least one object per image
    prevalence = present.mean(axis=0)
    assert prevalence.max() > 5 * prevalence.min()  # long tail
    assert prevalence.argmax() == VOC_CLASSES.index("person")
    col = VOC_CLASSES.index
    assert lift(present, col("dog"), col("sofa")) > 2  # planted pair
    assert lift(present, col("diningtable"), col("chair")) > 1.5  # expected ~2.5: chair is common on its own

    # Difficult objects exist and produce ignored labels.
    assert (targets == -1).any()
    flags = [
        element.findtext("difficult")
        for path in (demo_voc_root / "Annotations").glob("*.xml")
        for element in ET.parse(path).getroot().iter("object")
    ]
    assert 0.03 < flags.count("1") / len(flags) < 0.2


def test_voc_demo_images(demo_voc_root):
    index = load_voc(demo_voc_root, "test")
    for i in range(5):
        image = read_rgb(index.path_of(i))
        assert image.shape[0] == 3 and 80 <= image.shape[1] <= 112 and 80 <= image.shape[2] <= 112
        size = ET.parse(demo_voc_root / "Annotations" / f"{index.image_ids[i]}.xml").getroot().find("size")
        assert (int(size.findtext("height")), int(size.findtext("width"))) == tuple(image.shape[1:])


def test_coco_demo_reads_and_has_the_planted_structure(demo_coco_root):
    train = load_coco(demo_coco_root, "train2014")
    val_all = load_coco(demo_coco_root, "val2014", keep_unannotated=True)
    val = load_coco(demo_coco_root, "val2014")
    expected_names = tuple(name for _, name, _, _ in COCO_DEMO_CATEGORIES)
    assert train.label_names == expected_names and expected_names[:4] == ("person", "bicycle", "car", "motorcycle")

    # Unannotated images: in the JSON, left out by default, kept (all negative) on request.
    params = demo_params(demo_coco_root)
    assert len(train) < params["n_train"]
    assert len(val_all) == params["n_val"] > len(val)
    extra = [i for i, image_id in enumerate(val_all.image_ids) if image_id not in set(val.image_ids)]
    assert (val_all.targets[extra] == 0).all()
    assert list(map(int, val_all.image_ids)) == sorted(map(int, val_all.image_ids))

    targets = np.concatenate([train.targets, val.targets])
    assert set(np.unique(targets)) == {0, 1}
    assert targets.sum(axis=1).mean() > 1.5
    prevalence = targets.mean(axis=0)
    assert prevalence.max() > 5 * prevalence.min()
    col = expected_names.index
    assert lift(targets == 1, col("dog"), col("couch")) > 2

    # The JSON is the real COCO format: non-contiguous ids, box polygons, file names.
    dataset = json.loads((demo_coco_root / "annotations" / "instances_val2014.json").read_text())
    assert [c["id"] for c in dataset["categories"]][-3:] == [63, 67, 72]
    assert set(dataset) == {"info", "licenses", "images", "annotations", "categories"}
    images = {image["id"]: image for image in dataset["images"]}
    for annotation in dataset["annotations"][:20]:
        x, y, w, h = annotation["bbox"]
        image = images[annotation["image_id"]]
        assert 0 <= x and x + w <= image["width"] and 0 <= y and y + h <= image["height"]
        assert annotation["area"] == w * h and annotation["iscrowd"] == 0
        assert len(annotation["segmentation"][0]) == 8
    name = dataset["images"][0]["file_name"]
    assert name == f"COCO_val2014_{dataset['images'][0]['id']:012d}.jpg"
    assert (demo_coco_root / "val2014" / name).is_file()


def test_describe_demo_names_every_class():
    text = describe_demo()
    for name in VOC_CLASSES + tuple(name for _, name, _, _ in COCO_DEMO_CATEGORIES):
        assert f"| {name} |" in text
    # a third of the classes are multi-modal, and no two classes share a glyph
    assert sum(len(modes) > 1 for modes in GLYPHS.values()) >= 6
    all_glyphs = [glyph for modes in GLYPHS.values() for glyph in modes]
    assert len(all_glyphs) == len(set(all_glyphs))
