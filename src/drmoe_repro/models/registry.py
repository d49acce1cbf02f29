"""The model registry: each model is one decorated builder, in the spirit of timm's `@register_model`.

A builder takes the model block of the resolved config and a `DataInfo` (what some models need from the training
labels, e.g. ML-GCN's co-occurrence graph) and returns an `nn.Module` whose `forward(images, targets=None)`
returns a dict with at least
    "logits": [batch, num_labels]  (before the sigmoid)
and, for mixture-of-experts models,
    "gates": [batch, num_labels, num_experts] (rows sum to 1), "aux_loss": scalar added to the loss.
tests/test_models.py is parametrised over `MODELS`, so a model is tested the moment it is registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch.nn as nn

MODELS: dict[str, Callable[..., nn.Module]] = {}


@dataclass(frozen=True)
class DataInfo:
    label_names: tuple[str, ...]
    train_targets: np.ndarray  # [N, L] int8 in {1, 0, -1}: label statistics for graph and ordering models
    extras: dict = field(default_factory=dict)  # optional paths, e.g. {"glove": "results/paper/data/glove/..."}

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def register_model(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    name = builder.__name__
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    MODELS[name] = builder
    return builder


def build_model(name: str, model_cfg: dict, data: DataInfo) -> nn.Module:
    # Importing the package's model modules fills the registry.
    from drmoe_repro import models  # noqa: F401

    if name not in MODELS:
        raise KeyError(f"model {name!r} is not registered; registered models: {', '.join(sorted(MODELS))}")
    return MODELS[name](model_cfg, data)


def is_registered(name: str) -> bool:
    from drmoe_repro import models  # noqa: F401

    return name in MODELS
