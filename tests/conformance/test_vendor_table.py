"""README.md's vendor table is made from the catalogue, and the catalogue from this suite:
every call devreg serves names the tests that prove its verdict, and every conformance test
is named by some call."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from tests.conformance.catalogue import CALLS, markdown, readme_block
from tests.support.readme_blocks import README

SUITE = Path(__file__).parent


def conformance_tests() -> set[str]:
    found = set()
    for path in sorted(SUITE.glob("*/test_*.py")):
        module = importlib.import_module(f"tests.conformance.{path.parent.name}.{path.stem}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("test_") and function.__module__ == module.__name__:
                found.add(f"{path.parent.name}.{path.stem}:{name}")
    return found


def test_every_served_call_names_its_tests_and_every_test_is_named() -> None:
    tests = conformance_tests()
    named = {test for call in CALLS for test in call.tests}
    assert named - tests == set(), "the catalogue names tests that do not exist"
    assert tests - named == set(), "conformance tests that no call names"
    for call in CALLS:
        if call.verdict != "not served yet":
            assert call.tests, f"{call.call}: a verdict of {call.verdict!r} needs its tests"
        assert call.note.strip() and "|" not in call.note + call.call, call


def test_the_readme_shows_the_catalogue() -> None:
    assert readme_block(README.read_text()) == markdown(), (
        "README.md's vendor table is stale: run python -m tests.conformance.catalogue --write"
    )
