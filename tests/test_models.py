"""Shape and property tests for every registered model (parametrised over the registry, as timm does)."""

import copy

import numpy as np
import pytest
import torch

from drmoe_repro.config import DEFAULT_CONFIG, load_config, resolve_run
from drmoe_repro.engine.train import masked_bce
from drmoe_repro.models import MODELS, DataInfo, build_model
from drmoe_repro.model_keys import MODEL_KEYS

NUM_LABELS = 6
IMAGE = 32

# A tiny configuration of the demo profile's model block, so every test runs in a second on a CPU.
TINY = {
    "backbone": "tiny_cnn", "pretrained": False, "d_model": 16, "n_heads": 2, "n_enc": 1, "n_dec": 1, "ffn_dim": 32,
    "dropout": 0.0, "n_shared": 3, "expert_hidden": 12, "expert_layers": 1, "gate_hidden": 10,
    "classifier": "shared", "entropy_lambda": 0.01, "entropy_sign": "equation",
    "label_embedding": "random", "mlgcn_hidden": 24, "mlgcn_tau": 0.4, "mlgcn_p": 0.25, "mlgcn_reweight": "published",
    "addgcn_dim": 16, "cnnrnn_embed": 16, "cnnrnn_hidden": 32, "cnnrnn_beam": 2,
}


def _data_info():
    rng = np.random.default_rng(0)
    targets = (rng.random((40, NUM_LABELS)) < 0.3).astype(np.int8)
    return DataInfo(label_names=tuple(f"label{i}" for i in range(NUM_LABELS)), train_targets=targets)


def _build(name, **overrides):
    torch.manual_seed(0)
    return build_model(name, {**TINY, **overrides}, _data_info())


def _batch(batch=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, IMAGE, IMAGE, generator=gen)
    targets = (torch.rand(batch, NUM_LABELS, generator=gen) < 0.4).float()
    return images, targets


def _loss(out, targets):
    return masked_bce(out["logits"], targets) + out.get("aux_loss", 0.0)


MODEL_NAMES = sorted(MODELS)
MOE_MODELS = ["drmoe", "hsq_static"]


def test_registry_holds_every_system_of_the_papers_tables():
    assert {"cnn_rnn", "ml_gcn", "add_gcn", "q2l", "hsq_static", "drmoe"} <= set(MODELS)


def test_the_registry_and_the_torch_free_key_list_agree():
    from drmoe_repro.model_keys import known_models

    assert sorted(MODELS) == known_models()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_declared_config_key_exists_in_the_schema_and_profiles(name):
    """A model reads only keys it declares (resolve_run passes no others), and every one is a real config key."""
    config = load_config(DEFAULT_CONFIG)
    for profile in ("demo", "paper"):
        block = config["profiles"][profile]["model"]
        missing = [k for k in MODEL_KEYS[name] if k not in block]
        assert not missing, f"{name} reads {missing}, absent from profiles.{profile}.model"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shapes(name):
    model = _build(name).eval()
    images, _ = _batch(batch=3)
    out = model(images)
    assert out["logits"].shape == (3, NUM_LABELS)
    assert torch.isfinite(out["logits"]).all()
    if "gates" in out:
        assert out["gates"].shape == (3, NUM_LABELS, TINY["n_shared"] + 1)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_parameter_gets_a_gradient(name):
    model = _build(name).train()
    images, targets = _batch()
    _loss(model(images, targets), targets).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_loss_falls_over_20_steps_on_a_tiny_batch(name):
    model = _build(name).train()
    images, targets = _batch(batch=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = _loss(model(images, targets), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_builds_from_both_profiles_of_the_config(name):
    config = load_config(DEFAULT_CONFIG)
    system = next((s for s, spec in config["systems"].items() if spec["model"] == name), None)
    assert system is not None, f"model {name} is registered but no system in workflow/config.yaml uses it"
    cfg = resolve_run(config, "demo", "voc", system, 0)
    model = build_model(cfg["model_name"], cfg["model"], _data_info()).eval()
    out = model(torch.randn(2, 3, 64, 64))
    assert out["logits"].shape == (2, NUM_LABELS)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_model_built_without_initialisation_then_loaded_is_the_model_it_was_loaded_from(name):
    """What `load_trained_model` does: build with init_weights=False, then a strict load. Every parameter and buffer
    (the non-persistent ones, which the state dict does not hold, included) and the outputs must be the trained
    model's, bit for bit."""
    trained = _build(name).eval()
    for param in trained.parameters():  # weights that no initialiser would give
        param.data.add_(0.01 * torch.randn_like(param))
    loaded = build_model(name, TINY, _data_info(), init_weights=False).eval()
    loaded.load_state_dict(trained.state_dict())
    for (key, want), (other, got) in zip([*trained.named_parameters(), *trained.named_buffers()],
                                         [*loaded.named_parameters(), *loaded.named_buffers()], strict=True):
        assert key == other and torch.equal(want, got), key
    images, _ = _batch()
    with torch.no_grad():
        expected, actual = trained(images), loaded(images)
    for key in expected:
        if isinstance(expected[key], torch.Tensor):
            assert torch.equal(expected[key], actual[key]), key


def test_building_without_initialisation_skips_torchs_initialisers_and_puts_them_back():
    initialisers = {name: getattr(torch.nn.init, name) for name in ("kaiming_uniform_", "xavier_uniform_", "ones_")}
    small_q2l = {**TINY, "q2l_hidden": 16, "q2l_heads": 2, "q2l_enc": 1, "q2l_dec": 1, "q2l_ffn": 32}
    states = []
    for init_weights in (True, False):
        torch.manual_seed(0)
        build_model("q2l", small_q2l, _data_info(), init_weights=init_weights)
        states.append(torch.random.get_rng_state())
    assert not torch.equal(*states)  # the initialisers' draws were skipped (the model's own few remain)
    assert {name: getattr(torch.nn.init, name) for name in initialisers} == initialisers
    with pytest.raises(KeyError):  # a failing build puts them back too
        build_model("no_such_model", TINY, _data_info(), init_weights=False)
    assert {name: getattr(torch.nn.init, name) for name in initialisers} == initialisers


@pytest.mark.parametrize("name", MOE_MODELS)
def test_gate_rows_sum_to_one(name):
    out = _build(name).eval()(_batch()[0])
    torch.testing.assert_close(out["gates"].sum(-1), torch.ones(4, NUM_LABELS))
    assert (out["gates"] >= 0).all()


def test_dynamic_gates_differ_between_images_and_static_gates_do_not():
    images = torch.stack([_batch(1, seed=1)[0][0], _batch(1, seed=2)[0][0]])
    dynamic = _build("drmoe").eval()(images)["gates"]
    # Two images give different weights even at initialisation (small, as the weights are); static gates never do.
    assert (dynamic[0] - dynamic[1]).abs().max() > 1e-6
    static = _build("hsq_static").eval()(images)["gates"]
    torch.testing.assert_close(static[0], static[1])


@pytest.mark.parametrize("name", MOE_MODELS)
@pytest.mark.parametrize("expert_layers", [1, 2])
def test_gradients_reach_every_expert_and_every_gate(name, expert_layers):
    model = _build(name, expert_layers=expert_layers).train()
    images, targets = _batch()
    _loss(model(images, targets), targets).backward()
    experts = model.experts
    shared = experts.shared_w1.grad.abs().sum(dim=(1, 2))  # [N_s]: one total per shared expert
    task = experts.task_w1.grad.abs().sum(dim=(1, 2))  # [L]: one total per label's own expert
    assert (shared > 0).all() and (task > 0).all()
    if name == "drmoe":
        gate_grads = model.gates.w2.grad.abs().sum(dim=(1, 2))  # [L]: one per label's gate
    else:
        gate_grads = model.gates.logits.grad.abs().sum(dim=1)
    assert (gate_grads > 0).all()


def test_entropy_term_sign_follows_the_option():
    images, _ = _batch()
    as_printed = _build("drmoe", entropy_sign="equation").eval()(images)
    as_described = _build("drmoe", entropy_sign="text").eval()(images)
    assert as_printed["aux_loss"] > 0  # eq 11 adds +lambda*H: minimising it sharpens the gates
    torch.testing.assert_close(as_described["aux_loss"], -as_printed["aux_loss"])
    gates = as_printed["gates"]
    entropy = -(gates * gates.log()).sum(-1).mean()
    torch.testing.assert_close(as_printed["aux_loss"], 0.01 * entropy)


@pytest.mark.parametrize("name", MOE_MODELS)
def test_the_two_entropy_signs_give_opposite_gradients_on_the_gate_logits(name):
    """Eq 11 as printed and as §3.9 describes it push the gate logits in opposite directions (the auxiliary term
    alone; the BCE is left out so that only the sign differs)."""
    images, _ = _batch()
    grads = []
    for sign in ("equation", "text"):
        model = _build(name, entropy_sign=sign).train()
        if name == "hsq_static":  # its logits start at zero: uniform gates, where the entropy is flat
            model.gates.logits.data = torch.randn(model.gates.logits.shape, generator=torch.Generator().manual_seed(1))
        model(images)["aux_loss"].backward()
        grads.append(model.gates.w2.grad if name == "drmoe" else model.gates.logits.grad)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], -grads[0])


def test_experts_and_gates_are_batched_not_looped_over_labels():
    """Changing one label's task-expert weights changes only that label's logit (the einsum indexes labels)."""
    model = _build("drmoe").eval()
    images, _ = _batch(2)
    before = model(images)["logits"]
    with torch.no_grad():
        model.experts.task_w1[2] += torch.randn(model.experts.task_w1[2].shape, generator=torch.Generator().manual_seed(1))
    after = model(images)["logits"]
    changed = (after - before).abs().amax(dim=0) > 1e-6
    assert changed.tolist() == [i == 2 for i in range(NUM_LABELS)]


def test_fusion_is_the_gate_weighted_sum_of_expert_outputs():
    """Eq 8, o_i = sum_j w_ij s_ij + w_i t_i, checked against an explicit per-label computation."""
    model = _build("drmoe", classifier="per_label").eval()
    images, _ = _batch(2)
    with torch.no_grad():
        h = model.trunk(images)
        experts = model.experts(h)
        gates = model.gates(h)
        logits = model(images)["logits"]
        for i in range(NUM_LABELS):
            shared = [torch.relu(h[:, i] @ model.experts.shared_w1[j] + model.experts.shared_b1[j]) for j in range(3)]
            task = torch.relu(h[:, i] @ model.experts.task_w1[i] + model.experts.task_b1[i])
            torch.testing.assert_close(experts[:, i], torch.stack(shared + [task], dim=1))
            fused = sum(gates[:, i, j, None] * shared[j] for j in range(3)) + gates[:, i, 3, None] * task
            expected = fused @ model.classifier.weight[i] + model.classifier.bias[i]
            torch.testing.assert_close(logits[:, i], expected)


def test_paper_configuration_parameter_count_matches_a_count_by_hand():
    """DR-MoE at §3.11 (L = 80, D = 512, N_s = 4, H = G = 256) minus the shared parts, derived by hand."""
    config = load_config(DEFAULT_CONFIG)
    cfg = copy.deepcopy(config["profiles"]["paper"]["model"])
    cfg["pretrained"] = False
    info = DataInfo(label_names=tuple(str(i) for i in range(80)), train_targets=np.zeros((1, 80), np.int8))
    with torch.device("meta"):
        drmoe, trunk = build_model("drmoe", cfg, info), build_model("query_trunk", cfg, info)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    L, D, Ns, H, G = 80, 512, 4, 256, 256
    experts = Ns * (D * H + H) + L * (D * H + H)
    gates = L * (D * G + G) + L * (G * (Ns + 1) + (Ns + 1))
    classifier = H + 1
    trunk_head = L * D + L  # the "query trunk, no experts" ablation's per-label head
    assert count(drmoe) - count(trunk) == experts + gates + classifier - trunk_head
