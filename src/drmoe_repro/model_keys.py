"""The models the suite can train, and the keys of the config's `model:` block each one reads.

Torch-free on purpose: config validation (an unknown model in `systems` is an error naming the key) and the
Snakemake workflow (a run's signature holds only the keys its model reads) need these facts without importing the
models. `models/registry.py` refuses to register a builder whose name is not listed here, and
tests/test_models.py checks that the two agree, so a new model is one builder plus one line below.
"""

from __future__ import annotations

# Keys shared by families of models.
BACKBONE_KEYS = ("backbone", "pretrained")
TRUNK_KEYS = BACKBONE_KEYS + ("d_model", "n_heads", "n_enc", "n_dec", "ffn_dim", "dropout")
MOE_KEYS = TRUNK_KEYS + ("n_shared", "expert_hidden", "expert_layers", "gate_hidden", "classifier",
                         "entropy_lambda", "entropy_sign")

MODEL_KEYS: dict[str, tuple[str, ...]] = {
    "cnn_rnn": BACKBONE_KEYS + ("cnnrnn_embed", "cnnrnn_hidden", "cnnrnn_beam"),
    "ml_gcn": BACKBONE_KEYS + ("label_embedding", "mlgcn_hidden", "mlgcn_tau", "mlgcn_p", "mlgcn_reweight"),
    "add_gcn": BACKBONE_KEYS + ("addgcn_dim",),
    "q2l": BACKBONE_KEYS + ("q2l_hidden", "q2l_heads", "q2l_enc", "q2l_dec", "q2l_ffn", "q2l_dropout"),
    "query_trunk": TRUNK_KEYS,
    "hsq_static": MOE_KEYS,
    "drmoe": MOE_KEYS,
    "plain": BACKBONE_KEYS,
}


def known_models() -> list[str]:
    return sorted(MODEL_KEYS)


def model_config_for(name: str, model_block: dict) -> dict:
    """The part of a profile's `model:` block that model `name` reads (optional keys may be absent)."""
    if name not in MODEL_KEYS:
        raise KeyError(f"model {name!r} is not known; known models: {', '.join(known_models())}")
    return {key: model_block[key] for key in MODEL_KEYS[name] if key in model_block}
