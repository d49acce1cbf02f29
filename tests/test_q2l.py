"""Query2Label as its authors released it (models/q2l.py) and its training ingredients: ASL, EMA, OneCycle per
iteration, the training transform. Reference values are written out by hand; sources are in the modules' docstrings.
"""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from drmoe_repro.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PackageRandAugment,
    Q2LCutout,
    build_q2l_eval_transform,
    build_q2l_train_transform,
)
from drmoe_repro.engine.ema import ModelEma
from drmoe_repro.engine.losses import AsymmetricLoss, asymmetric_loss, masked_asymmetric_loss
from drmoe_repro.engine.recipes import Q2L_PUBLISHED_RECIPE, q2l_published_recipe
from drmoe_repro.models import DataInfo, build_model
from drmoe_repro.models.q2l import Transformer, sine_position_embedding
from drmoe_repro.model_keys import MODEL_KEYS


def _info(num_labels, backbone_weights=None):
    return DataInfo(label_names=tuple(f"label{i}" for i in range(num_labels)),
                    train_targets=np.zeros((1, num_labels), np.int8), backbone_weights=backbone_weights)


# ----------------------------------------------------------------------------------------------------------------
# (a) The transformer: encoder with pos on q/k, decoder without self-attention, query_pos at every layer
# ----------------------------------------------------------------------------------------------------------------

D, HEADS, FFN, LABELS = 16, 2, 32, 5


def _tiny_transformer():
    torch.manual_seed(0)
    model = Transformer(D, HEADS, num_encoder_layers=1, num_decoder_layers=2, dim_feedforward=FFN, dropout=0.0)
    with torch.no_grad():  # biases start at zero and norms at (1, 0): perturb them so the reference must use them
        for param in model.parameters():
            if param.dim() == 1:
                param.add_(0.3 * torch.randn_like(param))
    return model.double().eval()


def _attention(attn, query, key, value):
    """nn.MultiheadAttention by hand: per-head softmax(q k^T / sqrt(d_head)) v, then the output projection."""
    batch, n_q, dim = query.shape
    d_head = dim // attn.num_heads
    wq, wk, wv = attn.in_proj_weight.chunk(3)
    bq, bk, bv = attn.in_proj_bias.chunk(3)

    def heads(x):
        return x.reshape(batch, x.shape[1], attn.num_heads, d_head).transpose(1, 2)  # [B, h, N, d_head]

    q, k, v = heads(query @ wq.T + bq), heads(key @ wk.T + bk), heads(value @ wv.T + bv)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d_head), dim=-1)  # [B, h, N_q, N_k]
    out = (weights @ v).transpose(1, 2).reshape(batch, n_q, dim)  # [B, N_q, D]
    return out @ attn.out_proj.weight.T + attn.out_proj.bias


def _norm(x, norm):
    return F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps)


def _ffn(x, layer):
    return F.relu(x @ layer.linear1.weight.T + layer.linear1.bias) @ layer.linear2.weight.T + layer.linear2.bias


def _reference(model, src, query_embed, pos_embed):
    """Q2L's transformer.py forward written out: returns (per-decoder-layer outputs, final output)."""
    batch = src.shape[0]
    memory = src.flatten(2).transpose(1, 2)  # [B, HW, D]
    pos = pos_embed.flatten(1).T[None]  # [1, HW, D]
    for layer in model.encoder.layers:  # post-norm, pos added to queries and keys only
        memory = _norm(memory + _attention(layer.self_attn, memory + pos, memory + pos, memory), layer.norm1)
        memory = _norm(memory + _ffn(memory, layer), layer.norm2)
    query_pos = query_embed[None].expand(batch, -1, -1)  # [B, L, D]
    tgt = torch.zeros_like(query_pos)
    per_layer = []
    for layer in model.decoder.layers:  # no self-attention; query_pos and pos added at every layer
        tgt = _norm(tgt + _attention(layer.multihead_attn, tgt + query_pos, memory + pos, memory), layer.norm2)
        tgt = _norm(tgt + _ffn(tgt, layer), layer.norm3)
        per_layer.append(tgt)
    return per_layer, _norm(tgt, model.decoder.norm)


def _inputs():
    gen = torch.Generator().manual_seed(1)
    src = torch.randn(3, D, 3, 4, generator=gen, dtype=torch.float64)  # [B, D, H, W]
    query_embed = torch.randn(LABELS, D, generator=gen, dtype=torch.float64)  # [L, D]
    pos = sine_position_embedding(3, 4, D).double()  # [D, H, W]
    return src, query_embed, pos


def _decoder_layer_outputs(model, *args):
    outputs = []
    hooks = [layer.register_forward_hook(lambda m, i, o: outputs.append(o)) for layer in model.decoder.layers]
    final = model(*args)
    for hook in hooks:
        hook.remove()
    return outputs, final


def test_decoder_layers_have_no_self_attention():
    model = _tiny_transformer()
    for layer in model.decoder.layers:
        attentions = [m for m in layer.modules() if isinstance(m, nn.MultiheadAttention)]
        assert attentions == [layer.multihead_attn]
        assert not hasattr(layer, "self_attn") and not hasattr(layer, "norm1") and not hasattr(layer, "dropout1")
    assert len(model.encoder.layers) == 1 and len(model.decoder.layers) == 2


def test_transformer_matches_a_hand_written_forward():
    model = _tiny_transformer()
    src, query_embed, pos = _inputs()
    with torch.no_grad():
        layers, final = _decoder_layer_outputs(model, src, query_embed, pos)
        ref_layers, ref_final = _reference(model, src, query_embed, pos)
    assert len(layers) == 2
    for ours, ref in zip(layers, ref_layers):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(final, ref_final, rtol=0, atol=1e-6)


def test_label_queries_enter_every_decoder_layer():
    model = _tiny_transformer()
    src, query_embed, pos = _inputs()
    with torch.no_grad():
        with_queries, _ = _decoder_layer_outputs(model, src, query_embed, pos)
        without, _ = _decoder_layer_outputs(model, src, torch.zeros_like(query_embed), pos)
        for a, b in zip(with_queries, without):
            assert (a - b).abs().max() > 1e-3
        # The second layer given the same input target: only its own query_pos differs.
        memory = model.encoder(src.flatten(2).transpose(1, 2), pos.flatten(1).T[None])
        layer, tgt = model.decoder.layers[1], with_queries[0]
        query_pos = query_embed[None].expand(3, -1, -1)
        same_input = layer(tgt, memory, pos.flatten(1).T[None], torch.zeros_like(query_pos))
        assert (layer(tgt, memory, pos.flatten(1).T[None], query_pos) - same_input).abs().max() > 1e-3


def test_sine_position_embedding_is_q2ls_normalised_detr_encoding():
    """PositionEmbeddingSine(D/2, normalize=True): y = (i+1)/(H+1e-6)*2pi, channel pairs share 10000^(2k/(D/2))."""
    height, width, dim = 3, 5, 8
    pos = sine_position_embedding(height, width, dim)  # [8, 3, 5]: 4 y channels, then 4 x channels
    i, j = 1, 3
    y, x = (i + 1) / (height + 1e-6) * 2 * math.pi, (j + 1) / (width + 1e-6) * 2 * math.pi
    expected = [math.sin(y), math.cos(y), math.sin(y / 100), math.cos(y / 100),  # 10000^(2/4) = 100
                math.sin(x), math.cos(x), math.sin(x / 100), math.cos(x / 100)]
    torch.testing.assert_close(pos[:, i, j], torch.tensor(expected), rtol=0, atol=1e-6)
    assert torch.equal(pos[:4, i, 0], pos[:4, i, 4]) and torch.equal(pos[4:, 0, j], pos[4:, 2, j])


# ----------------------------------------------------------------------------------------------------------------
# (b) Parameter counts at the published R101-448 COCO configuration
# ----------------------------------------------------------------------------------------------------------------

def _resnet101_by_hand():
    """(conv weights, BatchNorm channels, conv weights of the stem and layer1) of torchvision's ResNet-101 trunk."""
    convs, bn_channels = 64 * 3 * 7 * 7, 64  # stem conv1 7x7 3->64 and bn1
    frozen = convs
    inplanes = 64
    for stage, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 23), (512, 3)], start=1):
        stage_convs = 0
        for block in range(blocks):
            stage_convs += inplanes * planes + 9 * planes * planes + planes * 4 * planes  # 1x1, 3x3, 1x1 convs
            bn_channels += planes + planes + 4 * planes
            if block == 0:  # downsample 1x1 conv + bn (stride, or 64 -> 256 channels)
                stage_convs += inplanes * 4 * planes
                bn_channels += 4 * planes
            inplanes = 4 * planes
        convs += stage_convs
        if stage == 1:
            frozen += stage_convs
    return convs, bn_channels, frozen


def test_resnet101_trunk_count_by_hand():
    convs, bn_channels, frozen = _resnet101_by_hand()
    assert (convs, bn_channels, frozen) == (42_394_816, 52_672, 222_400)
    with torch.device("meta"):
        net = torchvision.models.resnet101()
    trunk = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("fc."))
    assert trunk == convs + 2 * bn_channels == 42_500_160  # torchvision's 44,549,160 less fc's 2,049,000


def test_parameter_count_at_the_published_configuration():
    cfg = {"backbone": "resnet101", "pretrained": False, "q2l_hidden": 2048, "q2l_heads": 4, "q2l_enc": 1,
           "q2l_dec": 2, "q2l_ffn": 8192, "q2l_dropout": 0.1}
    with torch.device("meta"):
        model = build_model("q2l", cfg, _info(80))
    L, d, ffn = 80, 2048, 8192
    attention = (3 * d * d + 3 * d) + (d * d + d)  # in_proj + out_proj
    feed_forward = (d * ffn + ffn) + (ffn * d + d)  # linear1 + linear2
    encoder_layer = attention + feed_forward + 2 * (2 * d)  # norm1, norm2
    decoder_layer = attention + feed_forward + 2 * (2 * d)  # cross-attention only; norm2, norm3
    transformer = 1 * encoder_layer + 2 * decoder_layer + 2 * d  # + the decoder's final norm
    head = L * d + L
    queries = L * d
    convs, bn_channels, frozen = _resnet101_by_hand()
    count = lambda params: sum(p.numel() for p in params)  # noqa: E731
    assert isinstance(model.input_proj, nn.Identity)  # hidden == 2048 channels: no projection (released default)
    assert count(model.transformer.parameters()) == transformer
    assert count(model.parameters()) == convs + transformer + head + queries == 193_801_488
    # FrozenBatchNorm: BN statistics and affine values are buffers, 4 per channel; stem and layer1 frozen.
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert count(model.backbone.buffers()) == 4 * bn_channels
    trainable = count(p for p in model.parameters() if p.requires_grad)
    assert trainable == convs - frozen + transformer + head + queries == 193_579_088
    frozen_names = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen_names == {n for n, _ in model.named_parameters()
                            if n.startswith(("backbone.body.conv1.", "backbone.body.layer1."))}


def test_backbone_weights_come_from_the_state_dict_handed_to_the_builder():
    torch.manual_seed(3)
    reference = torchvision.models.resnet18()  # ordinary BatchNorm keys, num_batches_tracked included
    with torch.no_grad():
        reference.bn1.running_mean.uniform_(-1, 1)
    cfg = {"backbone": "resnet18", "pretrained": True, "q2l_hidden": 64, "q2l_ffn": 32}  # pretrained: no file read
    model = build_model("q2l", cfg, _info(4, reference.state_dict()))
    body = model.backbone.body
    assert torch.equal(body.conv1.weight, reference.conv1.weight)
    assert torch.equal(body.bn1.running_mean, reference.bn1.running_mean)
    assert isinstance(model.input_proj, nn.Conv2d)  # 512 channels -> width 64 needs the 1x1 projection
    assert not body.layer1[0].conv1.weight.requires_grad and body.layer2[0].conv1.weight.requires_grad
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_model("q2l", {"backbone": "resnet18", "pretrained": True}, _info(4))


def test_registered_keys():
    assert {"q2l_hidden", "q2l_heads", "q2l_enc", "q2l_dec", "q2l_ffn", "q2l_dropout"} <= set(MODEL_KEYS["q2l"])


# ----------------------------------------------------------------------------------------------------------------
# (c) Asymmetric loss by hand
# ----------------------------------------------------------------------------------------------------------------

# sigmoid(x) = [[0.5, 0.75, 0.25], [0.9, 0.8, 0.02]]
LOGITS = torch.tensor([[0.0, math.log(3), -math.log(3)], [math.log(9), math.log(4), -math.log(49)]],
                      dtype=torch.float64)
TARGETS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
# Positives: -log p (gamma_pos 0). Negatives: -log(p_neg) * (1 - p_neg)^2 with p_neg = min(1 - p + clip, 1).
NO_CLIP = [[-math.log(0.5), -math.log(0.25) * 0.75 ** 2, -math.log(0.75) * 0.25 ** 2],
           [-math.log(0.1) * 0.9 ** 2, -math.log(0.8), -math.log(0.98) * 0.02 ** 2]]
CLIP_005 = [[-math.log(0.5), -math.log(0.30) * 0.70 ** 2, -math.log(0.80) * 0.20 ** 2],
            [-math.log(0.15) * 0.85 ** 2, -math.log(0.8), 0.0]]  # 0.98 + 0.05 clamps to 1: log 1 = 0


def test_hand_computed_elements():
    """The lists above, evaluated: 0.693147, 0.779791, 0.017980 / 1.865094, 0.223144, 0.000008 (clip 0) and
    0.693147, 0.589947, 0.008926 / 1.370669, 0.223144, 0 (clip 0.05)."""
    np.testing.assert_allclose(NO_CLIP, [[0.6931472, 0.7797906, 0.0179801], [1.8650939, 0.2231436, 0.0000081]],
                               atol=1e-7)
    np.testing.assert_allclose(CLIP_005, [[0.6931472, 0.5899467, 0.0089257], [1.3706692, 0.2231436, 0.0]],
                               atol=1e-7)


def test_asymmetric_loss_reductions_and_clip():
    total = sum(map(sum, NO_CLIP))  # 3.5791634
    assert asymmetric_loss(LOGITS, TARGETS, reduction="sum").item() == pytest.approx(total, rel=1e-9)
    # Q2L's AsymmetricLossOptimized: sum / batch / labels * 1000 = 596.527241
    assert asymmetric_loss(LOGITS, TARGETS).item() == pytest.approx(596.527241, rel=1e-7)
    assert asymmetric_loss(LOGITS, TARGETS, clip=0.05).item() == pytest.approx(
        sum(map(sum, CLIP_005)) / 6 * 1000, rel=1e-9)
    assert asymmetric_loss(LOGITS, TARGETS, clip=0.05).item() == pytest.approx(480.972056, rel=1e-7)


def test_masked_asymmetric_loss_ignores_minus_one():
    targets = TARGETS.clone()
    targets[0, 2] = -1
    # (0, 2) leaves both the sum and the count: (total - NO_CLIP[0][2]) / 5 * 1000 = 712.236663
    assert masked_asymmetric_loss(LOGITS, targets).item() == pytest.approx(712.236663, rel=1e-7)
    assert masked_asymmetric_loss(LOGITS, targets, clip=0.05, reduction="sum").item() == pytest.approx(
        sum(map(sum, CLIP_005)) - CLIP_005[0][2], rel=1e-9)
    # Without any -1 the masked loss is Q2L's.
    assert masked_asymmetric_loss(LOGITS, TARGETS).item() == pytest.approx(asymmetric_loss(LOGITS, TARGETS).item())
    assert AsymmetricLoss()(LOGITS, targets).item() == pytest.approx(712.236663, rel=1e-7)


def test_eps_clamps_the_probability_from_below():
    logits = torch.tensor([[-40.0]], dtype=torch.float64)  # p ~ 4e-18 for a positive label: log(max(p, 1e-5))
    loss = asymmetric_loss(logits, torch.ones(1, 1, dtype=torch.float64), reduction="sum")
    assert loss.item() == pytest.approx(-math.log(1e-5))


def test_focusing_weight_without_gradient():
    """Negative, p = 0.75, clip 0: loss = -log(1 - p) * p^2. d/dx: p^3 with the weight constant (--dtgfl), else
    p^3 + (-log(1 - p)) * 2p * p(1 - p)."""
    p = 0.75
    for disable, expected in [(True, p ** 3), (False, p ** 3 - math.log(1 - p) * 2 * p * p * (1 - p))]:
        x = torch.tensor([[math.log(3)]], dtype=torch.float64, requires_grad=True)
        asymmetric_loss(x, torch.zeros(1, 1, dtype=torch.float64), reduction="sum",
                        disable_torch_grad_focal_loss=disable).backward()
        assert x.grad.item() == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------------------------------------------
# (d) EMA
# ----------------------------------------------------------------------------------------------------------------

class _Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor([1.0, 2.0]))
        self.b = nn.Parameter(torch.tensor([4.0]))
        self.register_buffer("stat", torch.tensor([10.0, 20.0]))
        self.register_buffer("count", torch.tensor(5))


def test_one_ema_update_by_hand():
    model = _Two()
    ema = ModelEma(model, decay=0.9)
    with torch.no_grad():
        model.a.copy_(torch.tensor([3.0, 0.0]))
        model.b.copy_(torch.tensor([-6.0]))
        model.stat.copy_(torch.tensor([0.0, 30.0]))
        model.count.fill_(6)
    ema.update(model)
    # 0.9 * old + 0.1 * new
    torch.testing.assert_close(ema.module.a, torch.tensor([0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * 0]))
    torch.testing.assert_close(ema.module.b, torch.tensor([0.9 * 4 + 0.1 * -6]))
    torch.testing.assert_close(ema.module.stat, torch.tensor([0.9 * 10 + 0.1 * 0, 0.9 * 20 + 0.1 * 30]))
    assert ema.module.count.item() == 6  # integer buffers are copied
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())
    assert model.a.tolist() == [3.0, 0.0]  # the model itself is untouched
    ema.set(model)
    assert ema.module.a.tolist() == [3.0, 0.0]


def test_default_decay_is_q2ls():
    assert ModelEma(_Two()).decay == 0.9997


# ----------------------------------------------------------------------------------------------------------------
# (e) OneCycle stepped every iteration
# ----------------------------------------------------------------------------------------------------------------

def test_one_cycle_per_iteration_follows_torchs_curve():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    model[1].bias.requires_grad_(False)  # frozen parameters stay out of the optimizer
    epochs, steps = 3, 5
    recipe = q2l_published_recipe(model, {"epochs": epochs}, steps_per_epoch=steps)
    optimizer, scheduler, clip = recipe.optimizer, recipe.scheduler, recipe.grad_clip
    assert clip is None and isinstance(optimizer, torch.optim.AdamW)
    (group,) = optimizer.param_groups
    assert len(group["params"]) == 3 and group["weight_decay"] == 1e-2  # decay on bias and norm too
    assert group["eps"] == 1e-8
    # OneCycleLR (cos, pct_start 0.2, div 25, final div 1e4) over 15 steps: warm-up ends at step 0.2 * 15 - 1 = 2.
    max_lr, total, warm = 1e-4, epochs * steps, 0.2 * epochs * steps - 1
    low, final = max_lr / 25, max_lr / 25 / 1e4

    def cosine(start, end, frac):
        return end + (start - end) * (1 + math.cos(math.pi * frac)) / 2

    for k in range(total):
        down = (k - warm) / (total - 1 - warm)  # position in the annealing phase
        expected = cosine(low, max_lr, k / warm) if k <= warm else cosine(max_lr, final, down)
        beta1 = cosine(0.95, 0.85, k / warm) if k <= warm else cosine(0.85, 0.95, down)
        assert group["lr"] == pytest.approx(expected, rel=1e-9), k
        assert group["betas"][0] == pytest.approx(beta1, rel=1e-9), k
        optimizer.step()
        scheduler.step()
    assert Q2L_PUBLISHED_RECIPE["lr"][0] == 1e-4 and Q2L_PUBLISHED_RECIPE["epochs"][0] == 80
    with pytest.raises(ValueError):
        scheduler.step()  # no step past epochs * steps_per_epoch


# ----------------------------------------------------------------------------------------------------------------
# (f) The training transform
# ----------------------------------------------------------------------------------------------------------------

def _image(height=120, width=90, seed=0):
    return torch.randint(256, (3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_train_transform_shape_dtype_and_seeded_determinism():
    transform = build_q2l_train_transform(64)
    image = _image()
    torch.manual_seed(11)
    first = transform(image)
    torch.manual_seed(11)
    again = transform(image)
    assert first.shape == (3, 64, 64) and first.dtype == torch.float32
    assert torch.equal(first, again)
    outputs = []
    for seed in range(6):
        torch.manual_seed(seed)
        outputs.append(transform(image))
    assert any(not torch.equal(outputs[0], other) for other in outputs[1:])
    plain = build_q2l_train_transform(64, cutout="none", randaugment="none")(image)
    torch.testing.assert_close(plain, build_q2l_eval_transform(64)(image))
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    resized = torchvision.transforms.v2.functional.resize(image, [64, 64], antialias=True)
    torch.testing.assert_close(plain, (resized.float() / 255 - mean) / std)


def _changed_box(before, after):
    """(top, bottom, left, right, number of changed pixels) of where `after` differs from `before`."""
    changed = (after != before).any(dim=0)  # [H, W]
    rows, cols = changed.nonzero(as_tuple=True)
    return rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item(), int(changed.sum())


def test_factor_cutout_blanks_a_half_size_square_as_pil_draws_it():
    from PIL import Image, ImageDraw

    size = 448
    image = torch.zeros(3, size, size, dtype=torch.uint8)
    cutout = Q2LCutout(factor=0.5)  # side int(0.5 * 448 + 0.5) = 224: corners centre -/+ 112, both inclusive
    for seed in range(4):
        torch.manual_seed(seed)
        out = cutout(image)
        torch.manual_seed(seed)
        yc, xc = torch.randint(size, ()).item(), torch.randint(size, ()).item()
        colour = tuple(torch.randint(256, (3,)).tolist())
        pil = Image.new("RGB", (size, size))
        ImageDraw.Draw(pil).rectangle([np.clip(xc - 112, 0, size), np.clip(yc - 112, 0, size),
                                       np.clip(xc + 112, 0, size), np.clip(yc + 112, 0, size)], fill=colour)
        assert torch.equal(out, torch.from_numpy(np.array(pil)).permute(2, 0, 1))
    # A centre away from the border: a full 225 x 225 square.
    assert cutout.box_at(200, 150, size, size) == (88, 312, 38, 262)


def test_released_cutout_paints_a_three_pixel_block():
    """SLCutoutPIL(n_holes=1, length=-1): corners (c + 1, c - 1), swapped by Pillow < 10, inclusive."""
    cutout = Q2LCutout(length=-1)
    assert cutout.box_at(10, 20, 64, 64) == (9, 11, 19, 21)
    assert cutout.box_at(0, 63, 64, 64) == (0, 1, 62, 63)  # 2 px at the borders
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    torch.manual_seed(0)
    top, bottom, left, right, count = _changed_box(image, cutout(image))
    assert bottom - top + 1 <= 3 and right - left + 1 <= 3 and count == (bottom - top + 1) * (right - left + 1)


def test_randaugment_operations_agree_with_the_pil_calls_of_the_package():
    """Each operation against the PIL call the `randaugment` package makes (fixed sign; magnitude index 5)."""
    from PIL import Image, ImageEnhance, ImageOps

    y, x = torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="ij")
    image = torch.stack([x * 4, y * 5, x + y * 2]).clamp(0, 255).to(torch.uint8)  # smooth, so edges are few
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    gray = (128, 128, 128)

    def rotated(img, degrees):
        rot = img.convert("RGBA").rotate(degrees)
        return Image.composite(rot, Image.new("RGBA", rot.size, (128,) * 4), rot).convert(img.mode)

    m = {op: PackageRandAugment.magnitude(op, 5) for op in PackageRandAugment.OPS}
    references = {
        "Invert": ImageOps.invert(pil), "AutoContrast": ImageOps.autocontrast(pil), "Equalize": ImageOps.equalize(pil),
        "Posterize": ImageOps.posterize(pil, int(m["Posterize"])), "Solarize": ImageOps.solarize(pil, m["Solarize"]),
        "Color": ImageEnhance.Color(pil).enhance(1 + m["Color"]),
        "Contrast": ImageEnhance.Contrast(pil).enhance(1 + m["Contrast"]),
        "Sharpness": ImageEnhance.Sharpness(pil).enhance(1 + m["Sharpness"]),
        "Brightness": ImageEnhance.Brightness(pil).enhance(1 + m["Brightness"]),
        "ShearX": pil.transform(pil.size, Image.AFFINE, (1, m["ShearX"], 0, 0, 1, 0), Image.BICUBIC, fillcolor=gray),
        "ShearY": pil.transform(pil.size, Image.AFFINE, (1, 0, 0, m["ShearY"], 1, 0), Image.BICUBIC, fillcolor=gray),
        # PIL's (1, 0, t, ...) samples x + t: the content moves by -t (our sign +1 moves it by +t)
        "TranslateX": pil.transform(pil.size, Image.AFFINE, (1, 0, -m["TranslateX"] * 64, 0, 1, 0), fillcolor=gray),
        "TranslateY": pil.transform(pil.size, Image.AFFINE, (1, 0, 0, 0, 1, -m["TranslateY"] * 48), fillcolor=gray),
        "Rotate": rotated(pil, m["Rotate"]),
    }
    for op, reference in references.items():
        torch.manual_seed(0)
        while True:  # the sign our op draws first must be +1, as the reference assumes
            state = torch.get_rng_state()
            if torch.randint(2, ()).item():
                break
        torch.set_rng_state(state)
        ours = PackageRandAugment.apply(image, op, m[op]).int()
        diff = (ours - torch.from_numpy(np.array(reference)).permute(2, 0, 1).int()).abs()
        assert diff.float().mean() < 1.0, op  # shears: bilinear here, bicubic in PIL, differ at the edges
        assert (diff > 2).float().mean() < 0.03, op
    assert [PackageRandAugment.magnitude("Posterize", i) for i in range(1, 10)] == [8, 7, 7, 6, 6, 5, 5, 4, 4]
    assert [PackageRandAugment.magnitude("Cutout", i) for i in range(1, 10)] == [2, 4, 7, 9, 11, 13, 16, 18, 20]


# ----------------------------------------------------------------------------------------------------------------
# (g) The demo configuration end to end
# ----------------------------------------------------------------------------------------------------------------

TINY = {"backbone": "tiny_cnn", "pretrained": False, "q2l_heads": 4, "q2l_enc": 1, "q2l_dec": 2, "q2l_ffn": 256,
        "q2l_dropout": 0.1}


def test_demo_configuration_forward_and_a_falling_loss():
    torch.manual_seed(0)
    model = build_model("q2l", TINY, _info(6))
    assert isinstance(model.input_proj, nn.Identity) and model.transformer.d_model == 128  # tiny_cnn's channels
    assert all(p.requires_grad for p in model.parameters())  # demo: nothing frozen, BatchNorm trainable
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 32, 32, generator=gen)
    targets = (torch.rand(8, 6, generator=gen) < 0.4).float()
    targets[0, 0] = -1
    out = model.eval()(images[:3])
    assert out["logits"].shape == (3, 6) and torch.isfinite(out["logits"]).all()
    model.train()
    ema = ModelEma(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    loss_fn = AsymmetricLoss()
    losses = []
    for _ in range(15):
        loss = loss_fn(model(images)["logits"].float(), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema.update(model)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    ema_weight = ema.module.fc.W
    assert not torch.equal(ema_weight, model.fc.W) and ema.module(images[:2])["logits"].shape == (2, 6)
    assert copy.deepcopy(ema.module).training is False
