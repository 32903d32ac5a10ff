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


_KILLED_WRITER = """
import os, sys
from pathlib import Path
from hsfuse.io import atomic
target, kill_at = Path(sys.argv[1]), int(sys.argv[2])
calls = []
real_replace = os.replace
def replace(src, dst):
    calls.append(src)
    if len(calls) == kill_at:
        os._exit(9)  # like SIGKILL: no cleanup runs
    real_replace(src, dst)
atomic.os.replace = replace
with atomic.atomic_output_dir(target, overwrite=True, replaceable=lambda p: True) as tmp:
    (tmp / "new.txt").write_text("new")
"""


def _killed_write(tmp_path, target, kill_at):
    import subprocess
    import sys

    script = tmp_path / "writer.py"
    script.write_text(_KILLED_WRITER)
    assert subprocess.run([sys.executable, str(script), str(target), str(kill_at)]).returncode == 9


def test_clean_interrupted_dirs_removes_half_written_folders(tmp_path):
    from hsfuse.io.atomic import clean_interrupted_dirs

    target = tmp_path / "step_0000010"
    _killed_write(tmp_path, target, kill_at=1)  # killed before its folder was renamed in
    (tmp_path / ".notes").mkdir()  # hidden but not ours: kept
    (tmp_path / "other").mkdir()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".step_0000010.")
    assert clean_interrupted_dirs(tmp_path) == leftovers
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [".notes", "other"]


def test_clean_interrupted_dirs_puts_back_a_folder_moved_aside(tmp_path):
    from hsfuse.io.atomic import clean_interrupted_dirs

    target = tmp_path / "step_0000010"
    target.mkdir()
    (target / "old.txt").write_text("old")
    _killed_write(tmp_path, target, kill_at=2)  # killed between moving the old folder aside and the new one in
    assert not target.exists()
    names = clean_interrupted_dirs(tmp_path)
    assert sorted(n.rsplit(".", 1)[1] for n in names) == ["old", "tmp"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["step_0000010"]
    assert (target / "old.txt").read_text() == "old"
    assert clean_interrupted_dirs(tmp_path) == []
    assert clean_interrupted_dirs(tmp_path / "missing") == []
