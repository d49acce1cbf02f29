"""ML-GCN (Chen et al. 2019): a GCN over label embeddings turns the label co-occurrence graph into classifiers.

image -> backbone map [B, C, H, W] -> global max pooling x [B, C]
label embeddings E [L, 300] -> GCN layer (Â E W1) -> LeakyReLU(0.2) -> GCN layer (Â . W2) -> classifiers W [L, C]
logits = x W^T [B, L]

Â is the normalised, re-weighted, binarised conditional-probability graph of `label_graph.mlgcn_adjacency`,
built once from the training labels and kept as a buffer. The GCN layers have no bias and the classifier none, as
in the released code. Config keys: `mlgcn_hidden` (1024 in the paper), `mlgcn_tau` (0.4), `mlgcn_p` (0.25, the
code's value; the paper says 0.2), `mlgcn_reweight` (published | paper, see label_graph), `label_embedding`
(glove | random).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from drmoe_repro.models.backbone import build_backbone, global_max_pool
from drmoe_repro.models.label_graph import label_embedding, mlgcn_adjacency
from drmoe_repro.models.registry import DataInfo, register_model


class GraphConvolution(nn.Module):
    """H' = Â H W (Kipf & Welling), no bias; W initialised U(-1/sqrt(out), 1/sqrt(out)) as ML-GCN does."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1 / math.sqrt(out_dim)
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim).uniform_(-bound, bound))  # [in, out]

    def forward(self, nodes: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return adjacency @ (nodes @ self.weight)  # [L, L] @ [L, out] -> [L, out]


class MLGCN(nn.Module):
    def __init__(self, cfg: dict, data: DataInfo):
        super().__init__()
        self.backbone = build_backbone(cfg, data.backbone_weights)
        embedding = label_embedding(cfg["label_embedding"], data.label_names, data.label_vectors)
        adjacency = mlgcn_adjacency(
            data.train_targets,
            tau=cfg["mlgcn_tau"],
            p=cfg["mlgcn_p"],
            variant=cfg["mlgcn_reweight"],
        )
        self.register_buffer("embedding", embedding)  # [L, 300]: fixed inputs, not trained
        self.register_buffer("adjacency", adjacency)  # [L, L]
        self.gc1 = GraphConvolution(embedding.shape[1], cfg["mlgcn_hidden"])
        self.gc2 = GraphConvolution(cfg["mlgcn_hidden"], self.backbone.num_channels)

    def classifiers(self) -> torch.Tensor:
        hidden = F.leaky_relu(self.gc1(self.embedding, self.adjacency), 0.2)  # [L, hidden]
        return self.gc2(hidden, self.adjacency)  # [L, C]

    def forward(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> dict:
        features = global_max_pool(self.backbone(images))  # [B, C]
        return {"logits": features @ self.classifiers().t()}  # [B, C] @ [C, L] -> [B, L]


@register_model
def ml_gcn(cfg: dict, data: DataInfo) -> nn.Module:
    """ML-GCN: label-graph GCN classifiers over globally max-pooled backbone features."""
    return MLGCN(cfg, data)
