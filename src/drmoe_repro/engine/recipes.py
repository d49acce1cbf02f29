"""Optimizer, learning-rate schedule and gradient clipping of a run: the paper's common recipe or a baseline's own.

`train.recipe: paper` (the default) trains every system as the DR-MoE paper's §4.2 says: Adam with the config's lr
and (coupled) weight decay, the lr multiplied by lr_gamma at the configured fractions of the epochs (30 and 40 of
50), no clipping. `train.recipe: published` trains each baseline with the optimizer its authors published
(peer-conventions.md); only the number of epochs still comes from the config, the lr and weight decay are the
recipe's own:

  ml_gcn   SGD lr 0.1, backbone lr x0.1, momentum 0.9, weight decay 1e-4, gradient norm clipped at 10; the decay
           x0.1 at the config's lr_milestones (peer-conventions.md records no ML-GCN schedule)
  add_gcn  SGD lr 0.05, backbone lr x0.1, momentum 0.9, weight decay 1e-4, gradient norm clipped at 10, x0.1 at
           epochs 30 and 40 of 50 (fractions 0.6 and 0.8 of the configured epochs)
  q2l      AdamW lr 1e-4, weight decay 1e-2, OneCycle (pct_start 0.2, div_factor 25, final_div_factor 1e4).
           The engine steps the scheduler once per epoch, so OneCycle's per-step curve is approximated by one lr
           per epoch: the curve's value at the middle of that epoch. ASL loss, EMA and AMP are not part of it.
  cnn_rnn  no official code and no optimizer in peer-conventions.md: the paper's recipe
  drmoe, hsq_static, plain and anything else: the paper's recipe (it is theirs)

`build_optimizer` returns (optimizer, scheduler, grad_clip): the scheduler is stepped once after every epoch,
`grad_clip` is a max gradient norm or None. `train.fused_optimizer: true` builds each optimizer with torch's fused
implementation (one kernel for all parameters): the same update rule, rounded differently in the last bits.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

BACKBONE_LR_FACTOR = 0.1  # ML-GCN's and ADD-GCN's `lrp`: the pretrained layers learn 10x slower


def milestone_epochs(train_cfg: dict, fractions: list[float] | None = None) -> list[int]:
    fractions = train_cfg["lr_milestones"] if fractions is None else fractions
    return [int(round(f * train_cfg["epochs"])) for f in fractions]


def is_backbone(parameter_name: str) -> bool:
    return parameter_name.startswith("backbone.") or ".backbone." in parameter_name


def backbone_groups(model: nn.Module, lr: float, factor: float) -> list[dict]:
    """Two parameter groups: everything else at lr (first, so that train.json's "lr" is the recipe's), the backbone's
    at lr * factor."""
    backbone, head = [], []
    for name, param in model.named_parameters():
        (backbone if is_backbone(name) else head).append(param)
    if not backbone:
        raise ValueError("the model has no parameters under a `backbone` module; the recipe needs one")
    return [{"params": head, "lr": lr}, {"params": backbone, "lr": lr * factor}]


def one_cycle_factor(position: float, pct_start: float = 0.2, div_factor: float = 25.0,
                     final_div_factor: float = 1e4) -> float:
    """OneCycleLR's cosine curve (as a fraction of max_lr) at `position` in [0, 1] of the run."""

    def anneal(start: float, end: float, x: float) -> float:
        return end + (start - end) * (1 + math.cos(math.pi * x)) / 2

    initial = 1.0 / div_factor
    if position <= pct_start:
        return anneal(initial, 1.0, position / pct_start)
    return anneal(1.0, initial / final_div_factor, (position - pct_start) / (1 - pct_start))


class EpochOneCycle:
    """LambdaLR factor for epoch e of `epochs`: OneCycle's value at the epoch's midpoint (picklable for resumes)."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def __call__(self, epoch: int) -> float:
        return one_cycle_factor(min((epoch + 0.5) / self.epochs, 1.0))


def implementation(train_cfg: dict) -> dict:
    """Keyword arguments that pick torch's fused optimizer; none (torch's own default choice) otherwise."""
    return {"fused": True} if train_cfg.get("fused_optimizer", False) else {}


def paper_recipe(model: nn.Module, train_cfg: dict):
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"],
                                 **implementation(train_cfg))
    milestones = milestone_epochs(train_cfg)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=train_cfg["lr_gamma"])
    return optimizer, scheduler, None


def _sgd_with_slow_backbone(model: nn.Module, lr: float, milestones: list[int], train_cfg: dict):
    groups = backbone_groups(model, lr, BACKBONE_LR_FACTOR)
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=1e-4, **implementation(train_cfg))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    return optimizer, scheduler, 10.0


def mlgcn_recipe(model: nn.Module, train_cfg: dict):
    return _sgd_with_slow_backbone(model, 0.1, milestone_epochs(train_cfg), train_cfg)


def addgcn_recipe(model: nn.Module, train_cfg: dict):
    return _sgd_with_slow_backbone(model, 0.05, milestone_epochs(train_cfg, [0.6, 0.8]), train_cfg)


def q2l_recipe(model: nn.Module, train_cfg: dict):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-2, **implementation(train_cfg))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, EpochOneCycle(train_cfg["epochs"]))
    return optimizer, scheduler, None


PUBLISHED = {"ml_gcn": mlgcn_recipe, "add_gcn": addgcn_recipe, "q2l": q2l_recipe}


def build_optimizer(model: nn.Module, model_name: str, train_cfg: dict):
    """(optimizer, per-epoch scheduler, max gradient norm or None) for `model_name` under `train_cfg["recipe"]`."""
    recipe = train_cfg.get("recipe", "paper")
    if recipe == "paper":
        return paper_recipe(model, train_cfg)
    if recipe == "published":
        return PUBLISHED.get(model_name, paper_recipe)(model, train_cfg)
    raise ValueError(f"train.recipe {recipe!r} is not known; expected 'paper' or 'published'")
