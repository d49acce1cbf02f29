import hashlib
import time

import numpy as np
import pytest

from drmoe_repro.io import load_npz, save_json, save_npz


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_npz_is_byte_identical_across_writes_and_readable(tmp_path):
    arrays = {"scores": np.arange(6, dtype=np.float32).reshape(2, 3), "ids": np.array(["a", "b"])}
    save_npz(tmp_path / "a.npz", **arrays)
    time.sleep(2.1)  # zip timestamps have 2 s resolution: a time-stamping writer would differ now
    save_npz(tmp_path / "b.npz", **dict(reversed(list(arrays.items()))))
    assert _digest(tmp_path / "a.npz") == _digest(tmp_path / "b.npz")
    loaded = load_npz(tmp_path / "a.npz")
    np.testing.assert_array_equal(loaded["scores"], arrays["scores"])
    assert loaded["ids"].tolist() == ["a", "b"]


def test_torch_files_do_not_depend_on_their_name_and_load_back(tmp_path):
    """torch.save names its zip records after a file name it is given; save_torch's bytes must not carry one."""
    import torch

    from drmoe_repro.io import save_torch

    state = {"weight": torch.arange(12, dtype=torch.float32).reshape(3, 4), "steps": torch.tensor(7)}
    save_torch(tmp_path / "model.pt", state)
    (tmp_path / "elsewhere").mkdir()
    save_torch(tmp_path / "elsewhere" / "checkpoint.pt", state)
    assert _digest(tmp_path / "model.pt") == _digest(tmp_path / "elsewhere" / "checkpoint.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "model.pt"]  # no temporary left behind


def test_json_is_sorted_and_strict(tmp_path):
    save_json(tmp_path / "m.json", {"b": np.float32(0.5), "a": float("nan"), "c": np.arange(2)})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": null,\n  "b": 0.5,\n  "c": [\n    0,\n    1\n  ]\n}\n'


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "x.npz"
    save_npz(path, a=np.zeros(2))
    before = _digest(path)
    with pytest.raises(ValueError):
        save_npz(path, a=np.zeros(2), b=np.array([object()], dtype=object))  # pickles are refused mid-write
    assert _digest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.npz"]


def test_a_writer_killed_mid_write_leaves_nothing_behind_after_the_next_write(tmp_path):
    """SIGKILL skips every cleanup: its temporary file stays until the next write of the same file removes it."""
    import os
    import signal
    import subprocess
    import sys

    path = tmp_path / "model.pt"
    # A child that starts an atomic write and is killed inside it, as a run killed while saving a checkpoint.
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from drmoe_repro.io import atomic_path\n"
        f"with atomic_path({str(path)!r}) as tmp:\n"
        "    tmp.write_bytes(b'half'); print('writing', flush=True); time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".model.pt.") and leftovers[0].endswith(".tmp")
    # A live writer's temporary file (this process's) survives another write of the same file; the dead one's not.
    from drmoe_repro.io import atomic_path

    with atomic_path(path) as live:
        live.write_bytes(b"in progress")
        save_npz(path, a=np.zeros(2))
        assert live.exists() and not (tmp_path / leftovers[0]).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"] and path.read_bytes() == b"in progress"
