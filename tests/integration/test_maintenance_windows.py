"""Maintenance windows end to end: the real operator and API server (kwok nodes), real
registries. A deny window that covers now holds a new version's upgrade before its
first batch and the ScaleSet says when the window ends; once the window is changed
the upgrade runs to completion. A window that closes mid-upgrade lets the running
batch finish and starts no other. What admission can check is refused by the API
server; what it cannot (a time zone that does not exist) is said on the ScaleSet,
with one Event, and nothing starts until it is fixed.

The windows are written relative to the test's own clock (a daily window that began
ten minutes ago, in Europe/Berlin), so the run does not depend on the time of day.
Every wait is a bounded poll on the ScaleSet's status.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from lightkube.core.exceptions import ApiError

from galleon_testkit.fleets import FleetHarness
from galleon_testkit.waiting import stays_true, wait_for

pytestmark = pytest.mark.integration
BERLIN = ZoneInfo("Europe/Berlin")


def covering_now(
    name: str, *, deny: bool, hours: int = 2, ago: timedelta = timedelta(minutes=10)
) -> tuple[dict[str, Any], datetime]:
    """A daily window in Berlin that opened `ago` (to the minute) and lasts `hours`,
    and the instant its opening ends."""
    opened = (datetime.now(UTC) - ago).astimezone(BERLIN)
    opened = opened.replace(second=0, microsecond=0)
    rule = {
        "name": name,
        "rrule": f"FREQ=DAILY;BYHOUR={opened.hour};BYMINUTE={opened.minute}",
        "duration": f"PT{hours}H",
        "timeZone": "Europe/Berlin",
        "deny": deny,
    }
    return rule, opened + timedelta(hours=hours)


def conditions(fleet: FleetHarness, name: str) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in fleet.status(name).get("conditions") or []}


def condition_is(
    fleet: FleetHarness, name: str, type_: str, status: str, reason: str
) -> dict[str, Any] | None:
    found = conditions(fleet, name).get(type_) or {}
    return found if (found.get("status"), found.get("reason")) == (status, reason) else None


def windows(fleet: FleetHarness, name: str, *rules: dict[str, Any]) -> None:
    fleet.patch(name, {"spec": {"upgradePolicy": {"maintenanceWindows": list(rules)}}})


def versions(fleet: FleetHarness, name: str) -> set[str]:
    return {p.metadata.labels["galleon.dev/version"] for p in fleet.pods(name)}


def test_a_deny_window_holds_a_new_version_until_it_is_changed(fleet: FleetHarness) -> None:
    fleet.scaleset("held", 5)
    fleet.wait_fleet("held", "1.0.0", 5)
    freeze, ends = covering_now("freeze", deny=True)
    windows(fleet, "held", freeze)
    found = wait_for(
        lambda: condition_is(fleet, "held", "MaintenanceWindow", "False", "InsideDenyWindow"),
        timeout=30,
        description="MaintenanceWindow False, InsideDenyWindow",
    )
    # The condition names when the deny window ends, on Berlin's wall clock.
    assert found["message"].startswith(
        f"inside deny window 'freeze': next opens {ends.isoformat(timespec='seconds')} (in 1h5"
    ), found["message"]
    assert found["message"].endswith(", when it ends)")

    fleet.publish("1.0.2", [fleet.east])
    upgrading = wait_for(
        lambda: condition_is(fleet, "held", "Upgrading", "False", "InsideDenyWindow"),
        timeout=60,
        description="Upgrading False: the upgrade to 1.0.2 waits for the window",
    )
    assert upgrading["message"].startswith("the upgrade to 1.0.2 waits: inside deny window")
    assert fleet.status("held")["targetVersion"] == "1.0.2"
    stays_true(
        lambda: (
            versions(fleet, "held") == {"1.0.0"}
            and not fleet.status("held").get("rollingUpgrade")
            and not fleet.events("held", "BatchStarted")
        ),
        duration=6,
        description="no batch starts inside the deny window",
    )
    ready = conditions(fleet, "held")["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "InstancesHealthy")

    # The window changed to an allow window that covers now: the upgrade runs.
    allow, _ = covering_now("now", deny=False)
    windows(fleet, "held", allow)
    status = fleet.wait_upgrade("held", "Completed", timeout=120)
    fleet.wait_fleet("held", "1.0.2", 5)
    assert status["rollingUpgrade"]["startedBy"] == "Platform"
    assert len(fleet.events("held", "BatchStarted")) == 5
    window = conditions(fleet, "held")["MaintenanceWindow"]
    assert (window["status"], window["reason"]) == ("True", "InsideMaintenanceWindow")


def test_a_window_closing_mid_upgrade_lets_the_batch_finish_and_holds_the_next(
    fleet: FleetHarness,
) -> None:
    fleet.scaleset("mid", 10, annotations={"galleon.test/ready-delay": "2s"})
    fleet.wait_fleet("mid", "1.0.0", 10)
    fleet.publish("1.0.2", [fleet.east])
    wait_for(
        lambda: (fleet.status("mid").get("rollingUpgrade") or {}).get("currentBatch") == 1,
        timeout=60,
        description="batch 1 running",
    )
    freeze, _ = covering_now("freeze", deny=True)
    windows(fleet, "mid", freeze)

    def batch() -> int:
        return int(fleet.status("mid")["rollingUpgrade"]["currentBatch"])

    held = wait_for(
        lambda: fleet.status("mid")["rollingUpgrade"]["phase"] == "Pausing" and batch(),
        timeout=60,
        description="the running batch to finish",
    )
    stays_true(lambda: batch() == held, duration=6, description="no new batch while held")
    found = conditions(fleet, "mid")
    assert (found["Ready"]["status"], found["Ready"]["reason"]) == ("False", "InsideDenyWindow")
    assert found["Reconciling"]["status"] == "False"
    assert (found["Upgrading"]["status"], found["Upgrading"]["reason"]) == (
        "True",
        "RollingForward",
    )
    assert "the next batch waits: inside deny window 'freeze'" in found["Upgrading"]["message"]
    upgrade = fleet.status("mid")["rollingUpgrade"]
    assert upgrade["runningStatus"]["code"] == "RollingForward"
    assert upgrade["upgradedInstances"] == list(range(2 * held))

    windows(fleet, "mid")  # removed: any time again
    fleet.wait_upgrade("mid", "Completed", timeout=120)
    fleet.wait_fleet("mid", "1.0.2", 10)


def test_windows_admission_cannot_check_are_refused_on_the_scaleset(fleet: FleetHarness) -> None:
    # What the schema can check, the API server refuses.
    fleet.scaleset("zone", 2)
    with pytest.raises(ApiError) as refused:
        windows(fleet, "zone", {"rrule": "FREQ=DAILY", "cron": "0 2 * * *", "duration": "PT1H"})
    assert "exactly one of rrule and cron" in str(refused.value)
    with pytest.raises(ApiError) as refused:
        windows(fleet, "zone", {"rrule": "FREQ=DAILY;COUNT=3", "duration": "PT1H"})
    assert "must not use COUNT" in str(refused.value)

    fleet.wait_fleet("zone", "1.0.0", 2)
    windows(fleet, "zone", {"cron": "0 2 * * *", "duration": "PT1H", "timeZone": "Mars/Olympus"})
    found = wait_for(
        lambda: condition_is(
            fleet, "zone", "MaintenanceWindow", "False", "InvalidMaintenanceWindow"
        ),
        timeout=30,
        description="MaintenanceWindow False, InvalidMaintenanceWindow",
    )
    assert found["message"].startswith(
        "maintenanceWindows[0].timeZone: 'Mars/Olympus' is not an IANA time zone name"
    )
    stalled = conditions(fleet, "zone")["Stalled"]
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidMaintenanceWindow")
    fleet.publish("1.0.2", [fleet.east])
    wait_for(
        lambda: fleet.status("zone").get("targetVersion") == "1.0.2",
        timeout=60,
        description="1.0.2 is the target",
    )
    stays_true(
        lambda: (
            versions(fleet, "zone") == {"1.0.0"} and not fleet.status("zone").get("rollingUpgrade")
        ),
        duration=4,
        description="no upgrade starts while the windows cannot be read",
    )
    assert len(fleet.events("zone", "InvalidMaintenanceWindow")) == 1

    # Fixed: a deny window that ended two hours ago allows a batch now.
    ended, _ = covering_now("ended", deny=True, hours=1, ago=timedelta(hours=3))
    windows(fleet, "zone", ended)
    status = fleet.wait_upgrade("zone", "Completed", timeout=120)
    assert status["rollingUpgrade"]["toVersion"] == "1.0.2"
    window = conditions(fleet, "zone")["MaintenanceWindow"]
    assert (window["status"], window["reason"]) == ("True", "OutsideDenyWindows")
