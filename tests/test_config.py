"""The one config file: it validates, and a wrong key or value stops with a message naming it."""

import copy

import pytest
import yaml

from drmoe_repro.config import DEFAULT_CONFIG, ConfigError, load_config, load_schema, resolve_run, validate


@pytest.fixture(scope="module")
def config():
    return load_config(DEFAULT_CONFIG)


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def test_shipped_config_is_valid_with_both_profiles(config):
    assert config["profile"] == "demo"
    assert set(config["profiles"]) == {"demo", "paper"}


def test_unknown_profile_names_key_and_allowed_values(config, schema):
    bad = copy.deepcopy(config)
    bad["profile"] = "papr"
    with pytest.raises(ConfigError, match=r"profile: 'papr' is not allowed; allowed values: 'demo', 'paper'"):
        validate(bad)


def test_bad_enum_value_deep_in_a_profile(config, schema):
    bad = copy.deepcopy(config)
    bad["profiles"]["demo"]["model"]["classifier"] = "perlabel"
    with pytest.raises(ConfigError) as err:
        validate(bad)
    assert "profiles.demo.model.classifier" in str(err.value)
    assert "'shared', 'per_label'" in str(err.value)


def test_misspelt_key_is_named_with_the_allowed_keys(config, schema):
    bad = copy.deepcopy(config)
    bad["profiles"]["paper"]["train"]["epoch"] = 3
    with pytest.raises(ConfigError) as err:
        validate(bad)
    message = str(err.value)
    assert "profiles.paper.train" in message and "'epoch'" in message and "epochs" in message


def test_wrong_type_is_named(config, schema):
    bad = copy.deepcopy(config)
    bad["profiles"]["demo"]["train"]["epochs"] = "ten"
    with pytest.raises(ConfigError, match=r"profiles\.demo\.train\.epochs: 'ten' is not of type 'integer'"):
        validate(bad)


def test_an_asset_size_must_be_a_byte_count(config, schema):
    bad = copy.deepcopy(config)
    bad["profiles"]["paper"]["assets"]["coco_train2014"]["size"] = "13 GB"
    with pytest.raises(ConfigError, match=r"profiles\.paper\.assets\.coco_train2014\.size: '13 GB' is not of type "
                                          r"'integer', 'null'"):
        validate(bad)


def test_heads_must_divide_width(config, schema):
    bad = copy.deepcopy(config)
    bad["profiles"]["demo"]["model"]["n_heads"] = 3
    with pytest.raises(ConfigError, match="not divisible by n_heads=3"):
        validate(bad)


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("profile: [unclosed\n")
    with pytest.raises(ConfigError, match=str(path)):
        load_config(path)


def test_cli_stops_before_any_work_on_a_bad_config(tmp_path, capsys):
    from drmoe_repro.cli import main

    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["profiles"]["demo"]["seeds"] = [-1]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    code = main(["prepare", "--config", str(tmp_path / "config.yaml"), "--dataset", "voc"])
    assert code == 2
    assert "profiles.demo.seeds.0: -1 is less than the minimum of 0" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_resolve_run_applies_system_overrides(config):
    base = resolve_run(config, "paper", "coco", "drmoe", 0)
    ablation = resolve_run(config, "paper", "coco", "drmoe_ns2", 1)
    assert base["model"]["n_shared"] == 4 and ablation["model"]["n_shared"] == 2
    assert ablation["model_name"] == "drmoe" and ablation["seed"] == 1
    assert config["profiles"]["paper"]["model"]["n_shared"] == 4  # overrides never leak into the config


def test_a_system_can_train_with_its_published_recipe(config):
    custom = copy.deepcopy(config)
    custom["systems"]["ml_gcn_published"] = {"model": "ml_gcn", "recipe": "published"}
    validate(custom)
    assert resolve_run(custom, "paper", "coco", "ml_gcn_published", 0)["train"]["recipe"] == "published"
    assert resolve_run(custom, "paper", "coco", "ml_gcn", 0)["train"]["recipe"] == "paper"


def test_paper_profile_holds_the_papers_hyper_parameters(config):
    """§3.11 and §4.1-4.2, value by value."""
    paper = config["profiles"]["paper"]
    model, train = paper["model"], paper["train"]
    assert (model["backbone"], model["pretrained"]) == ("resnet101", True)
    assert (model["n_enc"], model["n_dec"], model["d_model"], model["n_heads"]) == (2, 2, 512, 8)
    assert (model["n_shared"], model["expert_hidden"], model["gate_hidden"]) == (4, 256, 256)
    assert model["entropy_lambda"] == 0.01
    assert (train["epochs"], train["lr"], train["weight_decay"]) == (50, 1e-4, 1e-5)
    assert [round(f * train["epochs"]) for f in train["lr_milestones"]] == [30, 40]
    assert train["lr_gamma"] == 0.1
    assert paper["input"]["image_size"] == 448
    assert paper["datasets"]["coco"]["batch_size"] == 32 and paper["datasets"]["voc"]["batch_size"] == 16
