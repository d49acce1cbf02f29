"""Load, merge, type, validate and resolve the one config (workflow/config.yaml plus the user's overrides).

* Validation runs before any work and turns jsonschema's errors into messages that name the key, the value and what
  is allowed, e.g. ``profiles.demo.model.classifier: 'perlabel' is not allowed; allowed values: 'shared',
  'per_label'``. The schema ships inside the package (config.schema.yaml), so a config anywhere validates.
* `coerce_types` gives values the type the schema asks for: Snakemake hands nested `--config` overrides over as
  strings ("1", "true"), which would otherwise fail validation or, worse, reach a job as text.
* `write_planned_config` writes the config the workflow planned with (the shipped file, `--configfile` deep-merged
  over it, `--config` on top) to a file named by its content; every job is handed that file, so the config that
  runs is the config that was planned.
* `resolve_run` merges a profile, a data set and a system into the flat dict one training run uses (run.json);
  `run_signature` is the part of it that changes a run's result, and `recipe_deviations` names the keys where a
  run departs from its profile as shipped.
"""

from __future__ import annotations

import copy
import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from drmoe_repro.layout import dataset_assets, model_assets, planned_config_dir
from drmoe_repro.model_keys import known_models, model_config_for

DEFAULT_CONFIG = Path("workflow/config.yaml")


class ConfigError(ValueError):
    """The config is malformed; the message names the file, the key and the allowed values."""


@lru_cache(maxsize=1)
def load_schema() -> dict:
    with resources.files("drmoe_repro").joinpath("config.schema.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


# ----------------------------------------------------------------------------------------------------------------
# Reading, merging, typing
# ----------------------------------------------------------------------------------------------------------------


def read_yaml_config(path: str | Path) -> dict:
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
    return config


def deep_merge(base: dict, overlay: dict) -> dict:
    """A copy of `base` with `overlay` merged in, mapping by mapping (as Snakemake merges --configfile files)."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_ref(schema: dict, root: dict) -> dict:
    while isinstance(schema, dict) and "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _types(schema: dict) -> set[str]:
    kind = schema.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def coerce_types(value: Any, schema: dict | None = None, root: dict | None = None) -> Any:
    """`value` with every string the schema wants as a number, boolean or null parsed as YAML (a copy).

    A string the schema accepts as a string is left alone, as is one whose parse has the wrong type: validation then
    names it.
    """
    root = load_schema() if root is None else root
    schema = _resolve_ref(root if schema is None else schema, root)
    if isinstance(value, dict):
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        return {key: coerce_types(item, properties.get(key, extra if isinstance(extra, dict) else {}), root)
                for key, item in value.items()}
    if isinstance(value, list):
        items = schema.get("items", {})
        return [coerce_types(item, items, root) for item in value]
    wanted = _types(schema)
    if isinstance(value, str) and wanted and "string" not in wanted:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if isinstance(parsed, str) and "number" in wanted:
            try:
                parsed = float(value)  # YAML 1.1 reads "2e-4" (no dot) as a string
            except ValueError:
                return value
        python_types = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None),
                        "array": list, "object": dict}
        if any(isinstance(parsed, python_types[t]) and not (t in ("integer", "number") and isinstance(parsed, bool))
               for t in wanted if t in python_types):
            return parsed
    return value


# ----------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------


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
    return f"{where}: {error.message}"


def _semantic_problems(config: dict) -> list[str]:
    """What the schema cannot express: cross-key rules, known models, assets that exist."""
    problems = []
    for system, spec in config["systems"].items():
        if spec["model"] not in known_models():
            problems.append(f"systems.{system}.model: {spec['model']!r} is not a known model; known models: "
                            f"{', '.join(known_models())}")
    for name, profile in config["profiles"].items():
        key = f"profiles.{name}"
        model = profile["model"]
        if model["d_model"] % model["n_heads"]:
            problems.append(f"{key}.model: d_model={model['d_model']} is not divisible by n_heads={model['n_heads']}")
        milestones = profile["train"]["lr_milestones"]
        if milestones != sorted(milestones):
            problems.append(f"{key}.train.lr_milestones must be increasing, got {milestones}")
        if profile.get("runs_per_gpu", 1) > 1 and profile["gpus_per_run"] != 1:
            problems.append(f"{key}.runs_per_gpu={profile['runs_per_gpu']} shares a GPU between runs, so "
                            f"gpus_per_run must be 1 (got {profile['gpus_per_run']})")
        assets = profile.get("assets", {})
        for dataset, spec in profile["datasets"].items():
            if spec["source"] != "assets":
                continue
            roles = spec.get("assets", {})
            needed = ("train", "test", "annotations") if spec["format"] == "coco" else ("train", "test")
            for role in needed:
                if role not in roles:
                    problems.append(f"{key}.datasets.{dataset}.assets: no {role!r} entry (a {spec['format']} data set "
                                    f"fetched as assets needs {', '.join(needed)})")
            for role, asset in roles.items():
                if asset not in assets:
                    problems.append(f"{key}.datasets.{dataset}.assets.{role}: {asset!r} is not in {key}.assets")
        for system, spec in config["systems"].items():
            if spec["model"] not in known_models():
                continue
            block = model_config_for(spec["model"], {**model, **spec.get("overrides", {})})
            for role, asset in model_assets(block).items():
                if asset not in assets:
                    why = "model.pretrained is true" if role == "backbone_weights" else "model.label_embedding is glove"
                    problems.append(f"{key}: system {system!r} needs the asset {asset!r} ({why}), which is not in "
                                    f"{key}.assets")
    return problems


def validate(config: dict, source: str = str(DEFAULT_CONFIG)) -> None:
    """Raise ConfigError listing every schema violation, then every problem a schema cannot express."""
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = "\n  ".join(_describe(e) for e in errors)
        raise ConfigError(f"{source} is not valid:\n  {lines}")
    problems = _semantic_problems(config)
    if problems:
        raise ConfigError(f"{source} is not valid:\n  " + "\n  ".join(problems))


def load_config(path: str | Path = DEFAULT_CONFIG, overrides: dict | None = None) -> dict:
    """Read, type and validate the config. `overrides` are deep-merged over the file (e.g. {"profile": "paper"})."""
    config = coerce_types(deep_merge(read_yaml_config(path), overrides or {}))
    validate(config, source=str(path))
    return config


def prepare_planned_config(config: dict, source: str) -> dict:
    """The workflow's config, typed and validated in place (Snakemake's `config` object is shared by its rules)."""
    typed = coerce_types(config)
    config.clear()
    config.update(typed)
    validate(config, source=source)
    return config


def write_planned_config(config: dict) -> Path:
    """Write `config` to results/.planned/config-<hash>.yaml (content-named, so concurrent plans never collide)."""
    from drmoe_repro.io import write_text

    text = yaml.safe_dump(config, sort_keys=True, allow_unicode=True)
    path = planned_config_dir() / f"config-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text(path, text)
    return path


# ----------------------------------------------------------------------------------------------------------------
# Resolving one run
# ----------------------------------------------------------------------------------------------------------------


def profile_of(config: dict, profile: str | None = None) -> dict:
    name = profile or config["profile"]
    if name not in config["profiles"]:
        raise ConfigError(f"profile {name!r} is not defined; defined profiles: {', '.join(config['profiles'])}")
    return config["profiles"][name]


# The baselines' own training schedules (train.recipe: published), written into a run's config where the profile's
# train.published_schedule is true (the paper profile); elsewhere (the demo) a published recipe keeps the profile's
# epochs, milestones and batch size. Batch sizes are global (over every GPU of a run). The optimisers, losses and
# augmentations are in engine/recipes.py.
PUBLISHED_SCHEDULES = {
    # SlongLiu/query2labels README.md:51-60 (--epochs 80 --batch-size 64; the total over all GPUs, main_mlc.py:77-80),
    # drop_last main_mlc.py:301. OneCycleLR: no milestones.
    "q2l": {"epochs": 80, "batch_size": 64, "drop_last": True},
    # Megvii-Nanjing/ML-GCN demo_coco_gcn.py:15-18, :23: 20 epochs, the lr step at epoch 30 never comes, batch 16;
    # its DataLoader keeps the last short batch (engine.py:157-159). The README gives no training command.
    "ml_gcn": {"epochs": 20, "lr_milestones": [], "batch_size": 16},
    # Yejin0111/ADD-GCN main.py:17-20: 50 epochs, epoch_step [30, 40], batch 16, drop_last (data/__init__.py:149);
    # trainer.py:143-147 sets the lr before it updates the epoch, so the lr drops after 31 and 41 epochs.
    "add_gcn": {"epochs": 50, "lr_milestones": [31 / 50, 41 / 50], "batch_size": 16, "drop_last": True},
}


def resolve_run(config: dict, profile: str, dataset: str, system: str, seed: int) -> dict:
    """Everything one (profile, data set, system, seed) run needs, as one plain dict."""
    prof = profile_of(config, profile)
    if dataset not in prof["datasets"]:
        raise ConfigError(f"data set {dataset!r} is not in profiles.{profile}.datasets; "
                          f"defined: {', '.join(prof['datasets'])}")
    if system not in config["systems"]:
        raise ConfigError(f"system {system!r} is not in systems; defined: {', '.join(config['systems'])}")
    spec = config["systems"][system]
    model = model_config_for(spec["model"], {**prof["model"], **spec.get("overrides", {})})  # only the keys it reads
    train = {**copy.deepcopy(prof["train"]), **({"recipe": spec["recipe"]} if "recipe" in spec else {})}
    data = copy.deepcopy(prof["datasets"][dataset])
    published_schedule = train.pop("published_schedule", False)  # its effect is in the keys it sets below
    if train.get("recipe") == "published" and published_schedule and spec["model"] in PUBLISHED_SCHEDULES:
        schedule = dict(PUBLISHED_SCHEDULES[spec["model"]])
        data["batch_size"] = schedule.pop("batch_size")
        train.update(schedule)  # epochs, and where the authors set them lr_milestones and drop_last
    return {
        "profile": profile,
        "dataset": dataset,
        "system": system,
        "model_name": spec["model"],
        "seed": int(seed),
        "device": prof["device"],
        "torch_threads": prof["torch_threads"],
        "data": data,
        "input": deep_merge(prof["input"], spec.get("input", {})),
        "model": model,
        "train": train,
    }


# Keys of a resolved run that do not change its result: where files are, checks of the data's size, how many
# processes load it, how long to wait for them, what to keep on disk.
NON_RESULT_KEYS = {
    "data": ("root", "assets", "expected_images", "expected_images_with_unannotated"),
    "train": ("num_workers", "loader_timeout_s", "keep_checkpoint", "eval_every"),
}


def run_signature(run_cfg: dict) -> dict:
    """The part of a resolved run that changes its result: what Snakemake reruns on, and what deviations compare."""
    out = copy.deepcopy(run_cfg)
    for block, keys in NON_RESULT_KEYS.items():
        for key in keys:
            out[block].pop(key, None)
    return out


def assets_for_runs(config: dict, profile: str, runs: list[tuple[str, str, int]]) -> list[str]:
    """Every asset the given runs need: their data sets' (or the generated demo data) and what their model settings
    ask for (ImageNet weights, GloVe), sorted."""
    prof = profile_of(config, profile)
    names = set()
    for dataset, system, seed in runs:
        names.update(dataset_assets(prof, dataset).values())
        names.update(model_assets(resolve_run(config, profile, dataset, system, seed)["model"]).values())
    return sorted(names)


def index_signature(prof: dict, dataset: str) -> dict:
    """What changes a data set's label index (not where it is, how it is batched or how many images are expected)."""
    spec = prof["datasets"][dataset]
    keys = ("format", "source", "train_split", "test_split", "keep_unannotated", "demo_images")
    return {**{key: spec[key] for key in keys if key in spec},
            **({"demo_seed": prof["demo_seed"]} if spec["source"] == "demo" else {})}


def signature_text(run_cfg: dict) -> str:
    from drmoe_repro.io import dumps_json

    return dumps_json(run_signature(run_cfg))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def differing_keys(run_cfg: dict, reference_cfg: dict) -> list[str]:
    """Dotted keys (e.g. "train.epochs") whose values differ between two resolved runs' signatures."""
    ours, theirs = _flatten(run_signature(run_cfg)), _flatten(run_signature(reference_cfg))
    return sorted(k for k in set(ours) | set(theirs) if ours.get(k, "<absent>") != theirs.get(k, "<absent>"))


def expected_counts(prof: dict, dataset: str) -> dict | None:
    """The image counts a full copy of the data set has ({"train": n, "test": n}), or None if the profile sets none."""
    spec = prof["datasets"][dataset]
    key = "expected_images_with_unannotated" if spec.get("keep_unannotated") else "expected_images"
    return spec.get(key)
