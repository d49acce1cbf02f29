"""Turn a data set on disk into label indices: generate the demo data if the profile asks for it, read the real
VOC or COCO annotation files with the format's loader, check the image counts, write train/test indices."""

from __future__ import annotations

from pathlib import Path

from drmoe_repro.data import coco, demo, voc
from drmoe_repro.data.index import LabelIndex


def dataset_root(prof: dict, dataset: str) -> Path:
    return Path(prof["data_dir"]) / prof["datasets"][dataset]["root"]


def fetched_marker(prof: dict, asset: str) -> Path:
    """The file `drmoe-repro fetch --asset NAME` writes once an asset is downloaded, verified and extracted."""
    return Path(prof["data_dir"]) / f"{asset}.fetched.json"


def model_extras(prof: dict) -> dict:
    """Files models may read at construction: the GloVe folder when the profile fetches GloVe (ML-GCN)."""
    extras = {}
    for asset in prof.get("model_assets", []):
        spec = prof["assets"][asset]
        if asset.startswith("glove"):
            extras["glove"] = str(Path(prof["data_dir"]) / spec.get("extract_to", asset))
    return extras


def generate_demo(prof: dict, dataset: str) -> None:
    spec = prof["datasets"][dataset]
    root, seed, counts = dataset_root(prof, dataset), prof["demo_seed"], spec["demo_images"]
    if spec["format"] == "voc":
        demo.write_demo_voc(root, seed=seed, n_trainval=counts["train"], n_test=counts["test"])
    else:
        demo.write_demo_coco(root, seed=seed, n_train=counts["train"], n_val=counts["test"])


def load_split(prof: dict, dataset: str, split: str, keep_unannotated: bool | None = None) -> LabelIndex:
    spec = prof["datasets"][dataset]
    root = dataset_root(prof, dataset)
    if spec["format"] == "voc":
        return voc.load_voc(root, split)
    keep = spec.get("keep_unannotated", False) if keep_unannotated is None else keep_unannotated
    return coco.load_coco(root, split, keep_unannotated=keep)


def check_counts(dataset: str, spec: dict, train: LabelIndex, test: LabelIndex) -> None:
    key = "expected_images_with_unannotated" if spec.get("keep_unannotated") else "expected_images"
    expected = spec.get(key)
    if expected is None:
        return
    got = {"train": len(train), "test": len(test)}
    if got != expected:
        raise ValueError(
            f"{dataset}: found {got['train']} training and {got['test']} test images, but the config's "
            f"{key} expects {expected['train']} and {expected['test']}: the download or extraction is incomplete"
        )


def prepare_dataset(prof: dict, dataset: str, train_out: Path, test_out: Path) -> dict:
    spec = prof["datasets"][dataset]
    if spec["source"] == "demo":
        generate_demo(prof, dataset)
    else:
        missing = [a for a in spec.get("assets", []) if not fetched_marker(prof, a).exists()]
        if missing:
            raise FileNotFoundError(
                f"{dataset}: assets not fetched yet: {', '.join(missing)}; run "
                + "; ".join(f"`drmoe-repro fetch --asset {a}`" for a in missing)
            )
    train = load_split(prof, dataset, spec["train_split"])
    test = load_split(prof, dataset, spec["test_split"])
    if train.label_names != test.label_names:
        raise ValueError(f"{dataset}: the train and test splits list different labels")
    check_counts(dataset, spec, train, test)
    train.save(train_out)
    test.save(test_out)
    return {"train": len(train), "test": len(test), "labels": len(train.label_names)}
