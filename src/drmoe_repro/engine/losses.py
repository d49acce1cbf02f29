"""The asymmetric loss (ASL, Ridnik et al. 2021) as Query2Label trains with it.

Q2L's main_mlc.py:233-238 builds `AsymmetricLossOptimized` (lib/models/aslloss.py:55-115), not ASL's plain
`AsymmetricLoss` (aslloss.py:8-53, the one in Alibaba-MIIL/ASL). Per element, with p = sigmoid(x):

    p_neg = min(1 - p + clip, 1)                                      (aslloss.py:86-87; clip 0 disables it)
    loss  = -[ y log(max(p, eps)) + (1 - y) log(max(p_neg, eps)) ]    (:90-91; eps clamps from below only)
          * (1 - p)^gamma_pos      for y = 1                          (:107-111; 1 - p_t with p_t = p or p_neg)
          * (1 - p_neg)^gamma_neg  for y = 0
    disable_torch_grad_focal_loss: the focusing weight is computed under no_grad (:95-105), a constant in backward.

Reduction (aslloss.py:112-113): sum / batch / num_labels * 1000, i.e. 1000 x the mean over elements -- not ASL's
plain sum. Adam(W) is nearly invariant to the loss scale, so the factor matters for logged values, not the updates.

Published settings (README.md:54-60 command + main_mlc.py:54-65 defaults): gamma_neg 2, gamma_pos 0, --dtgfl
(focusing weight without gradient), eps 1e-5, clip 0.0 (--loss_clip default, main_mlc.py:64). Before commit b72e814
(2021-11-24, "loss_clip") main_mlc.py did not pass clip, so the class default 0.05 applied (aslloss.py:59): the
authors' first released script trained with clip 0.05. Which one their checkpoints used is not recorded.

Q2L's COCO targets are float64 (lib/dataset/cocodataset.py:29-30), so its loss is evaluated in float64; here the
loss runs in the logits' dtype, which the caller should make float32 (train.py passes `logits.float()`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

# main_mlc.py defaults with the README command's flags (--gamma_pos 0 --gamma_neg 2 --dtgfl).
Q2L_ASL = {"gamma_neg": 2.0, "gamma_pos": 0.0, "clip": 0.0, "eps": 1e-5, "disable_torch_grad_focal_loss": True}
LOSS_SCALE = 1000.0  # aslloss.py:113


def _elementwise(logits, targets, gamma_neg, gamma_pos, clip, eps, disable_torch_grad_focal_loss):
    """Per-element ASL [B, L] for targets in {0, 1} (AsymmetricLossOptimized before its reduction)."""
    anti = 1 - targets  # [B, L]
    p = torch.sigmoid(logits)  # [B, L]
    p_neg = 1.0 - p  # [B, L]
    if clip is not None and clip > 0:
        p_neg = (p_neg + clip).clamp(max=1)  # [B, L] probability margin for negatives
    loss = targets * torch.log(p.clamp(min=eps)) + anti * torch.log(p_neg.clamp(min=eps))  # [B, L]
    if gamma_neg > 0 or gamma_pos > 0:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not disable_torch_grad_focal_loss):
            p_t = p * targets + p_neg * anti  # [B, L]
            weight = torch.pow(1 - p_t, gamma_pos * targets + gamma_neg * anti)  # [B, L]
        loss = loss * weight  # [B, L]
    return -loss  # [B, L]


def asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor, *, gamma_neg: float = 2.0, gamma_pos: float = 0.0,
                    clip: float = 0.0, eps: float = 1e-5, disable_torch_grad_focal_loss: bool = True,
                    reduction: str = "q2l") -> torch.Tensor:
    """ASL over [B, L] logits and {0, 1} targets. reduction "q2l": sum / (B * L) * 1000 (Q2L); "sum": ASL's."""
    losses = _elementwise(logits, targets.to(logits.dtype), gamma_neg, gamma_pos, clip, eps,
                          disable_torch_grad_focal_loss)  # [B, L]
    if reduction == "sum":
        return losses.sum()
    if reduction == "q2l":
        return losses.sum() / targets.shape[0] / targets.shape[1] * LOSS_SCALE
    raise ValueError(f"reduction {reduction!r} is not known; expected 'q2l' or 'sum'")


def masked_asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor, *, gamma_neg: float = 2.0,
                           gamma_pos: float = 0.0, clip: float = 0.0, eps: float = 1e-5,
                           disable_torch_grad_focal_loss: bool = True, reduction: str = "q2l") -> torch.Tensor:
    """ASL with the suite's ignored labels (targets == -1) left out. "q2l" divides by the number of labels that
    are not ignored (B * L when none is), times 1000 -- Q2L's value whenever nothing is ignored; "sum" sums them."""
    mask = (targets >= 0).to(logits.dtype)  # [B, L]
    losses = _elementwise(logits, targets.clamp(min=0).to(logits.dtype), gamma_neg, gamma_pos, clip, eps,
                          disable_torch_grad_focal_loss) * mask  # [B, L]
    if reduction == "sum":
        return losses.sum()
    if reduction == "q2l":
        return losses.sum() / mask.sum().clamp_min(1.0) * LOSS_SCALE
    raise ValueError(f"reduction {reduction!r} is not known; expected 'q2l' or 'sum'")


class AsymmetricLoss(nn.Module):
    """Module form of `masked_asymmetric_loss`, defaulting to Q2L's published settings (Q2L_ASL)."""

    def __init__(self, gamma_neg: float = 2.0, gamma_pos: float = 0.0, clip: float = 0.0, eps: float = 1e-5,
                 disable_torch_grad_focal_loss: bool = True, reduction: str = "q2l"):
        super().__init__()
        self.options = {"gamma_neg": gamma_neg, "gamma_pos": gamma_pos, "clip": clip, "eps": eps,
                        "disable_torch_grad_focal_loss": disable_torch_grad_focal_loss, "reduction": reduction}

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return masked_asymmetric_loss(logits, targets, **self.options)
