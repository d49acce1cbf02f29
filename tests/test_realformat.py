"""Tests of the miniature real-format data sets and stand-in pretrained files (tests/realformat.py), served from a
loopback HTTP server (tests/loopback.py) as the URLs of asset specs, fetched with drmoe_repro.data.fetch and read
with the suite's loaders: the infrastructure a paper-profile end-to-end test stands on."""

from __future__ import annotations

import json
import re
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from pycocotools import mask as coco_mask
from torchvision.io import ImageReadMode, decode_image, read_file

import realformat
from drmoe_repro.data.coco import load_coco
from drmoe_repro.data.fetch import extract_archive, fetch_asset_result
from drmoe_repro.data.images import read_rgb
from drmoe_repro.data.pretrained import imagenet_backbone_weights, load_glove
from drmoe_repro.data.voc import VOC_CLASSES, load_voc
from loopback import PROXY_VARIABLES, LoopbackServer, serve_files
from realformat import COCO_CATEGORIES, COCO_NAMES, asset_specs

VOC_DIRS = {"VOCdevkit", "VOCdevkit/VOC2007", "VOCdevkit/VOC2007/Annotations", "VOCdevkit/VOC2007/ImageSets",
            "VOCdevkit/VOC2007/ImageSets/Main", "VOCdevkit/VOC2007/JPEGImages"}


# --------------------------------------------------------------------------------------------------------------------
# (a) The archives hold exactly the official member layout
# --------------------------------------------------------------------------------------------------------------------


def test_coco_zips_have_the_official_names_and_members(realformat_coco):
    archives = realformat_coco["archives"]
    assert sorted(archives) == ["annotations_trainval2014.zip", "train2014.zip", "val2014.zip"]
    for split in ("train2014", "val2014"):
        ids = realformat_coco["splits"][split]["image_ids_with_unannotated"]
        names = zipfile.ZipFile(archives[f"{split}.zip"]).namelist()
        assert names == [f"{split}/"] + sorted(f"{split}/COCO_{split}_{int(i):012d}.jpg" for i in ids)
        assert all(re.fullmatch(rf"{split}/(COCO_{split}_\d{{12}}\.jpg)?", name) for name in names)
    assert zipfile.ZipFile(archives["annotations_trainval2014.zip"]).namelist() == ["annotations/"] + [
        f"annotations/{kind}_{split}.json"
        for kind in ("captions", "instances", "person_keypoints") for split in ("train2014", "val2014")
    ]
    train_ids = set(realformat_coco["splits"]["train2014"]["image_ids_with_unannotated"])
    assert not train_ids & set(realformat_coco["splits"]["val2014"]["image_ids_with_unannotated"])


def test_coco_instances_json_has_the_official_structure(realformat_coco):
    with zipfile.ZipFile(realformat_coco["archives"]["annotations_trainval2014.zip"]) as zf:
        instances = json.loads(zf.read("annotations/instances_train2014.json"))
    assert list(instances) == ["info", "licenses", "images", "annotations", "categories"]
    assert instances["categories"] == [{"supercategory": s, "id": i, "name": n} for i, n, s in COCO_CATEGORIES]
    ids = [c["id"] for c in instances["categories"]]
    assert len(ids) == 80 and ids[-1] == 90 and sorted(set(range(1, 91)) - set(ids)) == [
        12, 26, 29, 30, 45, 66, 68, 69, 71, 83
    ]
    for name in ("traffic light", "fire hydrant", "stop sign", "parking meter", "sports ball", "baseball bat",
                 "wine glass", "hot dog", "potted plant", "dining table", "cell phone", "teddy bear", "hair drier"):
        assert name in COCO_NAMES
    assert {"id", "file_name", "width", "height"} <= set(instances["images"][0])
    assert {(i["width"], i["height"]) for i in instances["images"]} == {(640, 480)}
    image_ids = [i["id"] for i in instances["images"]]
    assert image_ids != sorted(image_ids)  # no id order in the file: the loader must sort
    for annotation in instances["annotations"]:
        assert set(annotation) == {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"}
    crowds = [a for a in instances["annotations"] if a["iscrowd"] == 1]
    assert crowds and all(set(a["segmentation"]) == {"counts", "size"} for a in crowds)
    for crowd in crowds:  # pycocotools reads the uncompressed RLE back as the box
        rle = coco_mask.frPyObjects(crowd["segmentation"], 480, 640)
        assert sum(crowd["segmentation"]["counts"]) == 640 * 480 and coco_mask.area(rle) == crowd["area"]
    annotated = {a["image_id"] for a in instances["annotations"]}
    assert len(set(image_ids) - annotated) == 1  # the one unannotated image is listed, with no annotation


def test_voc_tars_have_the_official_names_and_members(realformat_voc):
    archives = realformat_voc["archives"]
    assert sorted(archives) == ["VOCtest_06-Nov-2007.tar", "VOCtrainval_06-Nov-2007.tar"]
    sets = {"VOCtrainval_06-Nov-2007.tar": ("trainval", ("train", "val", "trainval")),
            "VOCtest_06-Nov-2007.tar": ("test", ("test",))}
    for filename, (main_set, image_sets) in sets.items():
        with tarfile.open(archives[filename]) as tf:
            members = tf.getmembers()
        ids = realformat_voc["splits"][main_set]["image_ids"]
        assert all(re.fullmatch(r"\d{6}", i) for i in ids)
        root = "VOCdevkit/VOC2007/"
        expected_files = {f"{root}JPEGImages/{i}.jpg" for i in ids} | {f"{root}Annotations/{i}.xml" for i in ids}
        for image_set in image_sets:
            expected_files.add(f"{root}ImageSets/Main/{image_set}.txt")
            expected_files.update(f"{root}ImageSets/Main/{c}_{image_set}.txt" for c in VOC_CLASSES)
        assert {m.name for m in members if m.isfile()} == expected_files
        assert {m.name for m in members if m.isdir()} == VOC_DIRS
        assert [m.name for m in members] == sorted(m.name for m in members)
    trainval, test = (set(realformat_voc["splits"][s]["image_ids"]) for s in ("trainval", "test"))
    assert trainval and test and not trainval & test


def test_voc_annotation_xml_and_class_files_follow_the_devkit(realformat_voc):
    image_id = realformat_voc["splits"]["trainval"]["image_ids"][0]
    with tarfile.open(realformat_voc["archives"]["VOCtrainval_06-Nov-2007.tar"]) as tf:
        root = ET.fromstring(tf.extractfile(f"VOCdevkit/VOC2007/Annotations/{image_id}.xml").read())
        class_file = tf.extractfile("VOCdevkit/VOC2007/ImageSets/Main/aeroplane_trainval.txt").read().decode()
    assert [child.tag for child in root] == ["folder", "filename", "source", "owner", "size", "segmented"] + [
        "object"
    ] * len(root.findall("object"))
    assert root.findtext("folder") == "VOC2007" and root.findtext("filename") == f"{image_id}.jpg"
    obj = root.find("object")
    assert [child.tag for child in obj] == ["name", "pose", "truncated", "difficult", "bndbox"]
    assert [child.tag for child in obj.find("bndbox")] == ["xmin", "ymin", "xmax", "ymax"]
    assert all(re.fullmatch(r"\d{6} (-1| 0| 1)", line) for line in class_file.splitlines())


def test_same_call_same_bytes(realformat_coco, realformat_voc, tmp_path):
    assert realformat.build_coco2014(tmp_path / "coco")["md5"] == realformat_coco["md5"]
    assert realformat.build_voc2007(tmp_path / "voc")["md5"] == realformat_voc["md5"]
    assert realformat.build_coco2014(tmp_path / "other", seed=1)["md5"] != realformat_coco["md5"]


# --------------------------------------------------------------------------------------------------------------------
# (b) Served as the assets' URLs, fetched, and read by the loaders: the intended labels
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fetched(realformat_coco, realformat_voc, tmp_path_factory):
    """Both data sets served from one loopback server and fetched as the paper profile's assets, into data/."""
    data = tmp_path_factory.mktemp("fetched") / "data"
    assets = {**realformat_coco["assets"], **realformat_voc["assets"]}
    with pytest.MonkeyPatch.context() as patch:
        for var in PROXY_VARIABLES:
            patch.delenv(var, raising=False)
        server = LoopbackServer().start()
        try:
            urls = serve_files(server, {name: asset["path"] for name, asset in assets.items()})
            specs = asset_specs(assets, urls)
            results = {
                name: fetch_asset_result(name, spec, data / "downloads", data / spec["extract_to"], progress=False)
                for name, spec in specs.items()
            }
        finally:
            server.close()
    return {"data": data, "urls": urls, "specs": specs, "results": results, "hits": dict(server.hits)}


def test_archives_are_fetched_from_their_urls_and_verified(fetched, realformat_coco, realformat_voc):
    md5 = {**realformat_coco["md5"], **realformat_voc["md5"]}
    assert len(fetched["results"]) == 5
    for name, result in fetched["results"].items():
        spec = fetched["specs"][name]
        assert result.source == fetched["urls"][name] and result.source.endswith("/" + spec["filename"])
        assert result.md5 == md5[spec["filename"]] and result.extracted
        assert result.path == fetched["data"] / spec["extract_to"]
    assert sorted(fetched["hits"].values()) == [1] * 5


@pytest.mark.parametrize("keep_unannotated", [False, True])
def test_coco_loads_the_intended_labels(fetched, realformat_coco, keep_unannotated):
    suffix = "_with_unannotated" if keep_unannotated else ""
    for split in ("train2014", "val2014"):
        meant = realformat_coco["splits"][split]
        index = load_coco(fetched["data"] / "coco", split, keep_unannotated=keep_unannotated)
        assert index.label_names == COCO_NAMES and len(index.label_names) == 80
        assert index.image_ids == meant["image_ids" + suffix]
        np.testing.assert_array_equal(index.targets, meant["targets" + suffix])
        assert all((Path(index.image_root) / path).is_file() for path in index.image_paths)
        unannotated = set(meant["unannotated"])
        assert len(unannotated) == 1 and (unannotated <= set(index.image_ids)) == keep_unannotated
    train = realformat_coco["splits"]["train2014"]
    assert (train["targets"].sum(axis=0) >= 1).all()  # every category present in train
    ((image_id, name),) = train["crowd_only"]
    index = load_coco(fetched["data"] / "coco", "train2014")
    assert index.targets[index.image_ids.index(image_id), COCO_NAMES.index(name)] == 1  # a crowd counts


def test_coco_counts_fit_the_config_keys(realformat_coco):
    counts = realformat_coco["counts"]
    assert counts["expected_images"] == {"train": 23, "test": 7}
    assert counts["expected_images_with_unannotated"] == {"train": 24, "test": 8}


def test_png_data_under_a_jpg_name_passes_the_loaders_image_check_and_reads_alike_on_every_path(
        fetched, realformat_coco):
    from drmoe_repro.data.images import read_rgb
    from drmoe_repro.data.dataset import ImageLabelDataset, decode_and_transform, collate_encoded

    index = load_coco(fetched["data"] / "coco", "train2014")  # check_images=True, as prepare calls it
    special = realformat_coco["special_images"]
    for kind in ("png_as_jpg", "grayscale", "cmyk"):
        path = fetched["data"] / "coco" / special[kind]
        row = [index.path_of(i) for i in range(len(index))].index(path)
        on_cpu = read_rgb(path)  # the CPU decoding path
        encoded = collate_encoded([ImageLabelDataset(index, None, decode_on_device=True)[(row, 0)]])
        identity = lambda image: image  # noqa: E731
        on_device = decode_and_transform(encoded[0], encoded[2], encoded[3], identity, 0, torch.device("cpu"), index)
        assert on_cpu.shape[0] == 3 and torch.equal(on_device[0], on_cpu), kind


def test_grayscale_and_cmyk_jpegs_pass_the_loaders_image_check(realformat_coco, tmp_path):
    info = realformat.build_coco2014(tmp_path / "archives", png_as_jpg=False)
    assert "png_as_jpg" not in info["special_images"] and {"grayscale", "cmyk"} <= set(info["special_images"])
    for archive in info["archives"].values():
        extract_archive(archive, tmp_path / "coco")
    index = load_coco(tmp_path / "coco", "train2014")
    assert index.image_ids == info["splits"]["train2014"]["image_ids"]
    np.testing.assert_array_equal(index.targets, info["splits"]["train2014"]["targets"])


@pytest.mark.parametrize("image_set", ["trainval", "test", "train", "val"])
def test_voc_loads_the_intended_labels_with_difficult_as_ignored(fetched, realformat_voc, image_set):
    meant = realformat_voc["splits"][image_set]
    index = load_voc(fetched["data"] / "voc" / "VOCdevkit" / "VOC2007", image_set)
    assert index.label_names == VOC_CLASSES
    assert index.image_ids == meant["image_ids"]
    np.testing.assert_array_equal(index.targets, meant["targets"])
    if image_set in ("trainval", "test"):
        assert (index.targets == -1).any() and (index.targets == 1).any()


def test_voc_special_images_have_the_intended_difficulties(fetched, realformat_voc):
    index = load_voc(fetched["data"] / "voc" / "VOCdevkit" / "VOC2007", "trainval")
    row_of = {path: row for row, path in enumerate(index.image_paths)}
    specials = realformat_voc["special_images"]
    assert -1 in index.targets[row_of[specials["difficult_only"]]]
    assert 1 in index.targets[row_of[specials["difficult_only"]]]
    all_difficult = index.targets[row_of[specials["all_difficult"]]]
    assert (all_difficult <= 0).all() and (all_difficult == -1).any()
    assert (index.targets.max(axis=0) == 1).all()  # every class has a positive in trainval


# --------------------------------------------------------------------------------------------------------------------
# (c) Odd image files decode to RGB
# --------------------------------------------------------------------------------------------------------------------

ODD_IMAGES = [
    ("coco", "grayscale", "JPEG", "L"),
    ("coco", "cmyk", "JPEG", "CMYK"),
    ("coco", "png_as_jpg", "PNG", "RGB"),
    ("voc", "grayscale", "JPEG", "L"),
    ("voc", "cmyk", "JPEG", "CMYK"),
]


@pytest.mark.parametrize("dataset, kind, file_format, mode", ODD_IMAGES)
def test_odd_images_decode_to_rgb(fetched, realformat_coco, realformat_voc, dataset, kind, file_format, mode):
    info, root = ((realformat_coco, fetched["data"] / "coco") if dataset == "coco"
                  else (realformat_voc, fetched["data"] / "voc" / "VOCdevkit" / "VOC2007"))
    path = root / info["special_images"][kind]
    assert path.suffix == ".jpg"
    with Image.open(path) as image:
        assert (image.format, image.mode) == (file_format, mode)
        reference = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)  # [3, H, W]

    decoded = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)

    assert decoded.dtype == torch.uint8 and decoded.shape == reference.shape and decoded.shape[0] == 3
    # libjpeg and Pillow convert CMYK (Adobe, inverted) to RGB the same way: 0 difference with these builds
    assert (decoded.int() - reference.int()).abs().max() <= 2
    assert torch.equal(read_rgb(path), decoded)  # the suite's own decode


# --------------------------------------------------------------------------------------------------------------------
# Stand-in GloVe vectors and ImageNet weights
# --------------------------------------------------------------------------------------------------------------------


def test_standin_glove_has_every_class_name(server, standin_glove, tmp_path):
    assert standin_glove["filename"] == "glove.6B.zip"
    assert zipfile.ZipFile(standin_glove["path"]).namelist() == list(standin_glove["members"])
    assert "glove.6B.300d.txt" in standin_glove["members"]
    urls = serve_files(server, {"glove_6B": standin_glove["path"]})
    spec = asset_specs({"glove_6B": standin_glove}, urls)["glove_6B"]
    folder = fetch_asset_result("glove_6B", spec, tmp_path / "downloads", tmp_path / "glove", progress=False).path

    vectors = standin_glove["vectors"]
    coco = load_glove(folder, COCO_NAMES)  # raises MissingWordError on any missing part
    voc = load_glove(folder, VOC_CLASSES)
    assert coco.shape == (80, 300) and voc.shape == (20, 300)
    np.testing.assert_array_equal(coco[COCO_NAMES.index("person")], vectors["person"])
    np.testing.assert_allclose(coco[COCO_NAMES.index("traffic light")], (vectors["traffic"] + vectors["light"]) / 2)
    np.testing.assert_allclose(voc[VOC_CLASSES.index("pottedplant")], (vectors["potted"] + vectors["plant"]) / 2)
    np.testing.assert_array_equal(voc[VOC_CLASSES.index("tvmonitor")], vectors["tv"])  # as ML-GCN's released vectors


@pytest.fixture(scope="module")
def fetched_weights(standin_resnet101, tmp_path_factory):
    """The stand-in weights served and fetched with the config's spec, its sha256 overridden by the stand-in's."""
    cache = tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as patch:
        for var in PROXY_VARIABLES:
            patch.delenv(var, raising=False)
        server = LoopbackServer().start()
        try:
            urls = serve_files(server, {"resnet101_imagenet": standin_resnet101["path"]})
            spec = asset_specs({"resnet101_imagenet": standin_resnet101}, urls)["resnet101_imagenet"]
            result = fetch_asset_result("resnet101_imagenet", spec, cache, cache, progress=False)
        finally:
            server.close()
    return {"cache": cache, "spec": spec, "result": result}


def test_standin_resnet101_is_fetched_with_its_sha256_and_loads(fetched_weights, standin_resnet101):
    spec, result = fetched_weights["spec"], fetched_weights["result"]
    assert spec["filename"] == "resnet101-63fe2227.pth" and spec["extract"] is False
    assert not standin_resnet101["sha256"].startswith("63fe2227")  # hence the override
    assert result.path == fetched_weights["cache"] / "resnet101-63fe2227.pth"
    assert result.sha256 == standin_resnet101["sha256"]
    state = imagenet_backbone_weights("resnet101", fetched_weights["cache"], local=result.path)
    with torch.device("meta"):
        expected = torchvision.models.resnet101(weights=None).state_dict()
    assert set(state) == set(expected) and state["fc.weight"].shape == (1000, 2048)


def test_standin_resnet101_is_accepted_where_training_loads_it(fetched_weights):
    """Training loads the weights from where fetch put them (checked there against the config's sha256)."""
    from drmoe_repro.data.pretrained import load_imagenet_state_dict

    state = load_imagenet_state_dict("resnet101", fetched_weights["result"].path)
    assert state["fc.weight"].shape == (1000, 2048)


def test_a_resnet101_state_dict_without_batchnorm_counters_is_accepted(tmp_path):
    """torchvision's resnet101-63fe2227.pth is the 2017 state dict re-saved (pytorch/vision#3620), from before
    BatchNorm's num_batches_tracked; load_state_dict fills those in, so the check must not call them missing."""
    weights = realformat.write_standin_resnet101(tmp_path, num_batches_tracked=False)
    torchvision.models.resnet101(weights=None).load_state_dict(torch.load(weights["path"], weights_only=True))
    imagenet_backbone_weights("resnet101", tmp_path, local=weights["path"])
