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

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from drmoe_repro.model_keys import MODEL_KEYS

MODELS: dict[str, Callable[..., nn.Module]] = {}


@dataclass(frozen=True)
class DataInfo:
    label_names: tuple[str, ...]
    train_targets: np.ndarray  # [N, L] int8 in {1, 0, -1}: label statistics for graph and ordering models
    # The ImageNet state dict of the backbone (model.pretrained: true), loaded by the engine from the fetched asset.
    backbone_weights: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    # Label word vectors [L, 300] (model.label_embedding: glove), loaded by the engine from the fetched GloVe asset.
    label_vectors: torch.Tensor | None = field(default=None, repr=False)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def register_model(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a builder under its function name (its config keys are in drmoe_repro.model_keys)."""
    name = builder.__name__
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    if name not in MODEL_KEYS:
        raise ValueError(f"model {name!r} has no entry in drmoe_repro/model_keys.py: list the model: keys it reads "
                         "there")
    MODELS[name] = builder
    return builder


def build_model(name: str, model_cfg: dict, data: DataInfo, *, init_weights: bool = True) -> nn.Module:
    """The registered model `name`. `init_weights=False` is for a model whose every parameter is replaced next (a
    strict `load_state_dict`) or never read (the meta device): torch.nn.init's functions are skipped while it is
    built, so that the weights are not drawn only to be overwritten (a trained paper-profile Query2Label, 194 M
    parameters, loads in 1.3 s instead of 3.3 s on one CPU thread). Its parameters hold whatever memory they were
    given until then."""
    # Importing the package's model modules fills the registry.
    from drmoe_repro import models  # noqa: F401

    if name not in MODELS:
        raise KeyError(f"model {name!r} is not registered; registered models: {', '.join(sorted(MODELS))}")
    if init_weights:
        return MODELS[name](model_cfg, data)
    with _torch_init_skipped():
        return MODELS[name](model_cfg, data)


# torch.nn.init's in-place initialisers: every torch.nn layer's reset_parameters, and torchvision's models, call them
# through the module (`init.kaiming_uniform_(...)`), so replacing them there reaches every layer.
_TORCH_INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                       "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                       "sparse_")


@contextmanager
def _torch_init_skipped():
    """Inside, torch.nn.init's initialisers return their tensor untouched (restored on the way out, error or not)."""
    saved = {name: getattr(nn.init, name) for name in _TORCH_INITIALISERS}
    try:
        for name in saved:
            setattr(nn.init, name, _untouched)
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def _untouched(tensor: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return tensor
