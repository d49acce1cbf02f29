"""How a run trains: optimizer, learning-rate schedule, gradient clipping, loss, weight EMA and augmentation.

`train.recipe: paper` (the default) trains every system as the DR-MoE paper's §4.2 says: Adam with the config's lr
and (coupled) weight decay, the lr multiplied by lr_gamma at the configured fractions of the epochs (30 and 40 of
50), no clipping, the BCE of eq 10, the paper's augmentations. `train.recipe: published` trains each baseline with
what its authors published. Where `train.published_schedule` is true (the paper profile), config.resolve_run also
writes their epochs, lr milestones, batch size and drop_last into the run's config (config.PUBLISHED_SCHEDULES);
elsewhere (the demo) those stay the profile's:

  ml_gcn   SGD lr 0.1, backbone lr x0.1, momentum 0.9, weight decay 1e-4 on every parameter, gradient norm clipped
           at 10, x0.1 at the milestones (the released demo: 20 epochs, none), batch 16; MultiScaleCrop + flip
           (data/transforms.py)
  add_gcn  SGD lr 0.05, backbone lr x0.1, momentum 0.9, weight decay 1e-4, gradient norm clipped at 10, x0.1 at
           the milestones (the released code: after epochs 31 and 41 of 50), batch 16, drop_last; Resize(S + 64) +
           MultiScaleCrop + flip
  q2l      as SlongLiu/query2labels trains it (Q2L_PUBLISHED_RECIPE below, each value with its source): AdamW lr 1e-4,
           weight decay 1e-2 on every trainable parameter, OneCycle stepped after every optimiser step, the
           asymmetric loss (engine/losses.py), a weight EMA of decay 0.9997 whose weights are the ones saved and
           evaluated (engine/ema.py), Resize + Cutout + RandAugment (data/transforms.py), 80 epochs, batch 64,
           drop_last. The profile's precision (bf16 autocast on the paper profile) stands in for the code's fp16 with
           a gradient scaler; its early stopping and its choice between the model and the EMA by test mAP are not
           done (paper/ambiguities.yaml: q2l-published-gaps).
  cnn_rnn  no official code and no published optimizer: the paper's recipe
  drmoe, hsq_static, query_trunk, plain and anything else: the paper's recipe (it is theirs)

`build_recipe` returns a `Recipe`. `train.fused_optimizer: true` builds each optimizer with torch's fused
implementation (one kernel for all parameters): the same update rule, rounded differently in the last bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from drmoe_repro.engine.ema import Q2L_EMA_DECAY

BACKBONE_LR_FACTOR = 0.1  # ML-GCN's and ADD-GCN's `lrp`: the pretrained layers learn 10x slower


@dataclass
class Recipe:
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scheduler_per_step: bool = False  # step the scheduler after every optimiser step (else after every epoch)
    grad_clip: float | None = None  # max gradient norm
    loss: str = "bce"  # "bce": eq 10 (+ the model's auxiliary term); "asl": Query2Label's asymmetric loss
    ema_decay: float | None = None  # a weight EMA whose weights are saved and evaluated
    augment: str = "paper"  # "paper": the profile's input.augment; else "q2l", "mlgcn", "addgcn": the authors' own


def milestone_epochs(train_cfg: dict) -> list[int]:
    """The epochs after which the lr drops: the config's lr_milestones (fractions) of its epochs."""
    return [int(round(f * train_cfg["epochs"])) for f in train_cfg["lr_milestones"]]


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


def implementation(train_cfg: dict) -> dict:
    """Keyword arguments that pick torch's fused optimizer; none (torch's own default choice) otherwise."""
    return {"fused": True} if train_cfg.get("fused_optimizer", False) else {}


def paper_recipe(model: nn.Module, train_cfg: dict, steps_per_epoch: int) -> Recipe:
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"],
                                 **implementation(train_cfg))
    milestones = milestone_epochs(train_cfg)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=train_cfg["lr_gamma"])
    return Recipe(optimizer, scheduler)


def _sgd_with_slow_backbone(model: nn.Module, lr: float, train_cfg: dict, augment: str) -> Recipe:
    """SGD with the backbone at lr x 0.1, x0.1 at the config's milestones (under published_schedule, the authors')."""
    groups = backbone_groups(model, lr, BACKBONE_LR_FACTOR)
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=1e-4, **implementation(train_cfg))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestone_epochs(train_cfg), gamma=0.1)
    return Recipe(optimizer, scheduler, grad_clip=10.0, augment=augment)


def mlgcn_recipe(model: nn.Module, train_cfg: dict, steps_per_epoch: int) -> Recipe:
    return _sgd_with_slow_backbone(model, 0.1, train_cfg, augment="mlgcn")


def addgcn_recipe(model: nn.Module, train_cfg: dict, steps_per_epoch: int) -> Recipe:
    return _sgd_with_slow_backbone(model, 0.05, train_cfg, augment="addgcn")


# The published recipe of Query2Label (SlongLiu/query2labels at 55eb050): each value and where the code says it.
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




def q2l_published_recipe(model: nn.Module, train_cfg: dict, steps_per_epoch: int) -> Recipe:
    """AdamW and a OneCycleLR stepped after EVERY optimiser step, as main_mlc.py builds them; ASL, EMA, Q2L's transform.

    Only parameters with requires_grad enter the optimizer (the frozen stem and layer1 do not), all with weight
    decay. The number of epochs comes from train_cfg["epochs"] (the published run: 80); `steps_per_epoch` is the
    number of optimiser steps per epoch. Stepping past epochs * steps_per_epoch raises, as OneCycleLR does.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=Q2L_LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=Q2L_WEIGHT_DECAY,
                                  **implementation(train_cfg))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=Q2L_LR, steps_per_epoch=steps_per_epoch,
                                                    epochs=train_cfg["epochs"], pct_start=Q2L_PCT_START)
    return Recipe(optimizer, scheduler, scheduler_per_step=True, loss="asl", ema_decay=Q2L_EMA_DECAY, augment="q2l")


PUBLISHED = {"ml_gcn": mlgcn_recipe, "add_gcn": addgcn_recipe, "q2l": q2l_published_recipe}


def build_recipe(model: nn.Module, model_name: str, train_cfg: dict, steps_per_epoch: int) -> Recipe:
    """The `Recipe` of `model_name` under `train_cfg["recipe"]`; `steps_per_epoch` counts optimiser steps."""
    recipe = train_cfg.get("recipe", "paper")
    if recipe == "paper":
        return paper_recipe(model, train_cfg, steps_per_epoch)
    if recipe == "published":
        return PUBLISHED.get(model_name, paper_recipe)(model, train_cfg, steps_per_epoch)
    raise ValueError(f"train.recipe {recipe!r} is not known; expected 'paper' or 'published'")
