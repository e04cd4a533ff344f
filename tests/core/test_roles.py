"""core/roles.py: the one table, the one enforcement point, and the README's copy of it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devreg.core.errors import Forbidden
from devreg.core.roles import (
    BEGIN,
    END,
    PERMISSIONS,
    Permission,
    Role,
    allowed,
    check_permission,
    markdown,
)
from tests.support.readme_blocks import README, block

OWN, OTHER = bytes(16), bytes([1]) * 16
READS = {Permission.DEVICE_READ, Permission.AUDIT_READ}
OPERATES = READS | {
    Permission.DEVICE_WRITE,
    Permission.DEVICE_DISABLE,
    Permission.CERTIFICATE_ISSUE,
    Permission.CERTIFICATE_REVOKE,
}
ADMINISTERS = OPERATES | {Permission.PROFILE_WRITE, Permission.KEY_MANAGE, Permission.USER_MANAGE}


class Someone:
    def __init__(self, role: Role, account_id: bytes | None) -> None:
        self.role = role
        self.account_id = account_id


def granted(who: Someone, account_id: bytes | None) -> set[Permission]:
    return {p for p in Permission if allowed(who, p, account_id)}


def test_each_role_on_its_own_account() -> None:
    assert granted(Someone(Role.VIEWER, OWN), OWN) == READS
    assert granted(Someone(Role.OPERATOR, OWN), OWN) == OPERATES
    assert granted(Someone(Role.ADMIN, OWN), OWN) == ADMINISTERS  # no account.manage


@pytest.mark.parametrize("role", list(Role))
def test_nothing_on_another_account_nor_across_accounts(role: Role) -> None:
    someone = Someone(role, OWN)
    assert granted(someone, OTHER) == set()
    assert granted(someone, None) == set()
    with pytest.raises(Forbidden):
        check_permission(someone, Permission.DEVICE_READ, OTHER)


def test_a_platform_admin_may_do_everything_everywhere() -> None:
    platform = Someone(Role.ADMIN, None)
    for account_id in (OWN, OTHER, None):
        assert granted(platform, account_id) == set(Permission)
    check_permission(platform, Permission.ACCOUNT_MANAGE, OTHER)


def test_an_operator_or_viewer_without_an_account_gets_nothing() -> None:
    """The database refuses such a row (CHECK), and so does the rule if one appeared."""
    for role in (Role.OPERATOR, Role.VIEWER):
        assert granted(Someone(role, None), OWN) == set()


def test_the_roles_only_add() -> None:
    assert PERMISSIONS[Role.VIEWER] < PERMISSIONS[Role.OPERATOR] < PERMISSIONS[Role.ADMIN]


def test_the_readme_shows_this_table() -> None:
    """Regenerate with `python -m devreg.core.roles --write`."""
    assert block(README.read_text(), BEGIN, END) == markdown()


def test_the_module_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devreg.core.roles", "--markdown"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout == markdown() + "\n"
    assert "| `account.manage` | - | - | - | yes |" in done.stdout
