"""data.files: the one atomic writer."""
import os
import stat

import pytest

from sideman.data.files import atomic_write, atomic_writer, remove_partial_writes


def test_write_replaces_the_whole_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write(path, "first")
    atomic_write(path, b"second")
    assert path.read_bytes() == b"second" and os.listdir(path.parent) == ["a.json"]
    with atomic_writer(path, "w", newline="") as f:
        f.write("é\n")
    assert path.read_text(encoding="utf-8") == "é\n"


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write(path, b"old")
    with pytest.raises(RuntimeError):
        with atomic_writer(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.bin"]


def test_new_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    os.umask(old)
    path = atomic_write(tmp_path / "p", b"x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~old


def test_only_binary_or_text_writes():
    with pytest.raises(ValueError, match="mode"):
        with atomic_writer("/tmp/never", "ab"):
            pass


def test_partial_writes_of_a_crash_are_removed(tmp_path):
    atomic_write(tmp_path / "kept.npy", b"x")
    (tmp_path / ".kept.npy.a1b2c3.tmp").write_bytes(b"half")
    (tmp_path / ".hidden").write_bytes(b"not ours")
    assert [p.name for p in remove_partial_writes(tmp_path)] == [".kept.npy.a1b2c3.tmp"]
    assert sorted(os.listdir(tmp_path)) == [".hidden", "kept.npy"]
