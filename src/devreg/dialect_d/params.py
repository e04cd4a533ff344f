"""Reading dialect D's path and query parameters."""

from __future__ import annotations

from datetime import UTC, date, datetime

from devreg.changelog.service import DEFAULT_LOG_PAGE
from devreg.changelog.store import EntryFilter
from devreg.core.clock import us_of_datetime
from devreg.core.errors import InvalidInput
from devreg.core.ids import parse_uuid
from devreg.core.paging import DEFAULT_LIST_PAGE
from devreg.core.records import ActorKind
from devreg.core.store import DeviceFilter

LIST_PARAMS = frozenset(
    {
        "limit", "offset", "device_identifier", "division_id", "device_profile_id",
        "created_from", "created_to", "updated_from", "updated_to", "upated_to",
    }
)  # fmt: skip
PAGE_PARAMS = frozenset({"limit", "offset"})


def uuid_param(text: str, name: str) -> bytes:
    value = parse_uuid(text)
    if value is None:
        raise InvalidInput(f"{name} must be a UUID", name)
    return value


def int_param(params: dict[str, str], name: str, default: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        raise InvalidInput(f"{name} must be a non-negative integer", name)
    return int(text)


def page_params(params: dict[str, str], known: frozenset[str] = PAGE_PARAMS) -> tuple[int, int]:
    """(limit, offset) of a list request; any other parameter is refused."""
    unknown = sorted(set(params) - known)
    if unknown:
        raise InvalidInput(f"Unknown query parameter {unknown[0]}", unknown[0])
    return int_param(params, "limit", DEFAULT_LIST_PAGE), int_param(params, "offset", 0)


def time_param(params: dict[str, str], name: str, end_of_day: bool) -> int | None:
    """ISO 8601 date or date-time (UTC when no offset is given) -> microseconds."""
    text = params.get(name)
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            if end_of_day:
                return int(moment.timestamp() * 1_000_000) + 86_400_000_000 - 1
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            if end_of_day and "." not in text:
                # Times are shown to the second: `created_to` a device's own `created`
                # must include it, so a whole-second bound covers that whole second.
                return int(moment.timestamp()) * 1_000_000 + 999_999
    except ValueError:
        raise InvalidInput(
            f"{name} must be an ISO 8601 date or date-time, like 2020-04-22T07:13:20Z", name
        ) from None
    return int(moment.timestamp() * 1_000_000)


def as_of_param(params: dict[str, str]) -> int:
    """`?as_of=<RFC 3339 time>`, the only parameter of a device's GET: to the microsecond,
    with its offset (a time without one is ambiguous)."""
    unknown = sorted(set(params) - {"as_of"})
    if unknown:
        raise InvalidInput(f"Unknown query parameter {unknown[0]}", unknown[0])
    return rfc3339_param(params["as_of"], "as_of")


def rfc3339_param(text: str, name: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or len(text) < 20:
        raise InvalidInput(
            f"{name} must be an RFC 3339 time with its offset, like 2026-12-02T18:22:01.123456Z",
            name,
        )
    return us_of_datetime(moment)


LOG_PARAMS = frozenset(
    {"limit", "after_seq", "object_id", "actor_kind", "actor_id", "action", "from", "to"}
)


def log_params(params: dict[str, str]) -> tuple[EntryFilter, int, int]:
    """The account log's filters, its cursor and its page size."""
    unknown = sorted(set(params) - LOG_PARAMS)
    if unknown:
        raise InvalidInput(f"Unknown query parameter {unknown[0]}", unknown[0])
    object_id = params.get("object_id")
    kind = params.get("actor_kind")
    if kind is not None and kind not in {k.value for k in ActorKind}:
        raise InvalidInput(
            "actor_kind must be one of " + ", ".join(k.value for k in ActorKind), "actor_kind"
        )
    where = EntryFilter(
        object_id=None if object_id is None else uuid_param(object_id, "object_id"),
        actor_kind=kind, actor_id=params.get("actor_id"), action=params.get("action"),
        time_from=None if "from" not in params else rfc3339_param(params["from"], "from"),
        time_to=None if "to" not in params else rfc3339_param(params["to"], "to"),
    )  # fmt: skip
    after_seq = int_param(params, "after_seq", 0)
    return where, after_seq, int_param(params, "limit", DEFAULT_LOG_PAGE)


def device_filter(params: dict[str, str]) -> DeviceFilter:
    unknown = sorted(set(params) - LIST_PARAMS)
    if unknown:
        raise InvalidInput(f"Unknown query parameter {unknown[0]}", unknown[0])
    division = params.get("division_id")
    profile = params.get("device_profile_id")
    return DeviceFilter(
        device_identifier=params.get("device_identifier"),
        division_id=uuid_param(division, "division_id") if division is not None else None,
        profile_id=uuid_param(profile, "device_profile_id") if profile is not None else None,
        created_from=time_param(params, "created_from", end_of_day=False),
        created_to=time_param(params, "created_to", end_of_day=True),
        updated_from=time_param(params, "updated_from", end_of_day=False),
        updated_to=time_param(params, updated_to_name(params), end_of_day=True),
    )


def updated_to_name(params: dict[str, str]) -> str:
    """DigiCert's list page spells it `upated_to`: either spelling, not two that differ."""
    if "upated_to" not in params:
        return "updated_to"
    if "updated_to" in params and params["updated_to"] != params["upated_to"]:
        raise InvalidInput("updated_to and upated_to (its other spelling) differ", "upated_to")
    return "upated_to"
