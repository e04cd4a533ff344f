"""`--workers N`: the parent binds the sockets, then keeps N worker processes serving them.

SIGTERM or SIGINT to the parent stops the workers (each finishes its requests, as uvicorn
does on SIGTERM); a worker that dies is started again (at most once a second per slot).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

log = logging.getLogger("devreg")

RESTART_INTERVAL = 1.0  # a worker that keeps failing at startup does not spin
STOP_TIMEOUT = 30.0  # then SIGKILL


class Supervisor:
    def __init__(
        self,
        target: Callable[..., None],
        args: tuple[Any, ...],
        count: int,
        *,
        poll: float = 0.2,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        """`target(*args, parent_pid)` runs in each of `count` spawned processes."""
        self.target = target
        self.args = args
        self.count = count
        self.poll = poll
        self.stop_timeout = stop_timeout
        self.context = multiprocessing.get_context("spawn")
        self.stopping = threading.Event()
        self.workers: list[BaseProcess] = []
        self.started_at: list[float] = []

    def run(self) -> None:
        log.info("Started parent process [%d]", os.getpid())
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for _ in range(self.count):
                self.workers.append(self._spawn())
                self.started_at.append(time.monotonic())
            while not self.stopping.wait(self.poll):
                self._restart_dead()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            log.info("Stopped parent process [%d]", os.getpid())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def _spawn(self) -> BaseProcess:
        process = self.context.Process(
            target=self.target, args=(*self.args, os.getpid()), name="devreg-worker"
        )
        process.start()
        return process

    def _restart_dead(self) -> None:
        for slot, process in enumerate(self.workers):
            if process.exitcode is None:
                continue
            if time.monotonic() - self.started_at[slot] < RESTART_INTERVAL:
                continue
            log.warning(
                "worker process [%d] exited with code %s: starting another",
                process.pid,
                process.exitcode,
            )
            process.close()
            self.workers[slot] = self._spawn()
            self.started_at[slot] = time.monotonic()

    def _stop_all(self) -> None:
        for process in self.workers:
            if process.exitcode is None:
                process.terminate()
        deadline = time.monotonic() + self.stop_timeout
        for process in self.workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                log.warning("worker process [%d] did not stop: killing it", process.pid)
                process.kill()
                process.join()
