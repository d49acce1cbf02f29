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
