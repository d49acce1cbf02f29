"""Progress without bars (`--no-progress`, as every Snakemake job runs): silent for short work, plain lines for long."""

import time

import pytest

from drmoe_repro import progress
from drmoe_repro.progress import progress_bar


def test_work_shorter_than_the_interval_prints_nothing(capsys):
    for _ in progress_bar(range(200), bars=False, desc="quick", line_every_s=30):
        pass
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_long_work_prints_plain_lines_without_repeats_and_a_last_one(capsys):
    for _ in progress_bar(range(6), bars=False, desc="slow", unit="batches", line_every_s=0.01):
        time.sleep(0.03)
    lines = capsys.readouterr().err.splitlines()
    assert "\r" not in "".join(lines)
    assert 2 <= len(lines) <= 7, lines
    assert all(line.startswith("slow: ") and " batches [" in line and "to go" in line for line in lines), lines
    counts = [line.split(" [")[0] for line in lines]
    assert len(set(counts)) == len(counts), lines  # the closing redraw does not repeat the last count
    assert counts[-1] == "slow: 6/6 batches"


def test_a_total_that_is_not_known_gives_no_time_to_go(capsys):
    with progress_bar(total=None, bars=False, desc="download", unit="B", unit_scale=True, line_every_s=0) as bar:
        for _ in range(3):
            bar.update(1000)
    lines = capsys.readouterr().err.splitlines()
    assert lines and lines[-1].startswith("download: 3.00kB [") and "to go" not in lines[-1], lines


def test_the_interval_is_read_when_called_so_callers_default_to_the_module_value(monkeypatch, capsys):
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    for _ in progress_bar(range(2), bars=False, desc="now"):
        pass
    assert capsys.readouterr().err.splitlines()[-1].startswith("now: 2/2 it [")


@pytest.mark.parametrize("disable", [True, False])
def test_disable_shows_nothing_even_for_long_work(capsys, disable):
    for _ in progress_bar(range(3), bars=False, desc="rank1", line_every_s=0, disable=disable):
        time.sleep(0.01)
    assert (capsys.readouterr().err == "") == disable


def test_prepares_image_check_reports_in_lines_once_it_runs_long(tmp_path, monkeypatch, capsys):
    """`prepare` checks every image file (120,000 for COCO, minutes on a network disk): lines, as under Snakemake."""
    from drmoe_repro.data.image_files import verify_images

    names = [f"{i}.jpg" for i in range(3)]
    for name in names:
        (tmp_path / name).write_bytes(b"\xff\xd8" + bytes(16) + b"\xff\xd9")
    verify_images(tmp_path, names)
    assert capsys.readouterr().err == ""  # quicker than a minute: nothing
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    verify_images(tmp_path, names)
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"check images in {tmp_path}: 3/3 files [")
