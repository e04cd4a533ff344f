"""Who a command's changes are logged as: the operator's OS user, one request id per run."""

from __future__ import annotations

import getpass
import os

from devreg.core.ids import new_id
from devreg.core.records import Origin, operator_origin


def cli_origin() -> Origin:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary uid)
        user = f"uid:{os.getuid()}"
    return operator_origin(user, "cli_" + new_id().hex())
