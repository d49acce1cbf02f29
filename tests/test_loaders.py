"""VOC and COCO loaders on tiny hand-made files in the real formats, and the image checks they rely on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image, read_file

from drmoe_repro.data.coco import load_coco
from drmoe_repro.data.image_files import CorruptImageError, DatasetFormatError, file_problem
from drmoe_repro.data.images import read_rgb
from drmoe_repro.data.voc import VOC_CLASSES, load_voc


def write_jpeg(path: Path, size=(24, 16), colour=(200, 30, 30), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(path, format="JPEG", quality=90)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ---------------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------------


def test_torchvision_rejects_truncated_jpeg(tmp_path):
    """The behaviour read_rgb relies on (and guards against in older decoders): a cut JPEG does not decode."""
    path = tmp_path / "cut.jpg"
    write_jpeg(path, size=(64, 48))
    data = path.read_bytes()
    path.write_bytes(data[:-2])  # only the end-of-image marker is missing
    with pytest.raises(RuntimeError):
        decode_image(read_file(str(path)), mode=ImageReadMode.RGB)


def test_read_rgb_shapes_and_grayscale(tmp_path):
    write_jpeg(tmp_path / "rgb.jpg", size=(24, 16))
    write_jpeg(tmp_path / "grey.jpg", size=(10, 12), colour=(90,), mode="L")
    Image.new("RGB", (5, 7), (1, 2, 3)).save(tmp_path / "small.png")
    rgb = read_rgb(tmp_path / "rgb.jpg")
    assert rgb.dtype == torch.uint8 and rgb.shape == (3, 16, 24)
    grey = read_rgb(tmp_path / "grey.jpg")
    assert grey.shape == (3, 12, 10)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert read_rgb(tmp_path / "small.png")[:, 0, 0].tolist() == [1, 2, 3]


def test_read_rgb_names_bad_files(tmp_path):
    path = tmp_path / "broken.jpg"
    write_jpeg(path)
    truncate(path)
    with pytest.raises(CorruptImageError, match="broken.jpg"):
        read_rgb(path)
    (tmp_path / "garbage.jpg").write_bytes(b"not an image at all")
    with pytest.raises(CorruptImageError, match="garbage.jpg"):
        read_rgb(tmp_path / "garbage.jpg")
    with pytest.raises(CorruptImageError, match="absent.jpg"):
        read_rgb(tmp_path / "absent.jpg")


def test_corrupt_image_error_pickles():
    """DataLoader workers and multiprocessing pickle exceptions: the path and reason must survive."""
    import pickle

    error = pickle.loads(pickle.dumps(CorruptImageError(Path("a/b.jpg"), "truncated")))
    assert isinstance(error, DatasetFormatError) and str(error) == "a/b.jpg: truncated"


def test_file_problem_accepts_what_the_reader_decodes_and_names_the_rest(tmp_path):
    path = tmp_path / "ok.jpg"
    write_jpeg(path)
    assert file_problem(path) is None
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(path.read_bytes() + b"\x00" * 10 + b"\n")
    assert file_problem(padded) is None
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(path.read_bytes()[:-2])
    assert "truncated JPEG" in file_problem(cut)
    zero_filled = tmp_path / "zero_filled.jpg"  # a preallocated file whose download stopped early
    zero_filled.write_bytes(path.read_bytes()[:100] + b"\x00" * 500)
    assert "truncated JPEG" in file_problem(zero_filled)
    png_named_jpg = tmp_path / "png_inside.jpg"  # COCO has PNG data under .jpg names: read by its bytes
    Image.new("RGB", (4, 4)).save(png_named_jpg, format="PNG")
    assert file_problem(png_named_jpg) is None
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(png_named_jpg.read_bytes()[:-6])
    assert "truncated PNG" in file_problem(cut_png)
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert file_problem(tmp_path / "empty.jpg") == "empty image file"
    (tmp_path / "page.jpg").write_bytes(b"<html>Not Found</html>")
    assert "not a JPEG or PNG" in file_problem(tmp_path / "page.jpg")
    assert file_problem(tmp_path / "absent.jpg") == "image file is missing"


# ---------------------------------------------------------------------------------------------------------------
# VOC
# ---------------------------------------------------------------------------------------------------------------

# image id -> [(class, difficult)]; 000002's cat is difficult only, 000003 has a difficult and an easy person.
VOC_OBJECTS = {
    "000001": [("person", False), ("dog", False)],
    "000002": [("cat", True), ("car", False)],
    "000003": [("person", True), ("person", False)],
}


def voc_xml(image_id: str, objects) -> str:
    body = "".join(
        f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated><difficult>{int(difficult)}</difficult>"
        "<bndbox><xmin>2</xmin><ymin>3</ymin><xmax>10</xmax><ymax>12</ymax></bndbox></object>"
        for name, difficult in objects
    )
    return (
        f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename>"
        f"<size><width>24</width><height>16</height><depth>3</depth></size><segmented>0</segmented>{body}</annotation>"
    )


def make_voc(root: Path, objects=VOC_OBJECTS, image_set="trainval") -> Path:
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (root / "Annotations").mkdir()
    ids = sorted(objects)
    (main / f"{image_set}.txt").write_text("".join(f"{i}\n" for i in ids))
    for image_id in ids:
        write_jpeg(root / "JPEGImages" / f"{image_id}.jpg")
        (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, objects[image_id]))
    for name in VOC_CLASSES:
        lines = []
        for image_id in ids:
            flags = [difficult for object_name, difficult in objects[image_id] if object_name == name]
            value = -1 if not flags else (1 if not all(flags) else 0)
            lines.append(f"{image_id} {value:2d}\n")
        (main / f"{name}_{image_set}.txt").write_text("".join(lines))
    return root


def test_voc_targets(tmp_path):
    index = load_voc(make_voc(tmp_path / "VOC2007"), "trainval")
    assert index.label_names == VOC_CLASSES
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[-1] == "tvmonitor" and len(VOC_CLASSES) == 20
    assert index.image_ids == ("000001", "000002", "000003")
    assert index.image_paths == ("JPEGImages/000001.jpg", "JPEGImages/000002.jpg", "JPEGImages/000003.jpg")
    assert index.path_of(0) == tmp_path / "VOC2007" / "JPEGImages" / "000001.jpg"
    expected = np.zeros((3, 20), dtype=np.int8)
    col = VOC_CLASSES.index
    expected[0, [col("person"), col("dog")]] = 1
    expected[1, col("car")] = 1
    expected[1, col("cat")] = -1  # difficult only: ignored
    expected[2, col("person")] = 1  # one easy instance is enough
    np.testing.assert_array_equal(index.targets, expected)
    assert index.targets.dtype == np.int8


def test_voc_truncated_jpeg(tmp_path):
    root = make_voc(tmp_path / "VOC2007")
    truncate(root / "JPEGImages" / "000002.jpg")
    with pytest.raises(DatasetFormatError, match="000002.jpg"):
        load_voc(root, "trainval")
    assert len(load_voc(root, "trainval", check_images=False)) == 3  # the cheap check can be switched off


def test_voc_missing_image(tmp_path):
    root = make_voc(tmp_path / "VOC2007")
    (root / "JPEGImages" / "000003.jpg").unlink()
    for check in (True, False):
        with pytest.raises(DatasetFormatError, match="000003.jpg.*missing"):
            load_voc(root, "trainval", check_images=check)


def test_voc_xml_without_objects(tmp_path):
    root = make_voc(tmp_path / "VOC2007")
    (root / "Annotations" / "000001.xml").write_text(voc_xml("000001", []))
    with pytest.raises(DatasetFormatError, match=r"000001\.xml.*no <object>"):
        load_voc(root, "trainval")


def test_voc_xml_disagreeing_with_image_sets(tmp_path):
    root = make_voc(tmp_path / "VOC2007")
    (root / "Annotations" / "000001.xml").write_text(voc_xml("000001", [("person", False), ("horse", False)]))
    with pytest.raises(DatasetFormatError, match=r"000001\.xml.*disagree"):
        load_voc(root, "trainval")


def test_voc_missing_class_file(tmp_path):
    root = make_voc(tmp_path / "VOC2007")
    (root / "ImageSets" / "Main" / "sofa_trainval.txt").unlink()
    with pytest.raises(DatasetFormatError, match="sofa_trainval.txt"):
        load_voc(root, "trainval")


# ---------------------------------------------------------------------------------------------------------------
# COCO
# ---------------------------------------------------------------------------------------------------------------


def coco_json() -> dict:
    """Three images listed out of id order, categories out of id order with non-contiguous ids, one crowd-only
    class, and image 300 with no annotation."""
    return {
        "info": {"description": "test"},
        "licenses": [],
        "images": [
            {"id": 42, "file_name": "COCO_val2014_000000000042.jpg", "width": 24, "height": 16},
            {"id": 300, "file_name": "COCO_val2014_000000000300.jpg", "width": 24, "height": 16},
            {"id": 7, "file_name": "COCO_val2014_000000000007.jpg", "width": 24, "height": 16},
        ],
        "annotations": [
            {"id": 1, "image_id": 42, "category_id": 18, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0,
             "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]]},
            {"id": 2, "image_id": 42, "category_id": 72, "bbox": [2, 2, 5, 5], "area": 25, "iscrowd": 0,
             "segmentation": [[2, 2, 7, 2, 7, 7, 2, 7]]},
            {"id": 3, "image_id": 7, "category_id": 1, "bbox": [0, 0, 24, 16], "area": 384, "iscrowd": 1,
             "segmentation": {"counts": [0, 384], "size": [16, 24]}},
            {"id": 4, "image_id": 7, "category_id": 18, "bbox": [3, 3, 4, 4], "area": 16, "iscrowd": 0,
             "segmentation": [[3, 3, 7, 3, 7, 7, 3, 7]]},
        ],
        "categories": [
            {"id": 72, "name": "tv", "supercategory": "electronic"},
            {"id": 1, "name": "person", "supercategory": "person"},
            {"id": 18, "name": "dog", "supercategory": "animal"},
        ],
    }


def make_coco(root: Path, dataset: dict | None = None, split: str = "val2014") -> Path:
    dataset = coco_json() if dataset is None else dataset
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(dataset))
    for image in dataset["images"]:
        write_jpeg(root / split / image["file_name"])
    return root


def test_coco_targets_and_unannotated(tmp_path):
    root = make_coco(tmp_path / "coco")
    index = load_coco(root, "val2014")
    assert index.label_names == ("person", "dog", "tv")  # category-id order 1, 18, 72
    assert index.image_ids == ("7", "42")  # by image id; 300 has no annotation and is left out
    assert index.image_paths == ("val2014/COCO_val2014_000000000007.jpg", "val2014/COCO_val2014_000000000042.jpg")
    # Image 7's person is a crowd annotation and counts as positive.
    np.testing.assert_array_equal(index.targets, np.array([[1, 1, 0], [0, 1, 1]], dtype=np.int8))

    kept = load_coco(root, "val2014", keep_unannotated=True)
    assert kept.image_ids == ("7", "42", "300")
    np.testing.assert_array_equal(kept.targets, np.array([[1, 1, 0], [0, 1, 1], [0, 0, 0]], dtype=np.int8))


def test_coco_without_categories(tmp_path):
    dataset = coco_json()
    del dataset["categories"]
    root = make_coco(tmp_path / "coco", dataset)
    with pytest.raises(DatasetFormatError, match=r"instances_val2014\.json.*categories"):
        load_coco(root, "val2014")


def test_coco_unreadable_json(tmp_path):
    root = make_coco(tmp_path / "coco")
    path = root / "annotations" / "instances_val2014.json"
    path.write_text(path.read_text()[:-40])  # a cut download
    with pytest.raises(DatasetFormatError, match=r"instances_val2014\.json.*not valid JSON"):
        load_coco(root, "val2014")


def test_coco_unknown_category(tmp_path):
    dataset = coco_json()
    dataset["annotations"][0]["category_id"] = 5
    root = make_coco(tmp_path / "coco", dataset)
    with pytest.raises(DatasetFormatError, match=r"instances_val2014\.json.*category_id 5"):
        load_coco(root, "val2014")


def test_coco_truncated_jpeg(tmp_path):
    root = make_coco(tmp_path / "coco")
    truncate(root / "val2014" / "COCO_val2014_000000000042.jpg")
    with pytest.raises(DatasetFormatError, match="COCO_val2014_000000000042.jpg"):
        load_coco(root, "val2014")


def test_coco_missing_image(tmp_path):
    root = make_coco(tmp_path / "coco")
    (root / "val2014" / "COCO_val2014_000000000007.jpg").unlink()
    with pytest.raises(DatasetFormatError, match="COCO_val2014_000000000007.jpg.*missing"):
        load_coco(root, "val2014")
    # An image that is left out (unannotated) is not checked unless kept.
    (root / "val2014" / "COCO_val2014_000000000300.jpg").unlink()
    write_jpeg(root / "val2014" / "COCO_val2014_000000000007.jpg")
    assert len(load_coco(root, "val2014")) == 2
    with pytest.raises(DatasetFormatError, match="COCO_val2014_000000000300.jpg"):
        load_coco(root, "val2014", keep_unannotated=True)


def test_coco_missing_annotation_file(tmp_path):
    with pytest.raises(DatasetFormatError, match=r"instances_train2014\.json.*missing"):
        load_coco(tmp_path, "train2014")


def test_encoded_images_cross_dataloader_workers_and_decode_as_on_the_cpu_path(demo_voc_root):
    """decode: device with workers hung at batch 0: read_file's tensors cannot leave a worker ("Bad file
    descriptor") and the loader waited for ever. Bytes cross; a timeout bounds the wait if anything else stalls."""
    from torch.utils.data import DataLoader

    from drmoe_repro.data.dataset import ImageLabelDataset, collate_encoded, decode_and_transform

    index = load_voc(demo_voc_root, "trainval")
    dataset = ImageLabelDataset(index, None, decode_on_device=True)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate_encoded, timeout=30,
                        sampler=[(i, 0) for i in range(8)])
    corner = lambda image: image[:, :40, :40]  # noqa: E731  (a batch is stacked: one size)
    rows = []
    for encoded, _, items, epochs in loader:
        assert all(isinstance(data, bytes) for data in encoded)
        images = decode_and_transform(encoded, items, epochs, corner, 0, torch.device("cpu"), index)
        rows += [(int(i), image) for i, image in zip(items, images)]
    assert [i for i, _ in rows] == list(range(8))
    for i, image in rows:
        assert torch.equal(image, corner(read_rgb(index.path_of(i))))


@pytest.mark.parametrize("augment", ["paper", "q2l", "mlgcn", "addgcn"])
def test_every_recipe_augmentation_is_the_same_on_the_device_path_and_repeats_under_its_seed(demo_voc_root, augment):
    """An image's augmentation is fixed by (seed, epoch, image) whichever path decodes it: a transform drawing from
    an unseeded generator (Python's `random`, as ML-GCN's MultiScaleCrop does) would fail here."""
    from drmoe_repro.data.dataset import ImageLabelDataset, decode_and_transform
    from drmoe_repro.data.transforms import build_recipe_train_transform

    index = load_voc(demo_voc_root, "trainval")
    transform = build_recipe_train_transform(augment, {"image_size": 48, "augment": {
        "crop_scale": [0.08, 1.0], "hflip": True, "color_jitter": 0.4}})
    on_cpu = ImageLabelDataset(index, transform, seed=7)
    on_device = ImageLabelDataset(index, None, seed=7, decode_on_device=True)
    keys = [(i, 2) for i in range(6)]
    cpu_images = torch.stack([on_cpu[key][0] for key in keys])  # [6, 3, 48, 48]
    encoded = [on_device[key][0] for key in keys]
    items, epochs = torch.tensor([i for i, _ in keys]), torch.tensor([e for _, e in keys])
    device_images = decode_and_transform(encoded, items, epochs, transform, 7, torch.device("cpu"), index)
    assert cpu_images.shape == (6, 3, 48, 48) and torch.equal(device_images, cpu_images)
    assert torch.equal(torch.stack([on_cpu[key][0] for key in keys]), cpu_images)  # the same draws again
    assert not torch.equal(on_cpu[(0, 3)][0], cpu_images[0])  # another epoch, another augmentation
