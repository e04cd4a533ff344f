"""Which version a dialect F request is answered in (the rule itself; the HTTP tests show
it on the wire)."""

from __future__ import annotations

import pytest

from devreg.core.versions import ANODE, ZERO, VersionRefused, check_served, version_for


def test_no_header_is_the_default_and_newer_is_allowed() -> None:
    assert version_for(None, ANODE) == ANODE
    assert version_for(None, ZERO) == ZERO
    assert version_for(ANODE, ZERO) == ANODE  # testing an upgrade before switching
    assert version_for(ZERO, ZERO) == ZERO


def test_older_than_the_default_is_refused_in_flatpeaks_words() -> None:
    with pytest.raises(VersionRefused) as refused:
        version_for(ZERO, ANODE)
    expected = f"Requested API version {ZERO} older than account default {ANODE}"
    assert refused.value.message == expected


@pytest.mark.parametrize("version", ["2026-01-01.busbar", "yotta", "2025-09-14", "", "x" * 500])
def test_a_version_not_served_names_both_served(version: str) -> None:
    for call in (lambda: version_for(version, ANODE), lambda: check_served(version)):
        with pytest.raises(VersionRefused) as refused:
            call()
        assert ZERO in refused.value.message and ANODE in refused.value.message
        assert len(refused.value.message) < 200  # a long header is not echoed whole
