"""Where everything lives, and which fetched assets each step needs. Imports neither torch nor matplotlib.

The Snakemake workflow (every `-n`, and every cluster job, parses it), the DVC generator and the commands all ask
this module, so a path or a file name is spelt in one place.
"""

from __future__ import annotations

from pathlib import Path

RESULTS = Path("results")

# The ImageNet weights of backbone B are the asset `<B>_imagenet`; GloVe label vectors are the asset `glove_6B`.
IMAGENET_ASSET_SUFFIX = "_imagenet"
GLOVE_ASSET = "glove_6B"


def results_dir(profile: str) -> Path:
    return RESULTS / profile


def run_dir(profile: str, dataset: str, system: str, seed: int) -> Path:
    """The run directory: results/<profile>/runs/<dataset>/<system>/seed<k>/."""
    return results_dir(profile) / "runs" / dataset / system / f"seed{seed}"


def index_path(profile: str, dataset: str, split: str) -> Path:
    """Where `prepare` writes the label index of one split ("train" or "test")."""
    return results_dir(profile) / "index" / dataset / f"{split}.npz"


def fetch_marker(prof: dict, asset: str) -> Path:
    """The file `drmoe-repro fetch --asset NAME` writes once an asset is verified and in place: where it lives."""
    return Path(prof["data_dir"]) / f"{asset}.fetched.json"


def planned_config_dir() -> Path:
    """Where the workflow writes the config it planned with, for its jobs to read (named by content)."""
    return RESULTS / ".planned"


# ----------------------------------------------------------------------------------------------------------------
# Which assets a step needs
# ----------------------------------------------------------------------------------------------------------------


def dataset_assets(prof: dict, dataset: str) -> dict[str, str]:
    """Role ("train", "test", "annotations") -> asset name of a data set fetched as archives; {} for the demo."""
    spec = prof["datasets"][dataset]
    return dict(spec.get("assets", {})) if spec["source"] == "assets" else {}


def model_assets(model_cfg: dict) -> dict[str, str]:
    """Role -> asset name of what a run's model settings ask for: ImageNet weights, GloVe label vectors.

    `model_cfg` is a run's resolved model block (only the keys its model reads), so a model without label
    embeddings never asks for GloVe, and `pretrained: false` asks for no weights.
    """
    needs = {}
    if model_cfg.get("pretrained"):
        needs["backbone_weights"] = f"{model_cfg['backbone']}{IMAGENET_ASSET_SUFFIX}"
    if model_cfg.get("label_embedding") == "glove":
        needs["label_vectors"] = GLOVE_ASSET
    return needs
