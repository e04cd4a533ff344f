"""What each operator role may do: one table (`PERMISSIONS`) and one enforcement point
(`check_permission`). README.md shows the table as `python -m devreg.core.roles --markdown`
prints it (tests/core/test_roles.py keeps the two equal; `--write` puts it there).

An operator with an account acts on that account only. An admin without an account is a
platform administrator: every permission of the table on every account, and the
permissions that are about no one account (`ACROSS_ACCOUNTS`: accounts themselves, the
users of every account)."""

from __future__ import annotations

import argparse
import sys
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from devreg.core.errors import Forbidden


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


class Permission(StrEnum):
    DEVICE_READ = "device.read"
    DEVICE_WRITE = "device.write"
    DEVICE_DISABLE = "device.disable"
    CERTIFICATE_ISSUE = "certificate.issue"
    CERTIFICATE_REVOKE = "certificate.revoke"
    PROFILE_WRITE = "profile.write"
    KEY_MANAGE = "key.manage"
    AUDIT_READ = "audit.read"
    USER_MANAGE = "user.manage"
    ACCOUNT_MANAGE = "account.manage"


_READS = frozenset({Permission.DEVICE_READ, Permission.AUDIT_READ})
_OPERATES = _READS | {
    Permission.DEVICE_WRITE,
    Permission.DEVICE_DISABLE,
    Permission.CERTIFICATE_ISSUE,
    Permission.CERTIFICATE_REVOKE,
}

# The one table: what each role may do, on its account (on every account, for an admin
# without one).
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _READS,
    Role.OPERATOR: _OPERATES,
    Role.ADMIN: _OPERATES
    | {
        Permission.PROFILE_WRITE,
        Permission.KEY_MANAGE,
        Permission.USER_MANAGE,
        Permission.ACCOUNT_MANAGE,
    },
}

# Permissions held only by an operator of every account (a platform administrator), even
# when they are asked about one account: an account's admin does not disable its account.
ACROSS_ACCOUNTS = frozenset({Permission.ACCOUNT_MANAGE})


class Holder(Protocol):
    """What the rule reads of an operator (core/operator_store.py:Operator)."""

    @property
    def role(self) -> Role: ...

    @property
    def account_id(self) -> bytes | None: ...


def allowed(holder: Holder, permission: Permission, account_id: bytes | None) -> bool:
    """Whether `holder` may use `permission` on `account_id` (None: on no one account,
    e.g. listing every user, making a platform administrator)."""
    if permission not in PERMISSIONS[holder.role]:
        return False
    if holder.account_id is None:  # made only as admin (operators' CHECK, create_operator)
        return holder.role is Role.ADMIN
    return permission not in ACROSS_ACCOUNTS and account_id == holder.account_id


def check_permission(holder: Holder, permission: Permission, account_id: bytes | None) -> None:
    """The one enforcement point: Forbidden unless `holder` may."""
    if not allowed(holder, permission, account_id):
        raise Forbidden(f"Not permitted: {permission.value}")


BEGIN = "<!-- roles table: python -m devreg.core.roles --write -->"
END = "<!-- end of roles table -->"


class _Sample:
    def __init__(self, role: Role, account_id: bytes | None) -> None:
        self.role = role
        self.account_id = account_id


def markdown() -> str:
    """The table as enforced: each cell is `allowed` asked about the operator's account."""
    own = bytes(16)
    columns = [
        ("viewer", _Sample(Role.VIEWER, own)),
        ("operator", _Sample(Role.OPERATOR, own)),
        ("admin (its account)", _Sample(Role.ADMIN, own)),
        ("platform admin (no account: all)", _Sample(Role.ADMIN, None)),
    ]
    lines = [
        "| permission | " + " | ".join(title for title, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for permission in Permission:
        cells = ["yes" if allowed(s, permission, own) else "-" for _, s in columns]
        lines.append(f"| `{permission.value}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _readme() -> Path:
    return Path(__file__).resolve().parents[3] / "README.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The operator roles' permissions table")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--markdown", action="store_true", help="print the table")
    action.add_argument("--write", action="store_true", help="put it in README.md (a checkout)")
    options = parser.parse_args(argv)
    if options.markdown:
        sys.stdout.write(markdown() + "\n")
        return 0
    readme = _readme()
    text = readme.read_text()
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise SystemExit(f"README.md has no {BEGIN!r} ... {END!r} block")
    readme.write_text(text[: start + len(BEGIN)] + "\n" + markdown() + "\n" + text[stop:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
