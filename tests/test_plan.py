"""`plan`'s free-space line: set beside the plan's sizes, measured where the outputs will go."""

import shutil
from collections import namedtuple
from pathlib import Path

from drmoe_repro.plan import free_space_line

Usage = namedtuple("Usage", "total used free")


def test_free_space_is_measured_on_the_nearest_folder_that_exists(tmp_path, monkeypatch):
    (tmp_path / "results").mkdir()
    asked = []

    def usage(path):
        asked.append(Path(path))
        if Path(path) == tmp_path:  # where elsewhere/data would go: a disk that does not say
            raise PermissionError("no access")
        return Usage(0, 0, 51_200_000_000)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    line = free_space_line({"the runs": tmp_path / "results" / "paper",
                            "the data": tmp_path / "elsewhere" / "data"})
    assert asked == [tmp_path / "results", tmp_path]  # neither folder is made yet: their nearest parents' disks
    assert line == (f"Free disk now: 51.2 GB for the runs ({tmp_path / 'results' / 'paper'}), "
                    f"unknown for the data ({tmp_path / 'elsewhere' / 'data'}).")
