"""Import contracts between the layers, and a workflow that parses without the heavy stack.

models never import data or engine (the engine hands them tensors); paper never imports models, engine or torch
(it reads run files); metrics imports numpy and the standard library only (it sees arrays); layout and config, which
the Snakemake workflow and the DVC generator read, import neither torch, matplotlib nor pandas. Checked on every
module's own import statements (AST), and at run time in a fresh interpreter where torch cannot be imported.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from project import ROOT, copy_project, tool_env

PACKAGE = ROOT / "src" / "drmoe_repro"
STDLIB = set(sys.stdlib_module_names)


def imports_of(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports are not used in the package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def modules(package: str) -> list[Path]:
    folder = PACKAGE / package if package else PACKAGE
    return sorted(folder.glob("*.py")) if (folder / "__init__.py").exists() else [PACKAGE / f"{package}.py"]


FORBIDDEN = {
    "models": ("drmoe_repro.data", "drmoe_repro.engine", "drmoe_repro.paper", "drmoe_repro.commands"),
    "paper": ("drmoe_repro.models", "drmoe_repro.engine", "drmoe_repro.commands", "torch", "torchvision"),
    "layout": ("torch", "torchvision", "matplotlib", "pandas", "drmoe_repro.models", "drmoe_repro.engine"),
    "config": ("torch", "torchvision", "matplotlib", "pandas", "drmoe_repro.models", "drmoe_repro.engine"),
    "model_keys": ("torch", "drmoe_repro.models"),
}


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path.relative_to(ROOT)} imports {name}" for path in modules(package) for name in imports_of(path)
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_does_not_import_what_it_must_not(package):
    assert not _violations(package, FORBIDDEN[package])


def test_metrics_imports_numpy_and_the_standard_library_only():
    imported = imports_of(PACKAGE / "metrics.py")
    assert {name.split(".")[0] for name in imported} - STDLIB - {"numpy", "__future__"} == set()


def test_the_contract_check_finds_a_violation(tmp_path, monkeypatch):
    """The check can fail: a model module importing the data layer is reported."""
    fake = tmp_path / "drmoe_repro" / "models"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "bad.py").write_text("from drmoe_repro.data.images import read_rgb\nimport torch\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "drmoe_repro")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _violations("models", FORBIDDEN["models"]) == ["drmoe_repro/models/bad.py imports drmoe_repro.data.images"]


def _poisoned_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which importing torch, torchvision or matplotlib raises."""
    for name in ("torch", "torchvision", "matplotlib"):
        (tmp_path / "poison" / name).mkdir(parents=True)
        (tmp_path / "poison" / name / "__init__.py").write_text(f"raise ImportError('{name} was imported')\n")
    env = tool_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "poison"), str(ROOT / "src")])
    return env


def test_the_paper_layer_and_the_workflow_modules_import_without_torch(tmp_path):
    code = ("import drmoe_repro.layout, drmoe_repro.config, drmoe_repro.paper.tables, drmoe_repro.paper.per_class, "
            "drmoe_repro.paper.recipe_table, drmoe_repro.paper.ablations, drmoe_repro.paper.runs, "
            "drmoe_repro.paper.deviations, drmoe_repro.paper.provenance; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], env=_poisoned_env(tmp_path), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_the_test_suites_conftest_imports_without_torch(tmp_path):
    """Under `pytest -n` (make test) the controller process loads conftest.py and runs no test: torch imported there
    cost about 4 s before any worker started."""
    env = _poisoned_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(ROOT / "tests")])
    result = subprocess.run([sys.executable, "-c", "import conftest; print('ok')"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_a_dry_run_of_the_paper_profile_parses_without_torch_in_seconds(tmp_path):
    """Every `-n`, `--lint` and cluster job parses the workflow: it must not load the stack (nor take long)."""
    clone = copy_project(tmp_path / "clone")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--config", "profile=paper"],
                            cwd=clone, env=_poisoned_env(tmp_path), capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "fetch" in result.stdout and "train" in result.stdout
    assert elapsed < 10, f"the paper profile's full dry run took {elapsed:.1f} s"


@pytest.mark.parametrize("argv", [["--help"], ["fetch", "--help"], ["prepare", "--help"], ["table", "--help"],
                                  ["plan", "--help"], ["dvc", "--help"]], ids=" ".join)
def test_steps_that_need_no_torch_do_not_import_it(argv, tmp_path):
    """Each pipeline job is a new process: the CLI imports only the module of the step it runs (a table job then
    starts in under a second instead of loading torch, torchvision and matplotlib for nothing)."""
    result = subprocess.run([sys.executable, "-m", "drmoe_repro", *argv], env=_poisoned_env(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage: drmoe-repro" in result.stdout


def test_fetch_and_prepare_make_the_demo_data_and_its_index_without_torch(tmp_path):
    """A fetch job downloads, unpacks or generates data, and a prepare job reads annotations and checks image files
    by their bytes: neither needs torch (each took 4 to 5 s of imports a job)."""
    config = yaml.safe_load((ROOT / "workflow" / "config.yaml").read_text())
    config["profiles"]["demo"]["datasets"]["voc"]["demo_images"] = {"train": 6, "test": 4}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = _poisoned_env(tmp_path)
    for step in (["fetch", "--asset", "demo_voc"], ["prepare", "--dataset", "voc"]):
        result = subprocess.run([sys.executable, "-m", "drmoe_repro", step[0], "--config", "config.yaml", *step[1:]],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
    assert len(list(tmp_path.glob("results/demo/data/**/JPEGImages/*.jpg"))) == 10
    assert "6 training and 4 test images, 20 labels" in result.stdout
    assert (tmp_path / "results/demo/index/voc/train.npz").is_file()


@pytest.mark.parametrize("profile", ["demo", "paper"])
def test_snakemake_lint_is_clean(profile, tmp_path):
    clone = copy_project(tmp_path / "clone")
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--config", f"profile={profile}"],
                            cwd=clone, env=_poisoned_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Lints for" not in result.stdout + result.stderr, result.stdout[-3000:]
