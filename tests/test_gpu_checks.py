"""bench/gpu_checks.sh, checked on a CPU. No GPU has run it yet, and a session that gets one has 15 minutes of it,
so a mistake in the script must show here, not there: every step's arguments are accepted by the benchmark's own
parser and name registered models, each built as its system trains it; ONLY and SKIP run exactly the steps they
name (python3 and nvidia-smi are replaced by stubs that record their arguments), or stop before any work on a name
that is no step; a missing naive reference is said, and the other steps still run; a python3 that cannot start the
benchmark stops the script before any step, and wheels in .device/wheels are installed first."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from drmoe_repro.config import DEFAULT_CONFIG, load_config, resolve_run

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_checks.sh"


def _benchmark(monkeypatch: pytest.MonkeyPatch):
    """bench/train_throughput.py as a module (its dataclasses need it in sys.modules while it executes)."""
    spec = importlib.util.spec_from_file_location("train_throughput", ROOT / "bench" / "train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def _steps() -> dict[str, list[str]]:
    """Step name -> the benchmark's arguments, as the script's step() puts them together, in the script's order."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    fast = shlex.split(re.search(r"^fast=\((.*)\)$", text, re.MULTILINE).group(1))
    fixed = shlex.split(re.search(r"python3 bench/train_throughput\.py (.*?) \"\$@\"", text).group(1))
    steps = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["step"]:
            _, _seconds, name, *args = words
            steps[name] = fixed + [arg for word in args for arg in (fast if word == "${fast[@]}" else [word])]
    return steps


def test_every_step_is_accepted_by_the_benchmark_and_names_registered_models(monkeypatch):
    benchmark = _benchmark(monkeypatch)
    steps = _steps()
    assert len(steps) >= 6
    for name, argv in steps.items():
        try:
            args = benchmark.parse_args(argv)
        except SystemExit:
            pytest.fail(f"step {name}: bench/train_throughput.py refuses {argv}")
        assert args.device == "cuda" and args.out.name == "$name.csv", name
        assert args.models == "all" or set(args.models.split(",")) <= set(benchmark.MODELS), name
    # The target the suite has never measured: DR-MoE at batch 32 through the real data path, decoded on the GPU.
    target = benchmark.parse_args(steps["drmoe_real_nvjpeg"])
    assert (target.models, target.batch, target.data, target.decode) == ("drmoe", 32, "real", "device")
    assert target.compare_naive
    published = benchmark.parse_args(steps["q2l_batch64_memory"])
    assert (published.models, published.batch) == ("q2l", 64)


@pytest.mark.parametrize("profile", ["paper", "demo"])
def test_the_benchmark_builds_each_model_as_its_system_trains_it(profile, monkeypatch):
    """Each benchmarked model has the settings its own system trains with (Query2Label's width and FFN, ML-GCN's
    and ADD-GCN's hidden sizes, CNN-RNN's LSTM), not DR-MoE's block with the baselines' defaults; only the
    pretrained inputs are left out (they do not change the speed)."""
    bench = _benchmark(monkeypatch)
    config = load_config(DEFAULT_CONFIG)
    args = bench.parse_args(["--profile", profile])
    systems = {spec["model"]: name for name, spec in config["systems"].items() if set(spec) == {"model"}}
    assert set(systems) == set(bench.MODELS)  # every model is some system's, with no overrides
    for model, system in systems.items():
        benchmarked, input_cfg, _ = bench.model_config(args, model)
        trained = resolve_run(config, profile, "coco", system, 0)
        expected = {**trained["model"], "pretrained": False}
        if "label_embedding" in expected:
            expected["label_embedding"] = "random"
        assert benchmarked == expected, model
        assert input_cfg == trained["input"]
    assert args.labels == (80 if profile == "paper" else 20)


def _run(tmp_path: Path, only: str = "", skip: str = "", naive_reference: bool = True, wheels: bool = False,
         importable: bool = True) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run the script in a checkout-like folder with stub python3 and nvidia-smi; returns the result and what it ran,
    in order: "pip" (installing wheels), "preflight" (the benchmark's --help), "nvidia-smi", "versions" (of Python,
    PyTorch, torchvision and CUDA), then the steps.

    `importable=False`: the stub python3 fails as one missing a package would, on every benchmark call."""
    checkout, stubs, log = tmp_path / "checkout", tmp_path / "stubs", tmp_path / "calls.log"
    (checkout / "bench").mkdir(parents=True)
    shutil.copy(SCRIPT, checkout / "bench")
    if naive_reference:
        (checkout / ".device").mkdir()
        (checkout / ".device" / "naive_reference.py").write_text("")
    if wheels:
        (checkout / ".device" / "wheels").mkdir(parents=True)
        (checkout / ".device" / "wheels" / "jsonschema-4.26.0-py3-none-any.whl").write_text("")
    stubs.mkdir()
    for tool in ("python3", "nvidia-smi"):
        fail = "" if importable or tool != "python3" else \
            'case "$1" in bench/*) echo "ModuleNotFoundError: No module named jsonschema" >&2; exit 1;; esac\n'
        (stubs / tool).write_text(f'#!/bin/sh\necho "{tool} $* PYTHONPATH=$PYTHONPATH" >> "{log}"\n{fail}')
        (stubs / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}", "OUT": str(tmp_path / "out"),
           "ONLY": only, "SKIP": skip}
    result = subprocess.run(["bash", "bench/gpu_checks.sh"], cwd=checkout, env=env, capture_output=True, text=True,
                            timeout=60)
    ran = []
    for call in (log.read_text().splitlines() if log.exists() else []):
        words = call.split()
        if words[0] != "python3":
            ran.append(words[0])
        elif words[1:3] == ["-m", "pip"]:
            ran.append("pip")
        elif words[1].endswith("naive_reference.py"):
            ran.append("naive_reference")
        elif "--help" in words:
            ran.append("preflight")
        elif words[1] == "-c":
            ran.append("versions")
        else:
            ran.append(Path(words[words.index("--out") + 1]).stem)
    return result, ran


def test_only_and_skip_run_exactly_the_steps_they_name(tmp_path):
    every_step = ["naive_reference", *_steps()]
    cases = {
        "all": ({}, ["preflight", "nvidia-smi", "versions", *every_step]),
        "skip": ({"skip": "all_compiled"}, ["preflight", "nvidia-smi", "versions", *every_step[:-1]]),
        "only": ({"only": "q2l_batch64_memory naive_reference"},
                 ["preflight", "nvidia-smi", "versions", "naive_reference", "q2l_batch64_memory"]),
        "second_call": ({"only": "all_compiled"}, ["preflight", "nvidia-smi", "versions", "all_compiled"]),
    }
    assert every_step[-1] == "all_compiled"  # the slow step comes last, so SKIP=all_compiled is the first call
    for case, (selection, expected) in cases.items():
        (tmp_path / case).mkdir()
        result, ran = _run(tmp_path / case, **selection)
        assert result.returncode == 0, (case, result.stderr)
        assert ran == expected, case


def test_without_the_naive_reference_the_other_steps_run_and_the_script_says_where_it_goes(tmp_path):
    result, ran = _run(tmp_path, naive_reference=False)
    assert result.returncode == 0 and ran == ["preflight", "nvidia-smi", "versions", *_steps()]
    assert "no .device/naive_reference.py" in result.stderr


def test_a_name_that_is_no_step_stops_the_script_before_any_work(tmp_path):
    result, ran = _run(tmp_path, only="drmoe_real_nvjpg")
    assert result.returncode == 2 and ran == []
    assert "no step named 'drmoe_real_nvjpg'" in result.stderr and "drmoe_real_nvjpeg" in result.stderr


def test_a_python3_that_cannot_start_the_benchmark_stops_the_script_before_any_step(tmp_path):
    result, ran = _run(tmp_path, importable=False)
    assert result.returncode == 2 and ran == ["preflight"]
    assert "No module named jsonschema" in result.stderr and "cannot start with this python3" in result.stderr


def test_wheels_in_device_wheels_are_installed_first_and_on_the_path_of_every_step(tmp_path):
    result, ran = _run(tmp_path, only="q2l_batch64_memory", wheels=True)
    assert result.returncode == 0 and ran == ["pip", "preflight", "nvidia-smi", "versions", "q2l_batch64_memory"]
    calls = (tmp_path / "calls.log").read_text().splitlines()
    target = calls[0].split("--target ")[1].split()[0]
    assert "--no-index" in calls[0] and calls[0].split(" PYTHONPATH=")[0].endswith("jsonschema-4.26.0-py3-none-any.whl")
    assert all(call.endswith(f"PYTHONPATH=src:{target}") for call in calls[1:] if call.startswith("python3"))
