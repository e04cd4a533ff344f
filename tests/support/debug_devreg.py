"""`devreg` with every logger at the lowest level (DEBUG and uvicorn's TRACE included), to
show what would reach a log if an operator turned logging all the way up: run as
`python -m tests.support.debug_devreg serve ...` (one worker: workers start their own)."""

from __future__ import annotations

import logging
import sys

from devreg.cli.main import main
from devreg.server.app import LOG_FORMAT

if __name__ == "__main__":
    logging.basicConfig(level=1, format=LOG_FORMAT)  # `serve` keeps a configured root logger
    logging.getLogger("devreg").debug("debug logging on")
    sys.exit(main())
