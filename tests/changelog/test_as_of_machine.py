"""The device state machine (tests/core/test_device_state_machine.py) with the change log
watching: after every step the model's state is kept with the moment it held, and the
store answers "as of" each kept moment exactly as the model was then (also for devices
deleted since, and "not found" for devices made after it). On both stores."""

from __future__ import annotations

from typing import Any

import hypothesis
from hypothesis import HealthCheck
from hypothesis.stateful import invariant, run_state_machine_as_test

from devreg.changelog.records import DeviceRecord, device_record
from devreg.changelog.service import ChangeLogService
from devreg.core.errors import NotFound
from tests.core.test_device_state_machine import EXAMPLES, STEPS, DeviceMachine, World
from tests.core.test_device_state_machine import world as world  # the fixture

Moment = tuple[int, dict[bytes, DeviceRecord]]


class HistoryMachine(DeviceMachine):
    def __init__(self) -> None:
        super().__init__()
        self.log = ChangeLogService(self.world.store, self.world.store)  # type: ignore[arg-type]
        self.moments: list[Moment] = []
        self.as_of_checks = 0

    def snapshot(self) -> Moment:
        """Every device as the model holds it now, and a moment no later write shares."""
        states = {
            device_id: device_record(
                model.record(
                    self.accounts[model.account].id,
                    self.accounts[model.account].profiles[model.profile].id,
                ),
                model.values,
            )
            for device_id, model in self.devices.items()
        }
        # The log's last entry's time: every later write's entries are later (an entry
        # carries the time its write stamped, here the world's own clock, and never one
        # earlier than the entry before it), so this moment held exactly this state.
        moment = self.world.run(self.world.store.change_head()).time  # type: ignore[attr-defined]
        return moment, states

    @invariant()
    def as_of_agrees(self) -> None:
        if not self.accounts:
            return
        self.moments.append(self.snapshot())
        # this moment, the first, and one between: every moment is seen again many times
        chosen = {len(self.moments) - 1, 0, len(self.moments) // 2}
        self.world.run(self.check_as_of([self.moments[i] for i in sorted(chosen)]))

    def teardown(self) -> None:
        if self.moments:
            self.world.run(self.check_as_of(self.moments))

    async def check_as_of(self, moments: list[Moment]) -> None:
        for moment, states in moments:
            for device_id, model in self.devices.items():
                caller = self.caller(model.account, model.live_mode)
                self.as_of_checks += 1
                try:
                    then = await self.log.device_as_of(caller, device_id, moment)
                except NotFound:
                    assert device_id not in states, "a device the model held is not found"
                    continue
                assert device_id in states, "found before it was made"
                assert then == states[device_id], (then, states[device_id])


def test_as_of_every_earlier_step_is_the_model_then(world: World, backend: str | None) -> None:
    machine: Any = type("HistoryMachineRun", (HistoryMachine,), {"world": world})
    run_state_machine_as_test(
        machine,
        settings=hypothesis.settings(
            max_examples=EXAMPLES or (40 if backend is None else 10),
            stateful_step_count=STEPS or 30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    assert sum(world.outcomes.values()) > 0
