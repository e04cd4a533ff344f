"""The reliability suite's figures, printed at the end of the run."""

from __future__ import annotations

import pytest

from tests.reliability.support import FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES.requests:
        return
    faults = ", ".join(f"{count} {kind}" for kind, count in sorted(FIGURES.faults.items()))
    terminalreporter.section("reliability figures")
    terminalreporter.write_line(f"requests sent: {FIGURES.requests}")
    terminalreporter.write_line(f"faults injected: {faults or 'none'}")
    terminalreporter.write_line(
        f"acknowledged writes checked after crashes and outages: {FIGURES.writes_checked}"
    )
    for note in FIGURES.notes:
        terminalreporter.write_line(note)
