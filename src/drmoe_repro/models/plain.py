"""The plain reference: backbone, global pooling, one linear layer per label (no label queries, no experts)."""

from __future__ import annotations

import torch
import torch.nn as nn

from drmoe_repro.models.backbone import build_backbone, global_avg_pool
from drmoe_repro.models.registry import DataInfo, register_model


class PlainClassifier(nn.Module):
    def __init__(self, cfg: dict, num_labels: int, backbone_weights: dict | None = None):
        super().__init__()
        self.backbone = build_backbone(cfg, backbone_weights)
        self.head = nn.Linear(self.backbone.num_channels, num_labels)

    def forward(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> dict:
        features = global_avg_pool(self.backbone(images))  # [B, C]
        return {"logits": self.head(features)}  # [B, L]


@register_model
def plain(cfg: dict, data: DataInfo) -> nn.Module:
    """Backbone + global average pooling + linear head: what the label-query models must beat."""
    return PlainClassifier(cfg, data.num_labels, data.backbone_weights)
