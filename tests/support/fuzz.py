"""What the Schemathesis suites share: the run budget, the checks every response must pass,
the credentials each operation declares, and a runner for one operation with real ids.

Budget: each suite names its examples per operation for SQLite (PostgreSQL gets a third);
`DEVREG_FUZZ_EXAMPLES=N` replaces both with N, for a long run (README, "Fuzzing and
properties")."""

from __future__ import annotations

import base64
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import APIOperation, BaseSchema, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

Operation = APIOperation[Any, Any, Any, Any]
Check = Callable[..., Any]

FUZZ_EXAMPLES = int(os.environ.get("DEVREG_FUZZ_EXAMPLES", "0") or 0)

# Every response: no 5xx, a documented status, the documented content type and schema.
RESPONSE_CHECKS: list[Check] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# ... and a request that breaks the schema is refused (4xx), never accepted.
STRICT_CHECKS: list[Check] = [*RESPONSE_CHECKS, negative_data_rejection]

SETTINGS = hypothesis.settings(
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)


def budget(sqlite_examples: int, backend: str) -> int:
    """Examples per operation and generation mode for this run."""
    if FUZZ_EXAMPLES:
        return FUZZ_EXAMPLES
    return sqlite_examples if backend == "sqlite" else max(1, sqlite_examples // 3)


def backend_of(database_url: str | None) -> str:
    return "sqlite" if database_url is None else "postgres"


def operations_of(schema: BaseSchema) -> list[Operation]:
    """Every operation of the document; fails naming the ones Schemathesis cannot read."""
    results = list(schema.get_all_operations())
    broken = [str(result.err()) for result in results if isinstance(result, Err)]
    assert not broken, broken
    return [result.ok() for result in results if not isinstance(result, Err)]


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass(frozen=True)
class Credentials:
    """One account's credentials in one mode: its API key (x-api-key, and the password of
    GET /login) and a bearer token made from that key."""

    account_id: str
    key: str
    token: str

    def headers_for(self, operation: Operation) -> dict[str, str]:
        """The headers of the first security scheme the operation declares (the
        client-certificate scheme needs none: the TLS connection carries it)."""
        for requirement in operation.definition.raw.get("security", []):
            for scheme in requirement:
                if scheme == "bearerAuth":
                    return {"Authorization": f"Bearer {self.token}"}
                if scheme == "basicAuth":
                    return {"Authorization": basic_header(self.account_id, self.key)}
                if scheme == "apiKey":
                    return {"x-api-key": self.key}
        return {}


def security_schemes(operation: Operation) -> set[str]:
    return {scheme for req in operation.definition.raw.get("security", []) for scheme in req}


@dataclass(kw_only=True)
class Exercise:
    """How to call one operation: where, with which headers, which real ids to put in its
    path and real bodies to send instead of generated ones (each drawn about half the
    time), and transport options (a session, a client certificate)."""

    base_url: str = field(kw_only=False)
    headers: dict[str, str] = field(kw_only=False)
    ids: Sequence[str] = ()
    bodies: Sequence[object] = ()
    checks: Sequence[Check] = tuple(RESPONSE_CHECKS)
    call_options: dict[str, Any] | None = None
    after: Callable[[Any, Any], None] | None = None  # (case, response): more assertions


def apply(case: Any, headers: dict[str, str], real_id: str | None, real_body: object) -> None:
    """Put the credentials, a real id and a real body into the generated case, then let
    Schemathesis look at it again: a negative case whose only violation was overwritten
    (a missing Authorization header, a malformed id) is a positive one now, and is
    checked as one."""
    case.headers.update(headers)
    if real_id is not None and "id" in (case.path_parameters or {}):
        case.path_parameters["id"] = real_id
    if real_body is not None:
        case.body = real_body
    _ = case.meta  # reading it revalidates a modified case's generation mode


def one_of_or_none(values: Sequence[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(list(values)), st.none()) if values else st.none()


def run_operation(
    operation: Operation,
    mode: GenerationMode,
    how: Exercise,
    statuses: Counter[int],
    max_examples: int,
) -> None:
    """`max_examples` generated cases of `operation` in `mode`, each checked; the statuses
    seen are counted into `statuses`."""

    @hypothesis.given(
        case=operation.as_strategy(generation_mode=mode),
        # Real ids first: Hypothesis favours the first branch, and most operations only do
        # something on an object that exists.
        real_id=one_of_or_none(how.ids),
        real_body=one_of_or_none(how.bodies),
    )
    @hypothesis.settings(SETTINGS, max_examples=max_examples)
    def exercise(case: Any, real_id: str | None, real_body: object) -> None:
        apply(case, how.headers, real_id, real_body)
        response = case.call(base_url=how.base_url, **(how.call_options or {}))
        statuses[response.status_code] += 1
        case.validate_response(response, checks=list(how.checks))
        if how.after is not None:
            how.after(case, response)

    exercise()
