"""The pip requirements and the conda environment pin the same versions."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{line!r} is not pinned with =="
            pins[name.lower()] = version
    return pins


def test_conda_env_pins_what_requirements_pin():
    pip_pins = _pins((ROOT / "envs" / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "envs" / "drmoe.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert _pins(pip_section) == pip_pins
    assert {"torch", "torchvision", "snakemake", "dvc", "pycocotools"} <= set(pip_pins)
    assert pip_pins["torch"] == "2.14.1" and pip_pins["torchvision"] == "0.29.1"


def test_installed_versions_match_the_pins():
    from importlib import metadata

    for name, version in _pins((ROOT / "envs" / "requirements.txt").read_text().splitlines()).items():
        assert metadata.version(name) == version, f"{name} {metadata.version(name)} installed, {version} pinned"
