"""Atomic writes give a file the permissions a plain ``open()`` would, not a temp file's 0o600."""

from __future__ import annotations

import os
import stat

import pytest

from simshap.files import atomic_write, torch_save_atomic


def _mode(path: os.PathLike[str]) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.timeout(30)
def test_a_new_file_gets_what_open_would_give(tmp_path) -> None:
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")  # open(): 0o666 less the umask
    for content in (b"bytes", "text", lambda p: p.write_bytes(b"callable")):
        target = atomic_write(tmp_path / "out.bin", content)
        assert _mode(target) == _mode(plain)
        target.unlink()
    assert _mode(torch_save_atomic({"a": 1}, tmp_path / "weights.pt")) == _mode(plain)


@pytest.mark.timeout(30)
def test_an_existing_file_keeps_its_mode(tmp_path) -> None:
    target = tmp_path / "explainer.pt"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and _mode(target) == 0o640
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


@pytest.mark.timeout(30)
def test_the_umask_is_honoured(tmp_path) -> None:
    old = os.umask(0o077)
    try:
        assert _mode(atomic_write(tmp_path / "private.bin", b"x")) == 0o600
    finally:
        os.umask(old)
