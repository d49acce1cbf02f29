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


# ----------------------------------------------------------------------------------------------------------------
# Query2Label's own recipe, per iteration (for models/q2l.py; the `q2l` entry above is the per-epoch approximation)
# ----------------------------------------------------------------------------------------------------------------

# Every value with its source in SlongLiu/query2labels (HEAD 55eb050). README.md:49-60 is the published R101-448
# COCO command; flags it does not set take main_mlc.py's defaults.
Q2L_PUBLISHED_RECIPE = {
    "image_size": (448, "README.md:56 --img_size 448"),
    "backbone": ("resnet101, torchvision ImageNet weights (pretrained=True hard-coded for ResNets)",
                 "README.md:51; lib/models/backbone.py:112-115"),
    "transformer": ({"hidden": 2048, "ffn": 8192, "enc": 1, "dec": 2, "heads": 4, "dropout": 0.1, "pre_norm": False},
                    "README.md:58-59; main_mlc.py:137 (dropout), :141 (--pre_norm off)"),
    "epochs": (80, "README.md:55 --epochs 80"),
    "early_stop": ("stop once epoch - max(best epoch, best regular epoch) > 8 and the last EMA mAP is below the "
                   "best EMA mAP", "README.md:60 --early-stop; main_mlc.py:423-431"),
    "batch_size": ("64 on one GPU, or 128 in total on 2 GPUs (64 each)", "README.md:51, :66; main_mlc.py:77-80"),
    "drop_last": (True, "main_mlc.py:301"),
    "optimizer": ("AdamW over every parameter with requires_grad, one group: weight decay on biases and norms too, "
                  "betas (0.9, 0.999), eps 1e-8", "README.md:55 --optim AdamW; main_mlc.py:242-250"),
    "lr": (1e-4, "README.md:55 --lr 1e-4; it is OneCycleLR's max_lr (main_mlc.py:328), which overrides the "
                 "optimizer's lr_mult * lr (main_mlc.py:241, :248)"),
    "weight_decay": (1e-2, "README.md:56 --weight-decay 1e-2"),
    "scheduler": ("OneCycleLR(max_lr=lr, steps_per_epoch, epochs, pct_start=0.2), torch defaults otherwise: cosine, "
                  "div_factor 25, final_div_factor 1e4, cycle_momentum (AdamW beta1 0.95 -> 0.85 -> 0.95); "
                  "stepped after every optimiser step", "main_mlc.py:328, :492"),
    "grad_clip": (None, "main_mlc.py:487-490: none"),
    "loss": ("AsymmetricLossOptimized: gamma_neg 2, gamma_pos 0, focusing weight without gradient (--dtgfl), "
             "clip 0.0, eps 1e-5, sum / (batch * labels) * 1000",
             "README.md:54; main_mlc.py:54-65, :233-238; lib/models/aslloss.py:55-115 (engine/losses.py)"),
    "loss_clip_history": (0.05, "before commit b72e814 (2021-11-24) the criterion took aslloss.py:59's clip=0.05"),
    "ema": ("decay 0.9997 from epoch 0 on, updated after every step, over parameters and buffers; the model and "
            "the EMA copy are both validated each epoch", "main_mlc.py:96-99, :229, :341-342, :358-359, :494-495"),
    "amp": ("float16 autocast (forward and loss) with a GradScaler re-created every epoch",
            "README.md:60 --amp; main_mlc.py:443, :476-490"),
    "train_transform": ("Resize((448, 448)) -> SLCutoutPIL(n_holes=1, length=-1) -> RandAugment() of the "
                        "`randaugment` package -> ToTensor -> Normalize(ImageNet mean/std); --cut_fact 0.5 never "
                        "reaches the cutout, so with length -1 it paints a 3x3 random-colour patch "
                        "(data/transforms.py)",
                        "lib/dataset/get_dataset.py:8-28; lib/utils/cutout.py:6-34; main_mlc.py:115-125"),
    "eval_transform": ("Resize((448, 448)) -> ToTensor -> Normalize(ImageNet mean/std)", "get_dataset.py:30-33"),
    "model_selection": ("the best validation (COCO val2014) mAP over epochs of the model or its EMA copy",
                        "main_mlc.py:380-395"),
}
Q2L_LR = 1e-4
Q2L_WEIGHT_DECAY = 1e-2
Q2L_PCT_START = 0.2


def q2l_published_recipe(model: nn.Module, train_cfg: dict, steps_per_epoch: int):
    """(AdamW, OneCycleLR to step after EVERY optimiser step, no gradient clipping) as main_mlc.py builds them.

    Only parameters with requires_grad enter the optimizer (the frozen stem and layer1 do not), all with weight
    decay. The number of epochs comes from train_cfg["epochs"] (the published run: 80); `steps_per_epoch` is the
    number of optimiser steps per epoch (Q2L: len(train_loader) with drop_last). Stepping past epochs *
    steps_per_epoch raises, as OneCycleLR does.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=Q2L_LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=Q2L_WEIGHT_DECAY,
                                  **implementation(train_cfg))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=Q2L_LR, steps_per_epoch=steps_per_epoch,
                                                    epochs=train_cfg["epochs"], pct_start=Q2L_PCT_START)
    return optimizer, scheduler, None
