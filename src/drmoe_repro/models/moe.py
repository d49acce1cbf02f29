"""Shared and task-specific experts with a gate per label (paper §3.4-3.9): DR-MoE and HSQ-static.

Every label's experts and gate run as one batched tensor operation (einsum over stacked weights), never as a Python
loop over labels. Shapes: B batch, L labels, D model width, N_s shared experts, E = N_s + 1 experts per label,
H expert width, G gate width.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from drmoe_repro.models.query import LabelwiseLinear, QueryTrunk
from drmoe_repro.models.registry import DataInfo, register_model


def _stacked(count: int, fan_in: int, fan_out: int) -> tuple[nn.Parameter, nn.Parameter]:
    """`count` independent linear layers as one [count, fan_in, fan_out] tensor, initialised like nn.Linear."""
    bound = 1 / math.sqrt(fan_in)
    weight = nn.Parameter(torch.empty(count, fan_in, fan_out).uniform_(-bound, bound))
    bias = nn.Parameter(torch.empty(count, fan_out).uniform_(-bound, bound))
    return weight, bias


class ExpertBank(nn.Module):
    """N_s shared experts (applied to every label) and one task expert per label.

    expert_layers=1 is eqs 3-4 as printed, E(x) = ReLU(xW + b) with W: D -> H. expert_layers=2 reads §3.11's
    "FFN with hidden dimension H" as D -> H -> D (ReLU between); the output width is then D.
    """

    def __init__(self, num_labels: int, d_model: int, n_shared: int, hidden: int, layers: int):
        super().__init__()
        self.layers = layers
        self.shared_w1, self.shared_b1 = _stacked(n_shared, d_model, hidden)  # [N_s, D, H], [N_s, H]
        self.task_w1, self.task_b1 = _stacked(num_labels, d_model, hidden)  # [L, D, H], [L, H]
        if layers == 2:
            self.shared_w2, self.shared_b2 = _stacked(n_shared, hidden, d_model)  # [N_s, H, D]
            self.task_w2, self.task_b2 = _stacked(num_labels, hidden, d_model)  # [L, H, D]
        self.out_dim = hidden if layers == 1 else d_model

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h [B, L, D] -> expert outputs [B, L, E, out] with the N_s shared experts first, the task expert last."""
        shared = F.relu(torch.einsum("bld,sdh->blsh", h, self.shared_w1) + self.shared_b1)  # [B, L, N_s, H] eq 5
        task = F.relu(torch.einsum("bld,ldh->blh", h, self.task_w1) + self.task_b1)  # [B, L, H] eq 6
        if self.layers == 2:
            shared = torch.einsum("blsh,shd->blsd", shared, self.shared_w2) + self.shared_b2  # [B, L, N_s, D]
            task = torch.einsum("blh,lhd->bld", task, self.task_w2) + self.task_b2  # [B, L, D]
        return torch.cat([shared, task[:, :, None, :]], dim=2)  # [B, L, E, out]


class DynamicGates(nn.Module):
    """G_i: one MLP per label, D -> G -> E with ReLU, softmax over the E experts (eq 7). Input-dependent."""

    def __init__(self, num_labels: int, d_model: int, hidden: int, num_experts: int):
        super().__init__()
        self.w1, self.b1 = _stacked(num_labels, d_model, hidden)  # [L, D, G], [L, G]
        self.w2, self.b2 = _stacked(num_labels, hidden, num_experts)  # [L, G, E], [L, E]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(torch.einsum("bld,ldg->blg", h, self.w1) + self.b1)  # [B, L, G]
        return torch.softmax(torch.einsum("blg,lge->ble", hidden, self.w2) + self.b2, dim=-1)  # [B, L, E]


class StaticGates(nn.Module):
    """HSQ as the DR-MoE paper describes it: a learned softmax weight vector per label, the same for every image."""

    def __init__(self, num_labels: int, num_experts: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_labels, num_experts))  # [L, E]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits, dim=-1)[None].expand(h.shape[0], -1, -1)  # [B, L, E]


def gate_entropy(gates: torch.Tensor) -> torch.Tensor:
    """Mean over images and labels of H(w_i) = -sum_k w_ik log w_ik; gates [B, L, E] -> scalar."""
    return -(gates * torch.log(gates.clamp_min(1e-12))).sum(-1).mean()


class MixtureOfExpertsClassifier(nn.Module):
    """Query trunk -> experts -> gates -> fused o_i (eq 8) -> classifier (eq 9); entropy term of eq 11 as aux_loss."""

    def __init__(self, cfg: dict, num_labels: int, gating: str, backbone_weights: dict | None = None):
        super().__init__()
        num_experts = cfg["n_shared"] + 1
        self.trunk = QueryTrunk(cfg, num_labels, backbone_weights)
        self.experts = ExpertBank(num_labels, cfg["d_model"], cfg["n_shared"], cfg["expert_hidden"], cfg["expert_layers"])
        if gating == "dynamic":
            self.gates = DynamicGates(num_labels, cfg["d_model"], cfg["gate_hidden"], num_experts)
        else:
            self.gates = StaticGates(num_labels, num_experts)
        # Eq 9 prints one W_c, b_c for all labels; Query2Label's per-label head is the alternative.
        if cfg["classifier"] == "shared":
            self.classifier = nn.Linear(self.experts.out_dim, 1)
        else:
            self.classifier = LabelwiseLinear(num_labels, self.experts.out_dim)
        self.shared_classifier = cfg["classifier"] == "shared"
        # Eq 11 as printed adds +lambda*H(w) to the loss, which sharpens the gates; §3.9 says the term is there to
        # keep them from becoming overly confident, which needs -lambda*H(w). "equation" follows the formula.
        sign = 1.0 if cfg["entropy_sign"] == "equation" else -1.0
        self.entropy_weight = sign * cfg["entropy_lambda"]

    def forward(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> dict:
        h = self.trunk(images)  # [B, L, D]
        expert_out = self.experts(h)  # [B, L, E, H]
        gates = self.gates(h)  # [B, L, E]
        fused = (gates[..., None] * expert_out).sum(dim=2)  # [B, L, H]  eq 8
        logits = self.classifier(fused).squeeze(-1) if self.shared_classifier else self.classifier(fused)  # [B, L]
        return {"logits": logits, "gates": gates, "aux_loss": self.entropy_weight * gate_entropy(gates)}


@register_model
def drmoe(cfg: dict, data: DataInfo) -> nn.Module:
    """DR-MoE: an input-dependent gate per label over N_s shared experts and the label's own expert."""
    return MixtureOfExpertsClassifier(cfg, data.num_labels, "dynamic", data.backbone_weights)


@register_model
def hsq_static(cfg: dict, data: DataInfo) -> nn.Module:
    """HSQ as the DR-MoE paper characterises it: DR-MoE with input-independent, learned gate weights per label."""
    return MixtureOfExpertsClassifier(cfg, data.num_labels, "static", data.backbone_weights)
