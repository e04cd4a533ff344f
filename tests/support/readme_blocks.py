"""Tables that README.md shows between two HTML comments, made by a test module's data:
read the block, or put a new one in its place."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def block(readme: str, begin: str, end: str) -> str:
    """What `readme` holds between the markers (empty when they are missing)."""
    start, stop = readme.find(begin), readme.find(end)
    if start < 0 or stop < start:
        return ""
    return readme[start + len(begin) : stop].strip("\n")


def replaced(readme: str, begin: str, end: str, text: str) -> str:
    """`readme` with `text` between its markers."""
    start, stop = readme.find(begin), readme.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"README.md has no {begin!r} ... {end!r} block")
    return readme[: start + len(begin)] + "\n" + text + "\n" + readme[stop:]
