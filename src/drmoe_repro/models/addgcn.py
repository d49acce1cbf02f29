"""ADD-GCN (Ye et al. 2020): attention-driven dynamic graph convolution over class-specific features.

image -> backbone map X [B, C, H, W]
SAM:  class activation maps M = conv1x1(X) [B, L, H, W];  s_m = max over positions of M [B, L]
      v_c = sum over positions of sigmoid(M_c) * conv1x1(X) -> V [B, L, D]   (one node per class)
D-GCN: static graph (a learned L x L adjacency, from scratch) with a residual, then a dynamic graph built per image
      from each node concatenated with the image's global node feature (1x1 conv = linear, sigmoid) -> Z [B, L, D]
s_r = per-class linear of V + Z [B, L];  logits = (s_m + s_r) / 2, on which the BCE is taken (as the code does).

Nodes are kept node-major ([B, L, D], linear layers over D) instead of the code's channel-major conv1d layout; the
two are the same maps. Config key: `addgcn_dim` (D, 1024 in the paper).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from drmoe_repro.models.backbone import build_backbone
from drmoe_repro.models.registry import DataInfo, register_model


class DynamicGraphConvolution(nn.Module):
    """Static GCN (shared L x L adjacency) + residual, then a per-image GCN whose adjacency the nodes predict."""

    def __init__(self, num_labels: int, dim: int):
        super().__init__()
        bound = 1 / math.sqrt(num_labels)
        self.static_adj = nn.Parameter(torch.empty(num_labels, num_labels).uniform_(-bound, bound))  # [L, L]
        self.static_weight = nn.Linear(dim, dim)
        self.global_proj = nn.Linear(dim, dim)
        self.global_norm = nn.BatchNorm1d(dim)
        self.adjacency_head = nn.Linear(2 * dim, num_labels)
        self.dynamic_weight = nn.Linear(dim, dim)

    def _global_node(self, nodes: torch.Tensor) -> torch.Tensor:
        pooled = self.global_proj(nodes.mean(dim=1))  # [B, D]
        if self.training and pooled.shape[0] == 1:
            # Batch statistics of one image are undefined (e.g. COCO's 82,081 = 32 x 2565 + 1 leaves a last batch of
            # one): normalise that batch with the running statistics instead of failing.
            pooled = F.batch_norm(pooled, self.global_norm.running_mean, self.global_norm.running_var,
                                  self.global_norm.weight, self.global_norm.bias, False, 0.0, self.global_norm.eps)
        else:
            pooled = self.global_norm(pooled)
        return F.leaky_relu(pooled, 0.2)  # [B, D]

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        # Static graph: every image shares the learned adjacency.
        static = F.leaky_relu(torch.einsum("ij,bjd->bid", self.static_adj, nodes), 0.2)  # [B, L, D]
        nodes = nodes + F.leaky_relu(self.static_weight(static), 0.2)  # [B, L, D]
        # Dynamic graph: A[b, j, i] = sigmoid(w_i . [g_b; x_bj] + c_i) is the weight node j gathers from node i.
        glob = self._global_node(nodes)[:, None, :].expand_as(nodes)  # [B, L, D]
        adjacency = torch.sigmoid(self.adjacency_head(torch.cat([glob, nodes], dim=-1)))  # [B, L, L]
        gathered = F.leaky_relu(torch.bmm(adjacency, nodes), 0.2)  # [B, L, L] @ [B, L, D] -> [B, L, D]
        return F.leaky_relu(self.dynamic_weight(gathered), 0.2)  # [B, L, D]


class ADDGCN(nn.Module):
    def __init__(self, cfg: dict, num_labels: int, backbone_weights: dict | None = None):
        super().__init__()
        dim = cfg["addgcn_dim"]
        self.backbone = build_backbone(cfg, backbone_weights)
        channels = self.backbone.num_channels
        self.cam = nn.Conv2d(channels, num_labels, kernel_size=1, bias=False)
        self.transform = nn.Conv2d(channels, dim, kernel_size=1)
        self.gcn = DynamicGraphConvolution(num_labels, dim)
        bound = 1 / math.sqrt(dim)
        self.out_weight = nn.Parameter(torch.empty(num_labels, dim).uniform_(-bound, bound))  # [L, D]
        self.out_bias = nn.Parameter(torch.empty(num_labels).uniform_(-bound, bound))  # [L]

    def forward(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> dict:
        features = self.backbone(images)  # [B, C, H, W]
        cams = self.cam(features).flatten(2)  # [B, L, HW]
        s_m = cams.amax(dim=2)  # [B, L]
        masks = torch.sigmoid(cams)  # [B, L, HW]
        projected = self.transform(features).flatten(2)  # [B, D, HW]
        nodes = torch.bmm(masks, projected.transpose(1, 2))  # [B, L, HW] @ [B, HW, D] -> [B, L, D]: v_c
        nodes = nodes + self.gcn(nodes)  # [B, L, D]
        s_r = (nodes * self.out_weight).sum(-1) + self.out_bias  # [B, L]
        return {"logits": (s_m + s_r) / 2, "s_m": s_m, "s_r": s_r}


@register_model
def add_gcn(cfg: dict, data: DataInfo) -> nn.Module:
    """ADD-GCN: semantic attention to class nodes, static + dynamic GCN, mean of the CAM and graph scores."""
    return ADDGCN(cfg, data.num_labels, data.backbone_weights)
