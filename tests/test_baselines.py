"""The paper's baselines (ML-GCN, ADD-GCN, CNN-RNN), their label statistics, and the training recipes."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from drmoe_repro.config import DEFAULT_CONFIG, PUBLISHED_SCHEDULES, load_config, resolve_run
from drmoe_repro.data.transforms import MultiScaleCrop, build_recipe_train_transform
from drmoe_repro.engine.recipes import Q2L_PUBLISHED_RECIPE, build_recipe
from drmoe_repro.engine.train import training_loss
from drmoe_repro.models import DataInfo, build_model
from drmoe_repro.models.backbone import global_max_pool
from drmoe_repro.models.cnnrnn import IGNORE
from drmoe_repro.models.label_graph import (
    GLOVE_DIM,
    binarise,
    conditional_probabilities,
    frequency_order,
    mlgcn_adjacency,
    reweight,
)

TINY = {"backbone": "tiny_cnn", "pretrained": False, "label_embedding": "random", "mlgcn_hidden": 24,
        "mlgcn_tau": 0.4, "mlgcn_p": 0.25, "mlgcn_reweight": "published",
        "addgcn_dim": 16, "cnnrnn_embed": 16, "cnnrnn_hidden": 32, "cnnrnn_beam": 2}

# Labels A, B, C, D. count(A) = 4, count(B) = 2, count(C) = 1, count(D) = 0; -1 (ignored) counts as absent.
HAND_MADE = np.array([
    [1, 1, 0, 0],
    [1, 1, 0, 0],
    [1, 0, 1, 0],
    [1, -1, 0, 0],
    [0, 0, 0, -1],
], dtype=np.int8)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors gain nothing from a second thread, and on a shared 2-core machine two threads per process spin
    and wait on each other (the toy training below: 2 s on one thread, ~50 s on two under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _info(targets=HAND_MADE, names=None, label_vectors=None):
    names = names or tuple(f"label{i}" for i in range(targets.shape[1]))
    return DataInfo(label_names=tuple(names), train_targets=targets, label_vectors=label_vectors)


def _build(name, info=None, **overrides):
    torch.manual_seed(0)
    return build_model(name, {**TINY, **overrides}, info or _info())


# ----------------------------------------------------------------------------------------------------------------
# ML-GCN's label graph
# ----------------------------------------------------------------------------------------------------------------

def test_conditional_probabilities_count_positives_only():
    probs = conditional_probabilities(HAND_MADE)
    expected = np.array([
        [0, 2 / 4, 1 / 4, 0],  # P(B|A) = 2/4, P(C|A) = 1/4 (the ignored B of row 4 is not a co-occurrence)
        [1, 0, 0, 0],  # P(A|B) = 2/2
        [1, 0, 0, 0],  # P(A|C) = 1/1
        [0, 0, 0, 0],  # D is never positive
    ])
    np.testing.assert_allclose(probs, expected)


def test_binarisation_keeps_edges_at_or_above_tau():
    probs = conditional_probabilities(HAND_MADE)
    np.testing.assert_array_equal(binarise(probs, 0.4), [[0, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert binarise(probs, 0.5)[0, 1] == 1  # P(B|A) = 0.5 is kept at tau = 0.5
    assert binarise(probs, 0.25)[0, 2] == 1 and binarise(probs, 0.26)[0, 2] == 0


def test_paper_reweighting_spreads_p_over_each_row_and_keeps_one_minus_p_on_the_diagonal():
    binary = np.array([[0, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=float)
    out = reweight(binary, 0.2, "paper")
    np.testing.assert_allclose(out, [[0.8, 0.1, 0.1], [0.2, 0.8, 0.0], [0.0, 0.0, 0.8]])
    np.testing.assert_allclose(out[:2].sum(axis=1), 1.0)  # a row with neighbours sums to 1 (eq 8 of ML-GCN)


def test_published_reweighting_scales_columns_to_p_and_adds_the_identity():
    binary = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]], dtype=float)
    out = reweight(binary, 0.25, "published")
    np.testing.assert_allclose(out, [[1, 0.125, 0.25], [0.25, 1, 0], [0, 0.125, 1]])
    np.testing.assert_allclose((out - np.eye(3)).sum(axis=0), 0.25)


def test_normalised_graph_of_the_hand_made_labels():
    paper = mlgcn_adjacency(HAND_MADE, tau=0.4, p=0.25, variant="paper").numpy()
    # A' = [[.75, .25, 0, 0], [.25, .75, 0, 0], [.25, 0, .75, 0], [0, 0, 0, .75]]; degrees 1, 1, 1, .75.
    expected = np.array([[0.75, 0.25, 0, 0], [0.25, 0.75, 0, 0], [0.25, 0, 0.75, 0], [0, 0, 0, 1.0]])
    np.testing.assert_allclose(paper, expected, rtol=1e-6)
    published = mlgcn_adjacency(HAND_MADE, tau=0.4, p=0.25, variant="published").numpy()
    # A' = p * B / column sums + I = [[1, .25, 0, 0], [.125, 1, 0, 0], [.125, 0, 1, 0], [0, 0, 0, 1]],
    # degrees (row sums) 1.25, 1.125, 1.125, 1; the released code propagates along A'^T.
    d = np.array([1.25, 1.125, 1.125, 1.0])
    a = np.array([[1, 0.25, 0, 0], [0.125, 1, 0, 0], [0.125, 0, 1, 0], [0, 0, 0, 1]])
    np.testing.assert_allclose(published, a.T / np.sqrt(np.outer(d, d)), rtol=1e-6)
    assert published[0, 1] == pytest.approx(0.125 / math.sqrt(1.25 * 1.125), rel=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# ML-GCN
# ----------------------------------------------------------------------------------------------------------------

def _write_glove(path, vectors):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("the " + " ".join(["0.5"] * GLOVE_DIM) + "\n")
        for word, vector in vectors.items():
            handle.write(word + " " + " ".join(f"{v:.4f}" for v in vector) + "\n")


def test_glove_embedding_is_read_by_the_engine_from_the_fetched_location_and_handed_to_the_model(tmp_path):
    from drmoe_repro.data.index import LabelIndex
    from drmoe_repro.engine.train import data_info_for

    rng = np.random.default_rng(0)
    vectors = {w: rng.normal(size=GLOVE_DIM).round(4) for w in ("cat", "dog", "traffic", "light")}
    glove = tmp_path / "glove.6B.300d.txt"
    _write_glove(glove, vectors)
    names = ("cat", "dog", "traffic light")
    index = LabelIndex(str(tmp_path), tuple(f"{i}" for i in range(len(HAND_MADE))),
                       tuple(f"{i}.jpg" for i in range(len(HAND_MADE))), names, HAND_MADE[:, :3])
    cfg = {**TINY, "label_embedding": "glove"}
    info = data_info_for(index, cfg, {"label_vectors": tmp_path})  # the extracted folder, as the marker records it
    model = _build("ml_gcn", info, label_embedding="glove")
    expected = np.stack([vectors["cat"], vectors["dog"], (vectors["traffic"] + vectors["light"]) / 2])
    np.testing.assert_allclose(model.embedding.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_glove_without_vectors_is_an_error_not_a_silent_fallback():
    with pytest.raises(ValueError, match="(?i)glove"):
        _build("ml_gcn", label_embedding="glove")


def test_random_embedding_is_fixed_whatever_the_run_seed():
    torch.manual_seed(1)
    first = build_model("ml_gcn", TINY, _info()).embedding
    torch.manual_seed(2)
    second = build_model("ml_gcn", TINY, _info()).embedding
    torch.testing.assert_close(first, second)
    assert first.shape == (4, GLOVE_DIM)
    assert torch.cdist(first, first)[~torch.eye(4, dtype=torch.bool)].min() > 0.5  # distinct labels, distinct inputs


def test_mlgcn_logits_are_max_pooled_features_times_the_gcn_classifiers():
    model = _build("ml_gcn", mlgcn_reweight="paper").eval()
    torch.testing.assert_close(model.adjacency, mlgcn_adjacency(HAND_MADE, 0.4, 0.25, "paper"))
    assert "adjacency" in model.state_dict() and "adjacency" not in dict(model.named_parameters())
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = global_max_pool(model.backbone(images))  # [B, C]
        adj = model.adjacency
        hidden = torch.nn.functional.leaky_relu(adj @ model.embedding @ model.gc1.weight, 0.2)
        classifiers = adj @ hidden @ model.gc2.weight  # [L, C]
        torch.testing.assert_close(model(images)["logits"], features @ classifiers.t())


# ----------------------------------------------------------------------------------------------------------------
# ADD-GCN
# ----------------------------------------------------------------------------------------------------------------

def test_addgcn_logits_are_the_mean_of_the_cam_and_graph_branches():
    model = _build("add_gcn").eval()
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(images)
        cam_max = model.cam(model.backbone(images)).amax(dim=(2, 3))  # [B, L]
    torch.testing.assert_close(out["s_m"], cam_max)
    torch.testing.assert_close(out["logits"], (out["s_m"] + out["s_r"]) / 2)
    assert not torch.allclose(out["s_m"], out["s_r"])


def test_addgcn_dynamic_graph_depends_on_the_image():
    model = _build("add_gcn").eval()
    nodes = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(0))  # [B, L, D]
    with torch.no_grad():
        glob = model.gcn._global_node(nodes)[:, None].expand_as(nodes)
        adjacency = torch.sigmoid(model.gcn.adjacency_head(torch.cat([glob, nodes], dim=-1)))
    assert adjacency.shape == (2, 4, 4) and (adjacency[0] - adjacency[1]).abs().max() > 1e-4


def _released_addgcn_forward(model, features: torch.Tensor) -> torch.Tensor:
    """ADD-GCN's forward after the backbone, written from Yejin0111/ADD-GCN models/add_gcn.py (b7653fe) in its own
    channel-major layout (nodes [B, D, N], 1x1 conv1d layers), with our model's weights: out1 = top-1 mean of the
    class maps (:100-107), SAM (:109-124), static GCN with its residual (:24-27, :58), dynamic graph from
    [global; node] (:29-42), dynamic GCN x @ A (:44-49), out2 = diagonal of last_linear(v + z) (:134-141)."""
    gcn = model.gcn
    leaky = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    cams = F.conv2d(features, model.cam.weight).flatten(2)  # [B, N, HW]
    out1 = cams.topk(1, dim=-1)[0].mean(dim=-1)  # [B, N]
    mask = torch.sigmoid(cams).transpose(1, 2)  # [B, HW, N]
    v = F.conv2d(features, model.transform.weight, model.transform.bias).flatten(2) @ mask  # [B, D, N]
    static = leaky(F.conv1d(v.transpose(1, 2), gcn.static_adj[:, :, None]))  # conv over the N node channels
    static = leaky(F.conv1d(static.transpose(1, 2), gcn.static_weight.weight[:, :, None], gcn.static_weight.bias))
    x = v + static  # [B, D, N]
    glb = F.conv1d(x.mean(dim=2, keepdim=True), gcn.global_proj.weight[:, :, None], gcn.global_proj.bias)
    glb = leaky(F.batch_norm(glb, gcn.global_norm.running_mean.clone(), gcn.global_norm.running_var.clone(),
                             gcn.global_norm.weight, gcn.global_norm.bias, model.training, 0.0, gcn.global_norm.eps))
    adj = torch.sigmoid(F.conv1d(torch.cat([glb.expand_as(x), x], dim=1), gcn.adjacency_head.weight[:, :, None],
                                 gcn.adjacency_head.bias))  # [B, N (the conv's outputs), N (positions: nodes)]
    z = leaky(F.conv1d(leaky(x @ adj), gcn.dynamic_weight.weight[:, :, None], gcn.dynamic_weight.bias))  # [B, D, N]
    out2 = F.conv1d(v + z, model.out_weight[:, :, None], model.out_bias)  # [B, N, N]
    out2 = (out2 * torch.eye(out2.shape[1])).sum(-1)  # [B, N]: class k's linear on node k
    return (out1 + out2) / 2


@pytest.mark.parametrize("training", [False, True])
def test_addgcn_forward_equals_the_released_code_written_channel_major(training):
    model = _build("add_gcn", _info(np.tile(HAND_MADE, (2, 1))))
    with torch.no_grad():  # non-trivial BatchNorm statistics and weights, so that every term shows
        model.gcn.global_norm.running_mean.uniform_(-0.5, 0.5)
        model.gcn.global_norm.running_var.uniform_(0.5, 2.0)
        model.gcn.global_norm.weight.uniform_(0.5, 1.5)
    model.train(training)
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = model.backbone(images)
        ours = model(images)["logits"]
        model.train(training)  # the reference reads model.training
        reference = _released_addgcn_forward(model, features)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_addgcn_trains_on_a_last_batch_of_one_image():
    model = _build("add_gcn").train()
    images = torch.randn(1, 3, 32, 32)
    out = model(images, torch.ones(1, 4))
    assert torch.isfinite(out["logits"]).all()


# ----------------------------------------------------------------------------------------------------------------
# CNN-RNN
# ----------------------------------------------------------------------------------------------------------------

def test_frequency_order_most_frequent_first_ties_by_index():
    targets = np.array([[1, 1, 0, 1], [0, 1, -1, 1], [0, 1, -1, 0]], dtype=np.int8)  # counts 1, 3, 0, 2
    np.testing.assert_array_equal(frequency_order(targets), [1, 3, 0, 2])
    np.testing.assert_array_equal(frequency_order(np.zeros((2, 3), np.int8)), [0, 1, 2])


def test_target_sequences_follow_the_frequency_order_then_end():
    model = _build("cnn_rnn")  # frequency order of HAND_MADE: A (4), B (2), C (1), D (0) -> END is token 4
    targets = torch.tensor([[0, 1, 1, 1], [1, -1, 0, 0], [0, 0, 0, 0]])
    expected = torch.tensor([[1, 2, 3, 4], [0, 4, IGNORE, IGNORE], [4, IGNORE, IGNORE, IGNORE]])
    torch.testing.assert_close(model.target_sequences(targets), expected)
    reordered = _build("cnn_rnn", _info(HAND_MADE[:, ::-1].copy()))  # counts 0, 1, 2, 4: order 3, 2, 1, 0
    torch.testing.assert_close(reordered.target_sequences(torch.tensor([[1, 1, 0, 0]]))[0], torch.tensor([1, 0, 4]))


def test_teacher_forcing_gives_a_finite_loss_that_replaces_the_bce_and_never_beam_searches(monkeypatch):
    model = _build("cnn_rnn").train()

    def no_beam_search(*args, **kwargs):
        raise AssertionError("the training step must not run beam search")

    monkeypatch.setattr(model, "beam_search", no_beam_search)
    targets = torch.tensor([[1, 1, 0, 0], [1, -1, 0, 1], [0, 0, 0, 0]], dtype=torch.float32)
    out = model(torch.randn(3, 3, 32, 32), targets)
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    assert training_loss(out, targets) is out["loss"]
    assert out["logits"].shape == (3, 4) and torch.isfinite(out["logits"]).all()
    # The ignored label of image 2 counts as absent: same sequence as with a 0 there.
    torch.testing.assert_close(model.target_sequences(targets)[1], model.target_sequences(targets.clamp_min(0))[1])


def test_beam_search_scores_every_label_in_zero_one_without_targets():
    model = _build("cnn_rnn", cnnrnn_beam=3).eval()
    images = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    scores, decoded = model.decode(images)
    assert scores.shape == (5, 4) and decoded.shape == (5, 4)
    assert ((scores >= 0) & (scores <= 1)).all() and (scores > 0).all()
    torch.testing.assert_close(torch.sigmoid(model(images)["logits"]), scores.clamp(1e-6, 1 - 1e-6))


def test_cnn_rnn_learns_to_decode_a_trivial_toy():
    """Label c is present iff colour channel c is bright: all 8 label sets of 3 labels decode exactly after training."""
    subsets = torch.tensor([[(s >> c) & 1 for c in range(3)] for s in range(8)], dtype=torch.float32)  # [8, 3]
    gen = torch.Generator().manual_seed(0)
    images = (subsets * 4 - 2)[:, :, None, None] + 0.1 * torch.randn(8, 3, 16, 16, generator=gen)  # [8, 3, 16, 16]
    info = _info(subsets.numpy().astype(np.int8), names=("r", "g", "b"))
    model = _build("cnn_rnn", info)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(150):
        loss = model(images, subsets)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    scores, decoded = model.decode(images)
    torch.testing.assert_close(decoded.float(), subsets)
    assert (scores[subsets == 1] > 0.5).all()
    # Evaluation's predictions are exactly these label sets (forward's "decisions"), and its F1s come from them.
    out = model(images)
    assert torch.equal(out["decisions"], decoded)
    from drmoe_repro import metrics

    result = metrics.compute_metrics(torch.sigmoid(out["logits"]).numpy(), subsets.numpy().astype(np.int8),
                                     ["r", "g", "b"], decisions=out["decisions"].numpy())
    assert metrics.headline(result)["OF1"] == 1.0 and metrics.headline(result)["CF1"] == 1.0


# ----------------------------------------------------------------------------------------------------------------
# Recipes
# ----------------------------------------------------------------------------------------------------------------

def _train_cfg(recipe, profile="demo"):
    config = load_config(DEFAULT_CONFIG)
    cfg = resolve_run(config, profile, "voc", "drmoe", 0)["train"]
    return {**cfg, "recipe": recipe}


def test_paper_recipe_is_adam_with_the_configs_lr_and_step_decay():
    train = _train_cfg("paper")
    model = _build("ml_gcn")
    recipe = build_recipe(model, "ml_gcn", train, steps_per_epoch=4)
    optimizer, scheduler = recipe.optimizer, recipe.scheduler
    assert type(optimizer) is torch.optim.Adam and recipe.grad_clip is None
    assert (recipe.loss, recipe.ema_decay, recipe.augment, recipe.scheduler_per_step) == ("bce", None, "paper", False)
    group = optimizer.param_groups[0]
    assert group["lr"] == train["lr"] and group["weight_decay"] == train["weight_decay"]
    epochs = train["epochs"]
    assert sorted(scheduler.milestones) == [round(f * epochs) for f in train["lr_milestones"]]


def test_published_mlgcn_recipe_is_sgd_with_a_ten_times_slower_backbone():
    model = _build("ml_gcn")
    recipe = build_recipe(model, "ml_gcn", _train_cfg("published"), steps_per_epoch=4)
    optimizer = recipe.optimizer
    assert type(optimizer) is torch.optim.SGD and recipe.grad_clip == 10.0
    head, backbone = optimizer.param_groups
    assert backbone["lr"] == pytest.approx(0.01) and head["lr"] == pytest.approx(0.1)
    assert backbone["momentum"] == 0.9 and head["weight_decay"] == 1e-4
    assert {id(p) for p in backbone["params"]} == {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in head["params"]} == {id(model.gc1.weight), id(model.gc2.weight)}


def test_published_addgcn_recipe_decays_after_epochs_31_and_41_of_50_as_its_trainer_does():
    """ADD-GCN's trainer.py:143-147 sets the lr before it updates self.epoch, so epoch e trains at the lr decided by
    e - 1: 31 epochs at 0.05, 10 at 0.005, 9 at 0.0005 (hand-counted from main.py's epoch_step [30, 40])."""
    run = resolve_run(load_config(DEFAULT_CONFIG), "paper", "coco", "add_gcn_published", 0)
    recipe = build_recipe(_build("add_gcn"), "add_gcn", run["train"], steps_per_epoch=4)
    assert recipe.grad_clip == 10.0 and recipe.augment == "addgcn"
    lrs = []
    for _ in range(run["train"]["epochs"]):
        lrs.append(recipe.optimizer.param_groups[0]["lr"])
        recipe.optimizer.step()
        recipe.scheduler.step()
    assert [round(lr, 6) for lr in lrs] == [0.05] * 31 + [0.005] * 10 + [0.0005] * 9


def test_published_q2l_recipe_is_adamw_one_cycle_per_step_asl_ema_and_its_augmentation():
    train = {**_train_cfg("published"), "epochs": 2}
    recipe = build_recipe(_build("q2l"), "q2l", train, steps_per_epoch=5)
    optimizer = recipe.optimizer
    assert type(optimizer) is torch.optim.AdamW and optimizer.param_groups[0]["weight_decay"] == 1e-2
    assert (recipe.loss, recipe.ema_decay, recipe.augment, recipe.scheduler_per_step) == ("asl", 0.9997, "q2l", True)
    lrs = []
    for _ in range(10):  # 2 epochs x 5 steps: the scheduler steps after every optimiser step
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        recipe.scheduler.step()
    # The peak after 20 % of the 10 steps (torch ends the warm-up phase at step pct_start * total - 1 = 1).
    assert max(lrs) == pytest.approx(1e-4) and lrs.index(max(lrs)) == 1
    assert lrs[0] == pytest.approx(1e-4 / 25) and lrs[-1] < 1e-5


def test_published_schedules_are_the_authors_on_the_paper_profile_and_the_profiles_on_the_demo():
    config = load_config(DEFAULT_CONFIG)

    def schedule(profile, system):
        run = resolve_run(config, profile, "coco", system, 0)
        train = run["train"]
        return train["epochs"], train["lr_milestones"], run["data"]["batch_size"], train.get("drop_last", False)

    # Query2Label README.md:51-60 and main_mlc.py:301; ML-GCN demo_coco_gcn.py:15-23; ADD-GCN main.py:17-20 and
    # data/__init__.py:149.
    assert schedule("paper", "q2l_published")[::2] == (80, 64) and schedule("paper", "q2l_published")[3] is True
    assert schedule("paper", "ml_gcn_published") == (20, [], 16, False)
    assert schedule("paper", "add_gcn_published") == (50, [0.62, 0.82], 16, True)
    for system in ("q2l", "ml_gcn", "add_gcn", "drmoe"):  # the paper's common recipe: the profile's schedule
        assert schedule("paper", system) == (50, [0.6, 0.8], 32, False)
    demo = config["profiles"]["demo"]
    for system in ("q2l_published", "ml_gcn_published", "add_gcn_published"):
        assert schedule("demo", system) == (demo["train"]["epochs"], demo["train"]["lr_milestones"],
                                            demo["datasets"]["coco"]["batch_size"], False)
    assert "published_schedule" not in resolve_run(config, "paper", "coco", "q2l_published", 0)["train"]
    # The operative schedule and the documented recipe (engine/recipes.py, with its sources) say the same.
    q2l = PUBLISHED_SCHEDULES["q2l"]
    assert (q2l["epochs"], q2l["drop_last"]) == (Q2L_PUBLISHED_RECIPE["epochs"][0], Q2L_PUBLISHED_RECIPE["drop_last"][0])
    assert Q2L_PUBLISHED_RECIPE["batch_size"][0].startswith(f"{q2l['batch_size']} on one GPU")


def test_published_mlgcn_schedule_keeps_the_lr_for_its_20_epochs():
    run = resolve_run(load_config(DEFAULT_CONFIG), "paper", "coco", "ml_gcn_published", 0)
    recipe = build_recipe(_build("ml_gcn"), "ml_gcn", run["train"], steps_per_epoch=4)
    assert recipe.augment == "mlgcn"
    for _ in range(run["train"]["epochs"]):
        recipe.optimizer.step()
        recipe.scheduler.step()
    assert [g["lr"] for g in recipe.optimizer.param_groups] == pytest.approx([0.1, 0.01])


def test_published_recipe_of_drmoe_and_cnn_rnn_is_the_papers():
    train = _train_cfg("published")
    for name in ("drmoe", "cnn_rnn"):
        model = _build("plain")
        recipe = build_recipe(model, name, train, steps_per_epoch=4)
        assert type(recipe.optimizer) is torch.optim.Adam and recipe.grad_clip is None
        assert recipe.optimizer.param_groups[0]["lr"] == train["lr"]


@pytest.mark.parametrize("name", ["ml_gcn", "add_gcn", "q2l"])
def test_published_recipe_state_survives_a_weights_only_checkpoint(tmp_path, name):
    """Resuming a run loads optimizer and scheduler state with torch.load(weights_only=True)."""
    train = _train_cfg("published")
    model = _build("ml_gcn")
    recipe = build_recipe(model, name, train, steps_per_epoch=4)
    optimizer, scheduler = recipe.optimizer, recipe.scheduler
    optimizer.step()
    for _ in range(3):
        scheduler.step()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    recipe2 = build_recipe(model, name, train, steps_per_epoch=4)
    optimizer2, scheduler2 = recipe2.optimizer, recipe2.scheduler
    optimizer2.load_state_dict(state["optimizer"])
    scheduler2.load_state_dict(state["scheduler"])
    for opt, sched in ((optimizer, scheduler), (optimizer2, scheduler2)):
        opt.step()
        sched.step()
    assert [g["lr"] for g in optimizer2.param_groups] == [g["lr"] for g in optimizer.param_groups]


@pytest.mark.parametrize("recipe, name", [("paper", "drmoe"), ("published", "ml_gcn"), ("published", "q2l")])
def test_fused_optimizer_takes_the_same_steps_as_the_default_one(recipe, name):
    """`fused_optimizer: true` changes the kernels, not the update rule: five steps agree to float32 rounding."""
    weights = []
    for fused in (False, True):
        torch.manual_seed(0)
        model = _build("ml_gcn")
        initial = [p.detach().clone() for p in model.parameters()]
        optimizer = build_recipe(model, name, {**_train_cfg(recipe), "fused_optimizer": fused}, 4).optimizer
        assert bool(optimizer.defaults.get("fused")) is fused
        for step in range(5):
            optimizer.zero_grad()
            torch.manual_seed(step)
            sum((p * torch.randn_like(p)).sum() for p in model.parameters()).backward()
            optimizer.step()
        weights.append([p.detach().clone() for p in model.parameters()])
        assert all(not torch.equal(a, b) for a, b in zip(initial, weights[-1]))  # every tensor took steps
    for default, fused in zip(*weights, strict=True):
        torch.testing.assert_close(fused, default, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# ML-GCN's and ADD-GCN's training transform (their published recipes)
# ----------------------------------------------------------------------------------------------------------------


def test_multiscale_crop_pairs_and_grid_are_ml_gcns():
    crop = MultiScaleCrop(448)
    # 640 x 480: sides int(480 * s) = 480, 420, 360, 316, 240; (w, h) pairs at most 2 scale steps apart, h outer.
    sides = [480, 420, 360, 316, 240]
    pairs = crop.crop_pairs(480, 640)
    assert pairs == [(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= 2]
    assert len(pairs) == 3 + 4 + 5 + 4 + 3 and pairs[:4] == [(480, 480), (420, 480), (360, 480), (480, 420)]
    # A side within 3 px of S becomes S: 450 -> 448 (and 512's 448 stays).
    assert crop.crop_pairs(450, 700)[0] == (448, 448) and crop.crop_pairs(512, 512)[0] == (512, 512)
    assert [w for w, _ in crop.crop_pairs(512, 512)[:3]] == [512, 448, 384]
    # A 360 x 420 crop of 640 x 480: steps (640 - 360) // 4 = 70 and (480 - 420) // 4 = 15, in fill_fix_offset's order.
    assert crop.grid_offsets(480, 640, 360, 420) == [
        (0, 0), (280, 0), (0, 60), (280, 60), (140, 30), (0, 30), (280, 30), (140, 60), (140, 0),
        (70, 15), (210, 15), (70, 45), (210, 45)]


@pytest.mark.parametrize("height, width", [(480, 640), (446, 600)])  # 446: the 448 px crop reaches past the image
def test_multiscale_crop_cuts_the_drawn_box_as_pil_crops_it_then_resizes(height, width):
    from PIL import Image
    from torchvision.transforms import v2

    image = torch.randint(1, 256, (3, height, width), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    crop = MultiScaleCrop(448)
    pairs = crop.crop_pairs(height, width)
    reached_outside = 0
    for seed in range(48):  # seeds 39, 40, 44 and 45 draw a 448 px tall crop of the 446-row image
        torch.manual_seed(seed)
        w, h = pairs[int(torch.randint(len(pairs), ()))]
        left, top = crop.grid_offsets(height, width, w, h)[int(torch.randint(13, ()))]
        box = torch.from_numpy(np.array(pil.crop((left, top, left + w, top + h)))).permute(2, 0, 1)  # zeros outside
        reached_outside += top < 0 or top + h > height
        torch.manual_seed(seed)
        out = crop(image)
        assert out.shape == (3, 448, 448) and out.dtype == torch.uint8
        assert torch.equal(out, v2.functional.resize(box, [448, 448], antialias=True))
    assert (reached_outside > 0) == (height < 448)  # the zero fill was compared with PIL's where it happens


def test_recipe_transforms_are_the_authors():
    cfg = {"image_size": 64, "augment": {"crop_scale": [0.08, 1.0], "hflip": True, "color_jitter": 0.4}}
    steps = {name: [type(t).__name__ for t in build_recipe_train_transform(name, cfg).transforms]
             for name in ("paper", "q2l", "mlgcn", "addgcn")}
    assert steps["mlgcn"] == ["MultiScaleCrop", "RandomHorizontalFlip", "ToDtype", "Normalize"]
    assert steps["addgcn"] == ["Resize", *steps["mlgcn"]]
    assert build_recipe_train_transform("addgcn", cfg).transforms[0].size == [128, 128]  # S + 64, ADD-GCN's
    assert steps["paper"][:3] == ["RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter"]
    assert steps["q2l"][1:3] == ["Q2LCutout", "PackageRandAugment"]
    with pytest.raises(ValueError, match="augmentation 'gcn' is not known"):
        build_recipe_train_transform("gcn", cfg)
