"""server/memory.py: the fixed glibc mmap threshold, and where there is no glibc."""

from __future__ import annotations

import platform

import pytest

from devreg.server import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="not a glibc system")
def test_on_glibc_the_threshold_is_set() -> None:
    assert memory.return_large_buffers() is True


def test_elsewhere_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory.platform, "libc_ver", lambda: ("", ""))
    assert memory.return_large_buffers() is False


def test_a_libc_without_mallopt_is_tolerated(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library(name: str) -> object:
        raise OSError("no such library")

    monkeypatch.setattr(memory.platform, "libc_ver", lambda: ("glibc", "2.36"))
    monkeypatch.setattr(memory.ctypes, "CDLL", no_library)
    assert memory.return_large_buffers() is False
