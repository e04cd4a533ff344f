"""The few domain exceptions. Each dialect turns them into its own envelope, in one place."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a client may see; `message` says what is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    """The request is malformed or breaks a rule; `field` names the bad part when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(DomainError):
    """No such object in the caller's scope (another account's object is also 'not found')."""


class Conflict(DomainError):
    """A uniqueness rule would be broken; `code` names which one."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class Unauthenticated(DomainError):
    """Missing, malformed, expired or forged credentials."""


class Forbidden(DomainError):
    """Valid credentials that may not do this."""


class RateLimited(DomainError):
    """The credential is over its request rate; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many requests. Please retry after a short delay.")
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A backing service (database, Redis) cannot be reached right now."""


class LimitReached(DomainError):
    """A cap on how many of something may exist at once is reached (a device's active
    certificates, an account's outstanding enrollment secrets); `code` names which."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class QuotaExceeded(DomainError):
    """The account already has as many of these as its quota allows (`setting` is the
    DEVREG_* variable that raises it); nothing was written."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


class AccountDisabled(Forbidden):
    """Good credentials of an account an operator disabled: refused, with nothing deleted,
    until it is enabled again. Dialect F has its own answer for it (422)."""

    def __init__(self, account_id: bytes) -> None:
        super().__init__(f"The account acc_{account_id.hex()} is disabled")
        self.account_id = account_id
