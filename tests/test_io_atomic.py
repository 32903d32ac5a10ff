"""Atomic output helpers: refuse existing outputs, never leave partial or temporary files."""

from __future__ import annotations

import os

import numpy as np
import pytest

from hsfuse.errors import HsfuseError, InputError, OutputExistsError
from hsfuse.io.atomic import atomic_output, atomic_output_dir, atomic_outputs, check_output_path


class Boom(RuntimeError):
    pass


def test_success_renames_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.npy"
    with atomic_output(target, overwrite=False) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".npy" and tmp != target
        assert not tmp.exists()  # not pre-created: some writers refuse an existing file
        np.save(tmp, np.arange(3))
        assert not target.exists()  # nothing under the final name until success
    assert sorted(os.listdir(tmp_path)) == ["a.npy"]
    np.testing.assert_array_equal(np.load(target), np.arange(3))


def test_existing_output_refused_with_fix_in_message(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        with atomic_output(target, overwrite=False):
            pytest.fail("block must not run")
    assert target.read_text() == "old"


def test_failing_write_keeps_existing_file_and_removes_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(Boom):
        with atomic_output(target, overwrite=True) as tmp:
            tmp.write_text("half-writ")
            raise Boom("writer crashed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_interrupt_also_cleans_up(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(tmp_path / "a.txt", overwrite=False) as tmp:
            tmp.write_text("x")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_overwrite_replaces(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with atomic_output(target, overwrite=True) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_missing_parent_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        with atomic_output(tmp_path / "nope" / "a.txt", overwrite=False):
            pass


def test_unwritable_folder_reported(tmp_path, monkeypatch):
    # os.access is the check (root bypasses file modes, so simulate a read-only folder)
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(InputError, match="no write permission"):
        check_output_path(tmp_path / "a.txt", overwrite=False)


def test_permission_error_during_write_becomes_input_error(tmp_path):
    with pytest.raises(InputError, match="permission denied"):
        with atomic_output(tmp_path / "a.txt", overwrite=False):
            raise PermissionError("denied by the file system")
    assert os.listdir(tmp_path) == []


def test_target_is_a_folder(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        with atomic_output(tmp_path / "d", overwrite=True):
            pass


def test_writer_that_produces_nothing_is_an_error(tmp_path):
    with pytest.raises(HsfuseError, match="did not produce"):
        with atomic_output(tmp_path / "a.txt", overwrite=False):
            pass
    assert os.listdir(tmp_path) == []


def test_several_outputs_share_a_stem(tmp_path):
    hdr, img = tmp_path / "x.hdr", tmp_path / "x.img"
    with atomic_outputs([hdr, img], overwrite=False) as (th, ti):
        assert th.suffix == ".hdr" and ti.suffix == ".img" and th.stem == ti.stem
        th.write_text("h")
        ti.write_text("i")
    assert sorted(os.listdir(tmp_path)) == ["x.hdr", "x.img"]


def test_several_outputs_refused_if_any_exists_and_cleaned_on_failure(tmp_path):
    hdr, img = tmp_path / "x.hdr", tmp_path / "x.img"
    img.write_text("old")
    with pytest.raises(OutputExistsError):
        with atomic_outputs([hdr, img], overwrite=False):
            pass
    with pytest.raises(Boom):
        with atomic_outputs([hdr, img], overwrite=True) as (th, ti):
            th.write_text("h")
            raise Boom
    assert sorted(os.listdir(tmp_path)) == ["x.img"] and img.read_text() == "old"


def test_folder_output_atomic_and_guarded(tmp_path):
    out = tmp_path / "scene_ms"
    with atomic_output_dir(out, overwrite=False) as tmp:
        (tmp / "a.png").write_text("1")
    assert os.listdir(out) == ["a.png"] and os.listdir(tmp_path) == ["scene_ms"]
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        with atomic_output_dir(out, overwrite=False):
            pass
    # failure: old folder intact, temp gone
    with pytest.raises(Boom):
        with atomic_output_dir(out, overwrite=True, replaceable=lambda e: e.suffix == ".png") as tmp:
            (tmp / "b.png").write_text("2")
            raise Boom
    assert os.listdir(out) == ["a.png"] and os.listdir(tmp_path) == ["scene_ms"]
    # replace: allowed content only
    with atomic_output_dir(out, overwrite=True, replaceable=lambda e: e.suffix == ".png") as tmp:
        (tmp / "c.png").write_text("3")
    assert os.listdir(out) == ["c.png"] and os.listdir(tmp_path) == ["scene_ms"]
    (out / "notes.txt").write_text("precious")
    with pytest.raises(OutputExistsError, match="notes.txt"):
        with atomic_output_dir(out, overwrite=True, replaceable=lambda e: e.suffix == ".png"):
            pass
    assert (out / "notes.txt").read_text() == "precious"
