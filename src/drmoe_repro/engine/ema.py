"""Exponential moving average of a model's weights, as Query2Label's `ModelEma` (main_mlc.py:609-634).

Q2L keeps a deep copy of the model in eval mode and, after every optimiser step (main_mlc.py:494-495, from epoch
`--ema-epoch` = 0 on), sets every entry of its state dict -- parameters AND buffers, in the state dict's own dtype
(float32 here: AMP autocasts activations, not weights) -- to

    ema = decay * ema + (1 - decay) * model,    decay = 0.9997 (main_mlc.py:96)

It evaluates both the model and the copy every epoch (main_mlc.py:358-359) and keeps whichever scores the higher
mAP (:387-391). Integer buffers (BatchNorm's num_batches_tracked, only in the demo's trunk) are copied here
instead: Q2L's formula would truncate them back to their old value when written into an integer tensor.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

Q2L_EMA_DECAY = 0.9997  # main_mlc.py:96


def unwrap(model: nn.Module) -> nn.Module:
    """The module under DistributedDataParallel (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


class ModelEma(nn.Module):
    """`self.module` is the averaged copy: evaluate it (and the model itself) to pick what Q2L would report."""

    def __init__(self, model: nn.Module, decay: float = Q2L_EMA_DECAY):
        super().__init__()
        self.module = copy.deepcopy(unwrap(model)).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """ema = decay * ema + (1 - decay) * w for every floating-point state entry; integer buffers copied."""
        current = unwrap(model).state_dict()
        for name, ema_value in self.module.state_dict().items():
            value = current[name].to(ema_value.device)
            if ema_value.is_floating_point():
                ema_value.mul_(self.decay).add_(value.to(ema_value.dtype), alpha=1.0 - self.decay)
            else:
                ema_value.copy_(value)

    @torch.no_grad()
    def set(self, model: nn.Module) -> None:
        """Copy the model's weights (Q2L re-creates its EMA this way at --ema-epoch, main_mlc.py:341-342)."""
        self.module.load_state_dict(unwrap(model).state_dict())
