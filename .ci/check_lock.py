"""The virtualenv holds exactly what the lock says, and the set is consistent.

Run with the virtualenv's interpreter after `./dev test` set it up on a clean clone:

    .venv/bin/python .ci/check_lock.py requirements-dev.lock [requirements.lock ...]

The first lock is the one installed: every distribution in it is installed at its pinned
version, and nothing else is (apart from pip, setuptools and devreg itself). Every further
lock must agree with the first on each pin it shares (`./dev serve` and `./dev test` share
one virtualenv). Then `pip check` must pass. Exit 1 with what differs otherwise.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker

# What a virtualenv brings, and the project itself (installed editable, not locked).
NOT_LOCKED = frozenset({"pip", "setuptools", "wheel", "devreg"})

PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>[^\s;\\]+)"
                 r"\s*(;(?P<marker>[^\\]*))?")


def normalise(name: str) -> str:
    """PEP 503's name normalisation: `Foo_Bar.baz` and `foo-bar-baz` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """The pins of a lock file that apply to this interpreter: name -> version."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match is None:
            continue
        marker = (match["marker"] or "").strip()
        if marker and not Marker(marker).evaluate():
            continue
        pins[normalise(match["name"])] = match["version"]
    if not pins:
        raise SystemExit(f"{path}: no pins found")
    return pins


def installed() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[normalise(name)] = dist.version
    return found


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    problems: list[str] = []
    lock_path, *other_paths = (Path(arg) for arg in argv)
    lock = read_lock(lock_path)
    have = {name: v for name, v in installed().items() if name not in NOT_LOCKED}

    for name, version in sorted(lock.items()):
        if name not in have:
            problems.append(f"missing: {name}=={version} ({lock_path}) is not installed")
        elif have[name] != version:
            problems.append(f"wrong version: {name} {have[name]} installed, {lock_path} pins {version}")
    for name, version in sorted(have.items()):
        if name not in lock:
            problems.append(f"not locked: {name}=={version} is installed but not in {lock_path}")

    for other_path in other_paths:
        for name, version in sorted(read_lock(other_path).items()):
            if lock.get(name) != version:
                problems.append(
                    f"locks disagree: {other_path} pins {name}=={version}, "
                    f"{lock_path} {lock.get(name, 'does not have it')}"
                )

    check = subprocess.run(
        [sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
        capture_output=True, text=True, check=False,
    )
    if check.returncode != 0:
        problems.append("pip check failed:\n" + (check.stdout + check.stderr).strip())

    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{len(lock)} distributions installed exactly as {lock_path} pins them; pip check ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
