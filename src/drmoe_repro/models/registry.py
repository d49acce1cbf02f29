"""The model registry: each model is one decorated builder, in the spirit of timm's `@register_model`.

A builder takes the model block of the resolved config and a `DataInfo` (what some models need from the training
labels, e.g. ML-GCN's co-occurrence graph) and returns an `nn.Module` whose `forward(images, targets=None)`
returns a dict with at least
    "logits": [batch, num_labels]  (before the sigmoid)
and, for mixture-of-experts models,
    "gates": [batch, num_labels, num_experts] (rows sum to 1), "aux_loss": scalar added to the loss.
tests/test_models.py is parametrised over `MODELS`, so a model is tested the moment it is registered.

Each builder declares the keys of the config's `model:` block it reads. A run's resolved config (run.json, and the
signature that makes Snakemake retrain) holds only those keys, so changing ML-GCN's tau does not retrain DR-MoE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch.nn as nn

MODELS: dict[str, Callable[..., nn.Module]] = {}
MODEL_KEYS: dict[str, tuple[str, ...]] = {}

# Keys shared by families of models.
BACKBONE_KEYS = ("backbone", "pretrained", "weights_dir")
TRUNK_KEYS = BACKBONE_KEYS + ("d_model", "n_heads", "n_enc", "n_dec", "ffn_dim", "dropout")
MOE_KEYS = TRUNK_KEYS + ("n_shared", "expert_hidden", "expert_layers", "gate_hidden", "classifier",
                         "entropy_lambda", "entropy_sign")


@dataclass(frozen=True)
class DataInfo:
    label_names: tuple[str, ...]
    train_targets: np.ndarray  # [N, L] int8 in {1, 0, -1}: label statistics for graph and ordering models
    extras: dict = field(default_factory=dict)  # optional paths, e.g. {"glove": "results/paper/data/glove/..."}

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def register_model(*, config_keys: tuple[str, ...]) -> Callable:
    """Decorator: register a builder under its function name, with the `model:` keys it reads."""

    def register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = builder
        MODEL_KEYS[name] = tuple(config_keys)
        return builder

    return register


def model_config_for(name: str, model_block: dict) -> dict:
    """The part of a profile's `model:` block that model `name` reads (optional keys may be absent)."""
    from drmoe_repro import models  # noqa: F401

    if name not in MODELS:
        raise KeyError(f"model {name!r} is not registered; registered models: {', '.join(sorted(MODELS))}")
    return {key: model_block[key] for key in MODEL_KEYS[name] if key in model_block}


def build_model(name: str, model_cfg: dict, data: DataInfo) -> nn.Module:
    # Importing the package's model modules fills the registry.
    from drmoe_repro import models  # noqa: F401

    if name not in MODELS:
        raise KeyError(f"model {name!r} is not registered; registered models: {', '.join(sorted(MODELS))}")
    return MODELS[name](model_cfg, data)


def is_registered(name: str) -> bool:
    from drmoe_repro import models  # noqa: F401

    return name in MODELS
