import os

import pytest

from optbench.cache import atomic_path, built_dir


def test_atomic_path_appears_only_when_complete(tmp_path):
    target = tmp_path / "sub" / "model.onnx"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".onnx"
        tmp.write_text("half")
        assert not target.exists()
    assert target.read_text() == "half"
    assert os.listdir(target.parent) == ["model.onnx"]


def test_atomic_path_keeps_the_old_file_and_no_temporary_on_failure(tmp_path):
    target = tmp_path / "record.json"
    target.write_text("old")
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("new, but the disk filled up")
        raise OSError(28, "No space left on device")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["record.json"]


def test_atomic_path_moves_companions_before_the_main_file(tmp_path):
    target = tmp_path / "model.xml"
    with atomic_path(target, companions=(".bin",)) as tmp:
        tmp.write_text("<xml/>")
        tmp.with_suffix(".bin").write_bytes(b"weights")
    assert target.read_text() == "<xml/>"
    assert (tmp_path / "model.bin").read_bytes() == b"weights"
    assert sorted(os.listdir(tmp_path)) == ["model.bin", "model.xml"]


def test_built_dir_builds_once_and_cleans_up_a_failed_build(tmp_path):
    target = tmp_path / "converted"
    calls = []

    def build(tmp):
        calls.append(tmp)
        tmp.mkdir()
        (tmp / "weights").write_text("w")

    assert built_dir(target, build) == target
    assert built_dir(target, build) == target
    assert len(calls) == 1 and (target / "weights").read_text() == "w"

    def broken(tmp):
        tmp.mkdir()
        raise RuntimeError("converter crashed")

    with pytest.raises(RuntimeError):
        built_dir(tmp_path / "other", broken)
    assert sorted(os.listdir(tmp_path)) == ["converted"]
    built_dir(target, build, replace=True)
    assert len(calls) == 2
