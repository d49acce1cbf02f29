"""Load, validate and resolve the one config file (workflow/config.yaml).

Validation runs before any work and turns jsonschema's errors into messages that name the key, the value and
what is allowed, e.g. ``profiles.demo.model.classifier: 'perlabel' is not allowed; allowed values: 'shared',
'per_label'``. `resolve_run` merges a profile, a data set and a system into the flat dict one training run uses,
which is also written to run.json.
"""

from __future__ import annotations

import copy
from pathlib import Path
import jsonschema
import yaml

DEFAULT_CONFIG = Path("workflow/config.yaml")


class ConfigError(ValueError):
    """The config file is malformed; the message names the file, the key and the allowed values."""


def schema_path_for(config_path: Path) -> Path:
    # The schema lives beside the config (workflow/schemas/), where Snakemake users expect it.
    return Path(config_path).parent / "schemas" / "config.schema.yaml"


def load_schema(config_path: Path = DEFAULT_CONFIG) -> dict:
    with open(schema_path_for(config_path), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _key_path(parts) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error.absolute_path)
    schema = error.schema
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"{where}: unknown key(s) {unknown}; allowed keys: {', '.join(allowed)}"
    if error.validator == "enum":
        allowed = ", ".join(repr(v) for v in schema["enum"])
        return f"{where}: {error.instance!r} is not allowed; allowed values: {allowed}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def validate(config: dict, schema: dict, source: str = str(DEFAULT_CONFIG)) -> None:
    """Raise ConfigError listing every schema violation, then check what a schema cannot express."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = "\n  ".join(_describe(e) for e in errors)
        raise ConfigError(f"{source} is not valid:\n  {lines}")
    for name, profile in config["profiles"].items():
        model = profile["model"]
        if model["d_model"] % model["n_heads"]:
            raise ConfigError(
                f"{source}: profiles.{name}.model: d_model={model['d_model']} is not divisible by "
                f"n_heads={model['n_heads']}"
            )
        milestones = profile["train"]["lr_milestones"]
        if milestones != sorted(milestones):
            raise ConfigError(f"{source}: profiles.{name}.train.lr_milestones must be increasing, got {milestones}")
        if profile.get("runs_per_gpu", 1) > 1 and profile["gpus_per_run"] != 1:
            raise ConfigError(f"{source}: profiles.{name}.runs_per_gpu={profile['runs_per_gpu']} shares a GPU between "
                              f"runs, so gpus_per_run must be 1 (got {profile['gpus_per_run']})")


def load_config(path: str | Path = DEFAULT_CONFIG, overrides: dict | None = None) -> dict:
    """Read and validate the config. `overrides` are top-level keys (e.g. {"profile": "paper"})."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(config).__name__}")
    config.update(overrides or {})
    validate(config, load_schema(path), source=str(path))
    return config


def profile_of(config: dict, profile: str | None = None) -> dict:
    name = profile or config["profile"]
    if name not in config["profiles"]:
        raise ConfigError(f"profile {name!r} is not defined; defined profiles: {', '.join(config['profiles'])}")
    return config["profiles"][name]


def resolve_run(config: dict, profile: str, dataset: str, system: str, seed: int) -> dict:
    """Everything one (profile, data set, system, seed) run needs, as one plain dict."""
    prof = profile_of(config, profile)
    if dataset not in prof["datasets"]:
        raise ConfigError(f"data set {dataset!r} is not in profiles.{profile}.datasets; "
                          f"defined: {', '.join(prof['datasets'])}")
    if system not in config["systems"]:
        raise ConfigError(f"system {system!r} is not in systems; defined: {', '.join(config['systems'])}")
    from drmoe_repro.models.registry import model_config_for

    spec = config["systems"][system]
    model = copy.deepcopy(prof["model"])
    model.update(spec.get("overrides", {}))
    model = model_config_for(spec["model"], model)  # only the keys this model reads
    return {
        "profile": profile,
        "dataset": dataset,
        "system": system,
        "model_name": spec["model"],
        "seed": int(seed),
        "device": prof["device"],
        "torch_threads": prof["torch_threads"],
        "data": copy.deepcopy(prof["datasets"][dataset]),
        "input": copy.deepcopy(prof["input"]),
        "model": model,
        "train": {**copy.deepcopy(prof["train"]), **({"recipe": spec["recipe"]} if "recipe" in spec else {})},
    }


def results_dir(profile: str) -> Path:
    return Path("results") / profile


def run_dir(profile: str, dataset: str, system: str, seed: int) -> Path:
    """DESIGN.md's run directory: results/<profile>/runs/<dataset>/<model>/seed<k>/."""
    return results_dir(profile) / "runs" / dataset / system / f"seed{seed}"


def index_path(profile: str, dataset: str, split: str) -> Path:
    """Where `prepare` writes the label index of one split ("train" or "test")."""
    return results_dir(profile) / "index" / dataset / f"{split}.npz"
