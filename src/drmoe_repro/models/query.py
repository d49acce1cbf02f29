"""DR-MoE's transformer query trunk (paper §3.1-3.3), and the trunk alone with a per-label head.

image -> backbone feature map F -> 1x1 projection to D -> + 2-D sine positional encoding -> transformer encoder
(N_enc layers) -> decoder whose queries are L learnable label tokens (N_dec layers) -> h_i for every label i.

`query_trunk` (the trunk and one linear classifier per label) is DR-MoE without its experts and gates: an ablation
of this suite, not Query2Label (which is models/q2l.py, as its authors released it).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from drmoe_repro.models.backbone import build_backbone
from drmoe_repro.models.registry import DataInfo, register_model


def sine_positional_encoding(height: int, width: int, dim: int, device=None) -> torch.Tensor:
    """DETR-style 2-D sine encoding: half the channels encode y, half x. Returns [height*width, dim]."""
    if dim % 4:
        raise ValueError(f"the positional encoding needs d_model divisible by 4, got {dim}")
    quarter = dim // 4
    freqs = 1.0 / (10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter))  # [D/4]
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * 2 * math.pi  # [H]
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * 2 * math.pi  # [W]
    y_enc = torch.cat([torch.sin(ys[:, None] * freqs), torch.cos(ys[:, None] * freqs)], dim=1)  # [H, D/2]
    x_enc = torch.cat([torch.sin(xs[:, None] * freqs), torch.cos(xs[:, None] * freqs)], dim=1)  # [W, D/2]
    grid = torch.cat(
        [y_enc[:, None, :].expand(height, width, dim // 2), x_enc[None, :, :].expand(height, width, dim // 2)],
        dim=2,
    )  # [H, W, D]
    return grid.reshape(height * width, dim)


class QueryTrunk(nn.Module):
    """Backbone + transformer encoder/decoder with one learnable query per label; returns h [batch, L, D]."""

    def __init__(self, cfg: dict, num_labels: int, backbone_weights: dict | None = None):
        super().__init__()
        d_model = cfg["d_model"]
        self.backbone = build_backbone(cfg, backbone_weights)
        self.input_proj = nn.Conv2d(self.backbone.num_channels, d_model, kernel_size=1)
        self.encoder = None
        if cfg["n_enc"] > 0:
            enc_layer = nn.TransformerEncoderLayer(
                d_model, cfg["n_heads"], cfg["ffn_dim"], cfg["dropout"], batch_first=True
            )
            self.encoder = nn.TransformerEncoder(enc_layer, cfg["n_enc"], enable_nested_tensor=False)
        dec_layer = nn.TransformerDecoderLayer(d_model, cfg["n_heads"], cfg["ffn_dim"], cfg["dropout"], batch_first=True)
        self.decoder = nn.TransformerDecoder(dec_layer, cfg["n_dec"])
        # §3.2: "Each token t_i corresponds to a specific label and is initialized randomly."
        self.label_queries = nn.Parameter(torch.randn(num_labels, d_model) * 0.02)  # [L, D]
        self.d_model = d_model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.input_proj(self.backbone(images))  # [B, D, H', W']
        batch, dim, height, width = features.shape
        tokens = features.flatten(2).transpose(1, 2)  # [B, H'W', D]
        tokens = tokens + sine_positional_encoding(height, width, dim, features.device)[None]  # [B, H'W', D]
        memory = self.encoder(tokens) if self.encoder is not None else tokens  # [B, H'W', D]
        queries = self.label_queries[None].expand(batch, -1, -1)  # [B, L, D]
        return self.decoder(queries, memory)  # [B, L, D]: h_i of eq 2


class LabelwiseLinear(nn.Module):
    """One linear classifier per label: logit_i = <W_i, x_i> + b_i (Query2Label's head)."""

    def __init__(self, num_labels: int, dim: int):
        super().__init__()
        bound = 1 / math.sqrt(dim)
        self.weight = nn.Parameter(torch.empty(num_labels, dim).uniform_(-bound, bound))  # [L, D]
        self.bias = nn.Parameter(torch.empty(num_labels).uniform_(-bound, bound))  # [L]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).sum(-1) + self.bias  # [B, L, D] -> [B, L]


class QueryTrunkClassifier(nn.Module):
    def __init__(self, cfg: dict, num_labels: int, backbone_weights: dict | None = None):
        super().__init__()
        self.trunk = QueryTrunk(cfg, num_labels, backbone_weights)
        self.head = LabelwiseLinear(num_labels, cfg["d_model"])

    def forward(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> dict:
        return {"logits": self.head(self.trunk(images))}  # [B, L]


@register_model
def query_trunk(cfg: dict, data: DataInfo) -> nn.Module:
    """DR-MoE ablation "query trunk, no experts": DR-MoE's query trunk and a per-label linear head."""
    return QueryTrunkClassifier(cfg, data.num_labels, data.backbone_weights)
