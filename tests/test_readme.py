"""Every command in the README's code blocks works as written, in a copy of the project as a fresh clone has it.

Each command runs in its dry-run form (`make -n`, `snakemake -n`, `dvc status`) or, where it is cheap, for
real (`drmoe-repro plan`). `-n` is put right after the program name, so a command whose targets come after
`--config` (which swallows them) still fails here as it fails for a user. The `dvc metrics show` and `dvc plots
show` lines need results: tests/test_pipeline.py runs them on the pipeline's outputs.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from project import ROOT, copy_project, tool_env

README = ROOT / "README.md"
NEEDS_RESULTS = (("dvc", "metrics"), ("dvc", "plots"))


def readme_blocks(language: str) -> list[str]:
    return [body for lang, body in re.findall(r"```(\w*)\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
            if lang == language]


def readme_commands() -> list[list[str]]:
    """Each command line of the bash blocks as argv (comments dropped, continuation lines joined)."""
    commands = []
    for block in readme_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                commands.append(argv)
    return commands


def dry_form(argv: list[str]) -> list[str] | None:
    """The command to run for `argv`, or None for a line that only sets up the shell."""
    program, args = argv[0], argv[1:]
    if program == ".":
        return None  # `. .venv/bin/activate`: the venv the Makefile creates
    if program == "make":
        return ["make", "-n", *args]
    if program == "snakemake":
        return [sys.executable, "-m", "snakemake", *([] if "-n" in args else ["-n"]), *args]
    if program == "dvc" and args[:1] == ["repro"]:
        # `dvc repro --dry` fails on a fresh clone (it hashes the dependencies that earlier stages would write);
        # `dvc status` reads and resolves the same dvc.yaml and params without running anything.
        return ["dvc", "status", *args[1:]]
    if program == "drmoe-repro":
        return [sys.executable, "-m", "drmoe_repro", *args]
    raise AssertionError(f"README command {shlex.join(argv)!r} has no dry-run form here: add one to dry_form")


COMMANDS = [argv for argv in readme_commands() if tuple(argv[:2]) not in NEEDS_RESULTS]
PAPER_PLAN = ["drmoe-repro", "plan", "--profile", "paper"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A copy of the project, a git repository as a clone is (DVC needs one), with the README's mine.yaml."""
    folder = copy_project(tmp_path_factory.mktemp("clone"))
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    text = README.read_text(encoding="utf-8")
    mine = readme_blocks("yaml")[0]
    assert "`mine.yaml`" in text[: text.index(mine)][-300:], "the first yaml block of the README is mine.yaml"
    (folder / "mine.yaml").write_text(mine)
    return folder


def test_readme_has_the_commands_users_run_first():
    programs = {tuple(argv[:2]) for argv in readme_commands()}
    assert {("make", "demo"), ("make", "test"), ("dvc", "repro"), ("drmoe-repro", "plan")} <= programs
    # the command whose output test_readme_command_runs_as_written compares with the README's stated plan
    assert any(argv[:4] == PAPER_PLAN for argv in COMMANDS)
    assert sum(argv[0] == "snakemake" for argv in readme_commands()) >= 4
    for argv in COMMANDS:
        dry_form(argv)  # every command has a dry-run form (or is shell set-up)


@pytest.mark.parametrize("argv", COMMANDS, ids=[shlex.join(argv) for argv in COMMANDS])
def test_readme_command_runs_as_written(argv, clone):
    command = dry_form(argv)
    if command is None:
        assert (ROOT / "Makefile").read_text().count("VENV := .venv") == 1  # what `. .venv/bin/activate` sources
        return
    result = subprocess.run(command, cwd=clone, env=tool_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (shlex.join(command), result.stdout[-2000:] + result.stderr[-3000:])
    if argv[:4] == PAPER_PLAN:
        assert readme_plan_figures() == plan_figures(result.stdout)


def readme_plan_figures() -> tuple[int, float, int, int, float]:
    """Trainings, millions of training images, px, GB of model.pt and GB of downloads the README states for the
    paper profile."""
    found = re.search(r"paper profile is (\d+) trainings, ([\d.]+) M training images at (\d+) px and about (\d+) GB "
                      r"of `model\.pt` files, after ([\d.]+) GB of downloads",
                      " ".join(README.read_text(encoding="utf-8").split()))
    assert found, "the README no longer states the paper profile's plan"
    return int(found[1]), float(found[2]), int(found[3]), int(found[4]), float(found[5])


def plan_figures(stdout: str) -> tuple[int, float, int, int, float]:
    runs = re.search(r"(\d+) trainings .*?, ([\d,]+) training images at (\d+) px", stdout)
    disk = re.search(r"model\.pt ([\d.]+) GB in all", stdout)
    downloads = re.search(r"Downloads first \(where not fetched yet\): [\w, ]+: ([\d.]+) GB", stdout)
    assert runs and disk and downloads, stdout
    return (int(runs[1]), round(int(runs[2].replace(",", "")) / 1e6, 1), int(runs[3]),
            int(round(float(disk[1]))), float(downloads[1]))


def test_a_target_after_config_fails_here_as_it_does_for_users(clone):
    """The check can fail: the README's former command, targets after --config, is an error in its dry form."""
    command = dry_form(["snakemake", "--cores", "all", "--config", "profile=paper", "results/table1.csv"])
    result = subprocess.run(command, cwd=clone, env=tool_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "results/table1.csv" in result.stdout + result.stderr


INLINE_COMMAND = re.compile(r"`(?:PYTHONPATH=src )?(?:drmoe-repro|python -m drmoe_repro) ([^`]*)`")


def inline_command_errors(text: str) -> list[str]:
    """What is wrong with each `drmoe-repro SUBCOMMAND --option ...` the prose names: an unknown subcommand or an
    option the subcommand does not take. (Prose names commands without their required arguments, so the words are
    checked one by one instead of parsed.)"""
    from drmoe_repro.cli import COMMANDS, build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    errors = []
    for words in (match.split() for match in INLINE_COMMAND.findall(text)):
        if not words or words[0] not in COMMANDS:
            errors.append(f"`{' '.join(words)}`: no such subcommand (drmoe-repro has {', '.join(COMMANDS)})")
            continue
        options = subparsers.choices[words[0]]._option_string_actions
        errors += [f"`{' '.join(words)}`: {words[0]} has no option {word}" for word in words[1:]
                   if word.startswith("--") and word.split("=")[0] not in options]
    return errors


def test_commands_named_in_the_readmes_prose_exist_with_those_options():
    text = README.read_text(encoding="utf-8")
    assert INLINE_COMMAND.findall(text), "the README names no drmoe-repro command"
    assert inline_command_errors(text) == []


def test_the_prose_check_finds_a_removed_option():
    """The check can fail: the option the README named after it had moved to its own subcommand."""
    assert inline_command_errors("run `python -m drmoe_repro report --write-dvc-runs`, then `drmoe-repro dvc`.") == [
        "`report --write-dvc-runs`: report has no option --write-dvc-runs"]
