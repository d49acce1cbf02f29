"""Query2Label (Liu et al. 2021) as its authors' released code builds it (SlongLiu/query2labels, HEAD 55eb050).

image -> ResNet trunk (FrozenBatchNorm, stem + layer1 frozen) -> F [B, C, H, W] -> input_proj (Identity when the
width equals C, as the released default) -> transformer: post-norm encoder with the 2-D sine position embedding
added to queries and keys at every layer; decoder layers WITHOUT self-attention whose target starts at zero and
whose label embeddings are added to the query at every layer (DETR's `query_pos`), the position embedding added to
the memory keys at every layer; a final LayerNorm -> GroupWiseLinear (one weight vector and bias per label).

Facts taken from the authors' code (file:line at HEAD):
  lib/models/backbone.py:112-115    torchvision resnet, norm_layer=FrozenBatchNorm2d, no dilation
  lib/models/backbone.py:74-77      FrozenBatchNorm2d: eps 1e-5, x * w/sqrt(rv + eps) + (b - rm * scale)
  lib/models/backbone.py:86-88      parameters whose name has none of layer2/layer3/layer4 are frozen
  lib/models/backbone.py:119,183    only layer4 is returned; train_backbone is always True
  lib/models/position_encoding.py:69 PositionEmbeddingSine(hidden_dim // 2, normalize=True), temperature 10000,
                                    scale 2*pi (:26), eps 1e-6 (:39), y channels then x channels (:50)
  lib/models/transformer.py:30,54-74 rm_self_attn_dec=True, rm_first_self_attn=True: every decoder layer loses
                                    self_attn, dropout1 and norm1 (main_mlc.py:146-149 keep them only on request)
  lib/models/transformer.py:38,43   no encoder final norm when post-norm; a decoder final LayerNorm always
  lib/models/transformer.py:92-95   xavier_uniform_ on every transformer parameter with dim > 1
  lib/models/transformer.py:112     tgt = zeros; query_pos = label embeddings (:102, :114)
  lib/models/transformer.py:209-224 encoder layer (post-norm): q = k = src + pos, value = src
  lib/models/transformer.py:279-306 decoder layer: query = tgt + query_pos, key = memory + pos, value = memory
  main_mlc.py:133-141               ffn 8192, hidden 2048, dropout 0.1, 4 heads, 1 encoder / 2 decoder layers,
                                    post-norm (--pre_norm is store_true)
  lib/models/query2label.py:67-69   input_proj 1x1 conv, nn.Embedding(num_class, hidden) queries (N(0, 1) init)
  lib/models/query2label.py:106-108 input_proj replaced by nn.Identity unless --keep_input_proj (main_mlc.py:150)
  lib/models/query2label.py:29-47   GroupWiseLinear W [1, L, D], b [1, L], both U(-1/sqrt(D), 1/sqrt(D))

Module and parameter names follow the authors' (transformer.encoder.layers.N.self_attn, ...decoder.layers.N.
multihead_attn, norm2/norm3, query_embed, fc.W, fc.b), so a released checkpoint maps by renaming the backbone
prefix (theirs: backbone.0.body.*, ours: backbone.body.*) and dropping their position buffer backbone.1.pe.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.ops import FrozenBatchNorm2d

from drmoe_repro.models.backbone import TinyCNN
from drmoe_repro.models.registry import DataInfo, register_model

# Defaults of the `model:` keys the builder reads (model_keys.py): the released code's, main_mlc.py:129-141.
Q2L_DEFAULTS = {"q2l_heads": 4, "q2l_enc": 1, "q2l_dec": 2, "q2l_ffn": 8192, "q2l_dropout": 0.1}

# Q2L's backbone.py:87 trains a parameter only if its name contains one of these.
TRAINED_STAGES = ("layer2", "layer3", "layer4")


class ResNetBody(nn.Module):
    """torchvision ResNet up to layer4 with FrozenBatchNorm2d, stem and layer1 frozen, as Q2L's backbone.py.

    FrozenBatchNorm2d (torchvision.ops, the same formula and eps as Q2L's backbone.py:41-77) holds the ImageNet
    statistics and affine values as buffers: no BatchNorm parameter is trained and batch size never matters.
    """

    def __init__(self, arch: str, state_dict: dict | None = None):
        super().__init__()
        net = getattr(torchvision.models, arch)(weights=None, norm_layer=FrozenBatchNorm2d)
        if state_dict is not None:
            net.load_state_dict(state_dict)  # FrozenBatchNorm2d drops num_batches_tracked itself
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        self.body = nn.Sequential(OrderedDict((name, getattr(net, name)) for name in names))
        for name, param in self.body.named_parameters():
            if not any(stage in name for stage in TRAINED_STAGES):
                param.requires_grad_(False)
        self.num_channels = net.fc.in_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)  # [B, C, H/32, W/32]


class DemoBody(nn.Module):
    """The CPU demo's TinyCNN (stride 8, 128 channels): trained from scratch, so nothing is frozen and its
    BatchNorm stays a trainable BatchNorm2d; a deviation from Q2L that only the demo profile takes."""

    def __init__(self, state_dict: dict | None = None):
        super().__init__()
        self.body = TinyCNN()
        if state_dict is not None:
            self.body.load_state_dict(state_dict)
        self.num_channels = self.body.num_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)  # [B, 128, H/8, W/8]


def build_q2l_backbone(cfg: dict, state_dict: dict | None = None) -> nn.Module:
    """The trunk named by cfg["backbone"]; `state_dict` (torchvision ResNet keys, the ImageNet weights the engine
    loaded) is required when cfg["pretrained"] is true, as in models/backbone.py."""
    name = cfg["backbone"]
    if cfg.get("pretrained") and state_dict is None:
        raise ValueError(f"model.pretrained is true but no ImageNet weights for {name!r} were given to the model")
    if not cfg.get("pretrained") and state_dict is not None:
        raise ValueError("ImageNet weights were given but model.pretrained is false")
    if name == "tiny_cnn":
        if cfg.get("pretrained"):
            raise ValueError("model.backbone 'tiny_cnn' has no pretrained weights; set model.pretrained: false")
        return DemoBody(state_dict)
    return ResNetBody(name, state_dict)


def sine_position_embedding(height: int, width: int, dim: int, temperature: float = 10000.0,
                            device=None) -> torch.Tensor:
    """Q2L's PositionEmbeddingSine(dim // 2, normalize=True) on an unpadded H x W map; returns [dim, H, W].

    Q2L precomputes it as a buffer for img_size // 32 (position_encoding.py:31-51); computing it from the feature
    map's size gives the same values at that size and also serves the demo's stride-8 trunk.
    """
    if dim % 2:
        raise ValueError(f"the sine position embedding needs an even width, got {dim}")
    feats, eps, scale = dim // 2, 1e-6, 2 * math.pi
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)  # [H]: cumsum of an all-ones mask
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)  # [W]
    y = y / (height + eps) * scale  # [H], normalize=True
    x = x / (width + eps) * scale  # [W]
    dim_t = torch.arange(feats, dtype=torch.float32, device=device)  # [D/2]
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / feats)  # [D/2]

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos[:, None] / dim_t  # [N, D/2]
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)  # [N, D/2] interleaved

    pos_y = encode(y)[:, None, :].expand(height, width, feats)  # [H, W, D/2]
    pos_x = encode(x)[None, :, :].expand(height, width, feats)  # [H, W, D/2]
    return torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1)  # [D, H, W]


class TransformerEncoderLayer(nn.Module):
    """Post-norm encoder layer (transformer.py:209-224): position added to queries and keys, not to values."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        q = k = src + pos  # [B, HW, D]
        attended = self.self_attn(q, k, value=src, need_weights=False)[0]  # [B, HW, D]
        src = self.norm1(src + self.dropout1(attended))  # [B, HW, D]
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))  # [B, HW, D]
        return self.norm2(src + self.dropout2(ffn))  # [B, HW, D]


class TransformerDecoderLayer(nn.Module):
    """Q2L's decoder layer after rm_self_attn_dec_func (transformer.py:60-74, 279-306): cross-attention and FFN
    only. Names norm2/norm3/dropout2/dropout3 are the authors' (their norm1 and dropout1 were deleted)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor,
                query_pos: torch.Tensor) -> torch.Tensor:
        attended = self.multihead_attn(tgt + query_pos, memory + pos, value=memory, need_weights=False)[0]  # [B, L, D]
        tgt = self.norm2(tgt + self.dropout2(attended))  # [B, L, D]
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))  # [B, L, D]
        return self.norm3(tgt + self.dropout3(ffn))  # [B, L, D]


class TransformerEncoder(nn.Module):
    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            src = layer(src, pos)  # [B, HW, D]
        return src  # post-norm: no final norm (transformer.py:38)


class TransformerDecoder(nn.Module):
    def __init__(self, layers: list[nn.Module], d_model: int):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(d_model)  # transformer.py:43, applied after the last layer (:172)

    def forward(self, tgt, memory, pos, query_pos) -> torch.Tensor:
        for layer in self.layers:
            tgt = layer(tgt, memory, pos, query_pos)  # [B, L, D]
        return self.norm(tgt)  # [B, L, D]


class Transformer(nn.Module):
    def __init__(self, d_model: int, nhead: int, num_encoder_layers: int, num_decoder_layers: int,
                 dim_feedforward: int, dropout: float):
        super().__init__()
        self.encoder = TransformerEncoder(
            [TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout) for _ in range(num_encoder_layers)])
        self.decoder = TransformerDecoder(
            [TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout) for _ in range(num_decoder_layers)],
            d_model)
        self.d_model = d_model
        for param in self.parameters():  # transformer.py:92-95
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)

    def forward(self, src: torch.Tensor, query_embed: torch.Tensor, pos_embed: torch.Tensor) -> torch.Tensor:
        """src [B, D, H, W], query_embed [L, D], pos_embed [D, H, W] -> h [B, L, D]."""
        batch = src.shape[0]
        src = src.flatten(2).transpose(1, 2)  # [B, HW, D]
        pos = pos_embed.flatten(1).transpose(0, 1)[None]  # [1, HW, D]
        query_pos = query_embed[None].expand(batch, -1, -1)  # [B, L, D]
        memory = self.encoder(src, pos)  # [B, HW, D]
        tgt = torch.zeros_like(query_pos)  # [B, L, D]: the target starts at zero (transformer.py:112)
        return self.decoder(tgt, memory, pos, query_pos)  # [B, L, D]


class GroupWiseLinear(nn.Module):
    """logit_i = <W_i, h_i> + b_i: one weight vector and bias per label (query2label.py:19-47)."""

    def __init__(self, num_class: int, hidden_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(hidden_dim)
        self.W = nn.Parameter(torch.empty(1, num_class, hidden_dim).uniform_(-bound, bound))  # [1, L, D]
        self.b = nn.Parameter(torch.empty(1, num_class).uniform_(-bound, bound))  # [1, L]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.W * x).sum(-1) + self.b  # [B, L, D] -> [B, L]


class Query2LabelModel(nn.Module):
    def __init__(self, cfg: dict, num_labels: int, backbone_state_dict: dict | None = None):
        super().__init__()
        self.backbone = build_q2l_backbone(cfg, backbone_state_dict)
        channels = self.backbone.num_channels
        hidden = cfg.get("q2l_hidden") or channels
        opts = {key: cfg.get(key, default) for key, default in Q2L_DEFAULTS.items()}
        self.transformer = Transformer(hidden, opts["q2l_heads"], opts["q2l_enc"], opts["q2l_dec"],
                                       opts["q2l_ffn"], opts["q2l_dropout"])
        # Released default: Identity (query2label.py:106-108). The code's --keep_input_proj 1x1 conv "is needed when
        # the channel of image features is different from hidden_dim" (main_mlc.py:150-151): used only then.
        self.input_proj = nn.Identity() if hidden == channels else nn.Conv2d(channels, hidden, kernel_size=1)
        self.query_embed = nn.Embedding(num_labels, hidden)  # N(0, 1) init, not touched by the xavier pass
        self.fc = GroupWiseLinear(num_labels, hidden)

    def forward(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> dict:
        features = self.input_proj(self.backbone(images))  # [B, D, H, W]
        _, dim, height, width = features.shape
        pos = sine_position_embedding(height, width, dim, device=features.device).to(features.dtype)  # [D, H, W]
        h = self.transformer(features, self.query_embed.weight, pos)  # [B, L, D]
        return {"logits": self.fc(h)}  # [B, L]


@register_model
def q2l(cfg: dict, data: DataInfo) -> nn.Module:
    """Query2Label as released by its authors (SlongLiu/query2labels).

    ImageNet weights: `data.backbone_weights`, the torchvision ResNet state dict the engine loaded from the fetched
    asset. Missing q2l_* keys take the released defaults; q2l_hidden defaults to the backbone's channels (2048 for
    ResNet-101, the published configuration; 128 for tiny_cnn).
    """
    return Query2LabelModel(cfg, data.num_labels, data.backbone_weights)
