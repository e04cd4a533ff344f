"""An entry carries the time its change stamps on the record (a device's `created` or
`updated`), so "as of" that very time answers the change; times never go back, and two
writes never share one."""

from __future__ import annotations

import msgspec

from devreg.changelog.entries import Action
from devreg.changelog.service import ChangeLogService
from devreg.core.clock import now_us
from devreg.core.ids import new_id
from devreg.core.records import Actor, ActorKind, Caller
from devreg.core.store import DeviceChange
from devreg.storage.base import SqlDeviceStore
from tests.changelog.test_chain import populate
from tests.support.origins import TEST_ORIGIN


async def test_as_of_a_device_s_own_created_and_updated_times(own_store: SqlDeviceStore) -> None:
    template = await populate(own_store, updates=0)
    log = ChangeLogService(own_store, own_store)
    caller = Caller(
        account_id=template.account_id, live_mode=True, credential_id="test",
        actor=Actor(ActorKind.API_KEY, "test"), request_id="test",
    )  # fmt: skip
    created = now_us()
    device = msgspec.structs.replace(
        template, id=new_id(), device_identifier="c-2", created_at=created, updated_at=created
    )
    await own_store.insert_device(device, {}, TEST_ORIGIN)
    assert (await log.device_as_of(caller, device.id, device.created_at)).version == 1
    updated = await own_store.update_device(
        device.account_id, True, device.id, DeviceChange(reference_id="new"), now_us(),
        TEST_ORIGIN, Action.DEVICE_UPDATE,
    )  # fmt: skip
    assert updated is not None
    as_of = await log.device_as_of(caller, device.id, updated.updated_at)
    assert (as_of.version, as_of.reference_id) == (2, "new")
    entries = [entry async for entry in log.export()]
    assert [e.time for e in entries] == sorted(e.time for e in entries)
    # a change stamped earlier than the log's last entry (a slower clock) is logged just
    # after it: times never go back, and no two writes share one
    late = await own_store.update_device(
        device.account_id, True, device.id, DeviceChange(reference_id="late"),
        entries[-1].time - 1_000_000, TEST_ORIGIN, Action.DEVICE_UPDATE,
    )  # fmt: skip
    assert late is not None
    assert (await own_store.change_head()).time == entries[-1].time + 1
