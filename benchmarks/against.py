"""`run.py --against REV`: devreg as it was at REV, one more side of the F scenarios.

REV is checked out with `git worktree add --detach` into a temporary directory, removed
at the end (also on failure). Its `devreg serve` runs on the same venv interpreter with the
checkout's `src/` alone on PYTHONPATH, pinned like the current build, on a data dir of
its own that REV's own command line sets up (`devreg init`, `account create`, `import
devices`: its schema may differ from the current one) with as many devices. run.py runs
it round by round beside the other sides and reports devreg / devreg@REV (issue 15).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.devreg_setup import (
    DEVREG,
    device_ids,
    devreg_env,
    has_import_command,
    import_devices,
    init_account,
    login,
)
from benchmarks.scenarios import Side
from benchmarks.servers import REPO, free_port, serving

PREFIX = "devreg@"  # the side is named devreg@REV


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          check=False)  # fmt: skip


def resolve(rev: str) -> str:
    """REV's full commit hash; ValueError when git does not know it."""
    done = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if done.returncode != 0:
        raise ValueError(f"--against {rev}: not a commit of {REPO}")
    return done.stdout.strip()


@contextmanager
def checkout(commit: str) -> Iterator[Path]:
    """A detached worktree of `commit` in a temporary directory, removed on the way out."""
    tmp = Path(tempfile.mkdtemp(prefix="devreg-against-"))
    path = tmp / "checkout"
    try:
        added = _git("worktree", "add", "--quiet", "--detach", str(path), commit)
        if added.returncode != 0:
            raise RuntimeError(f"git worktree add {commit} failed:\n{added.stderr}")
        yield path
    finally:
        _git("worktree", "remove", "--force", str(path))
        shutil.rmtree(tmp, ignore_errors=True)
        _git("worktree", "prune")


def imports_from(env: dict[str, str]) -> str:
    """Where the venv's interpreter finds the `devreg` package under `env`."""
    code = "import devreg, os; print(os.path.dirname(devreg.__file__))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout.strip()


@contextmanager
def against_side(
    source: Path, name: str, devices: int, workdir: Path, cores: str
) -> Iterator[tuple[Side, str]]:
    """devreg at the checkout `source`, seeded with `devices` devices by its own command
    line, serving as `devreg serve` does for the current build (plain and mTLS listeners,
    pinned to `cores`); the Side and the package directory it runs."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = devreg_env(workdir / "devreg-data", source=source / "src")
    if not has_import_command(env):  # the fallback inserts with the current build's store
        raise RuntimeError(f"{name} has no `devreg import devices`: it cannot seed itself")
    account = init_account(env)
    imported = import_devices(env, account, devices, workdir)
    print(f"  {name}: {devices:,} devices in {imported.seconds:.1f} s ({imported.method})",
          flush=True)  # fmt: skip
    ids = device_ids(env, account)
    port, mtls_port = free_port(), free_port()
    argv = [DEVREG, "serve", "--port", str(port), "--mtls-port", str(mtls_port), "--est-port", "0"]
    base = f"http://127.0.0.1:{port}"
    with serving(name, argv, env, workdir / "devreg.log", cores, base + "/healthz",
                 cwd=source) as server:  # fmt: skip
        print(f"  {name} (pid {server.pid}): core {cores}", flush=True)
        yield Side(name, server, base, ids, login(base, account)), imports_from(env)
