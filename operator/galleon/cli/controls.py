"""The ScaleSet commands of `kubectl galleon`: steering a rollout (`pause`, `resume`,
`cancel`, `upgrade`) and its record (`history`).

Rules of this module:
- Writes are JSON merge patches of exactly the fields a command owns (`spec.paused`,
  one annotation), so they never undo someone else's change; an annotation's value
  is the time of the request (RFC 3339, to the second, from `galleon.clock`).
- Each command reads the ScaleSet before it writes and says, in one line, what the
  operator will do about the change (from what it read).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from galleon import clock
from galleon.cli import documents, render
from galleon.cli.cluster import Cluster
from galleon.cli.console import out, reported, say
from galleon.cli.documents import DocumentOutputOption
from galleon.cli.kinds import SCALESET
from galleon.cli.options import ContextOption, KubeconfigOption, NamespaceOption, ScaleSetName
from galleon.cli.outcome import arrow
from galleon.core import times
from galleon.core.instances import CANCEL_ANNOTATION, START_ANNOTATION


def _running(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The rolling upgrade if one is rolling forward."""
    upgrade = (obj.get("status") or {}).get("rollingUpgrade") or {}
    code = (upgrade.get("runningStatus") or {}).get("code")
    return upgrade if code == "RollingForward" else None


def _the_upgrade(upgrade: Mapping[str, Any]) -> str:
    """`the upgrade 1.0.0 → 1.0.2`."""
    return f"the upgrade {arrow(upgrade.get('fromVersion'), upgrade.get('toVersion'))}"


def _stops(upgrade: Mapping[str, Any]) -> str:
    """`the upgrade 1.0.0 → 1.0.2 stops after batch 3`."""
    return f"{_the_upgrade(upgrade)} stops after batch {upgrade.get('currentBatch') or 0}"


def _set_paused(
    name: str, paused: bool, namespace: str | None, kubeconfig: Path | None, context: str | None
) -> None:
    cluster = Cluster(kubeconfig, context, namespace)
    before = cluster.get(SCALESET, name)
    was = bool((before.get("spec") or {}).get("paused"))
    cluster.merge_patch(SCALESET, name, {"spec": {"paused": paused}})
    where = f"scaleset {name} in namespace {cluster.namespace}"
    if was == paused:
        say(f"{where} was already {'paused' if paused else 'not paused'} (spec.paused={paused})")
        return
    upgrade = _running(before)
    if paused:
        doing = _stops(upgrade) if upgrade else "no upgrade is running; none starts until resumed"
        say(f"paused {where} (spec.paused=true): {doing}")
    else:
        doing = f"{_the_upgrade(upgrade)} continues" if upgrade else "upgrades proceed again"
        say(f"resumed {where} (spec.paused=false): {doing}")


def pause(
    name: ScaleSetName,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Pause a ScaleSet's upgrade after its running batch (spec.paused: true)."""
    _set_paused(name, True, namespace, kubeconfig, context)


def resume(
    name: ScaleSetName,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Resume a paused ScaleSet (spec.paused: false)."""
    _set_paused(name, False, namespace, kubeconfig, context)


def _annotate(cluster: Cluster, name: str, key: str) -> datetime:
    """Set annotation `key` to now (RFC 3339, to the second); return that time."""
    moment = clock.now()
    cluster.merge_patch(SCALESET, name, {"metadata": {"annotations": {key: times.format(moment)}}})
    return moment


def cancel(
    name: ScaleSetName,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Cancel a ScaleSet's running upgrade after its current batch (annotation
    galleon.dev/cancel-upgrade set to now)."""
    cluster = Cluster(kubeconfig, context, namespace)
    before = cluster.get(SCALESET, name)
    stamp = times.format(_annotate(cluster, name, CANCEL_ANNOTATION))
    upgrade = _running(before)
    done = f"annotated scaleset {name} in namespace {cluster.namespace} {CANCEL_ANNOTATION}={stamp}"
    if upgrade:
        say(f"{done}: {_stops(upgrade)}")
    else:
        say(f"{done}: no upgrade is rolling forward now, so there is nothing to cancel")


def upgrade(
    name: ScaleSetName,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Start an upgrade of a ScaleSet to its target version (annotation
    galleon.dev/start-upgrade set to now): Manual mode, or retrying a faulted target."""
    cluster = Cluster(kubeconfig, context, namespace)
    before = cluster.get(SCALESET, name)
    moment = _annotate(cluster, name, START_ANNOTATION)
    status = before.get("status") or {}
    done = (
        f"annotated scaleset {name} in namespace {cluster.namespace} "
        f"{START_ANNOTATION}={times.format(moment)}"
    )
    running = _running(before)
    last_start = times.parse_or_none(
        ((status.get("rollingUpgrade") or {}).get("runningStatus") or {}).get("startTime")
    )
    if running:
        say(f"{done}: {_the_upgrade(running)} is already rolling forward")
    elif last_start is not None and moment <= last_start:
        say(
            f"{done}: the last upgrade started at {times.format(last_start)}, not before this "
            "request, so the operator ignores it; run the command again in a second",
            "yellow",
        )
    else:
        target = status.get("targetVersion") or "-"
        say(
            f"{done}: the operator upgrades the instances to {target} "
            f"(now on {status.get('currentVersion') or '-'})"
        )


def history(
    name: ScaleSetName,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    output: DocumentOutputOption = None,
) -> None:
    """The last OS upgrades of a ScaleSet, newest first (status.upgradeHistory; `-o
    json|yaml`: that list as stored, under `upgradeHistory`)."""
    cluster = Cluster(kubeconfig, context, namespace)
    obj = cluster.get(SCALESET, name)
    if output is not None:
        entries = (obj.get("status") or {}).get("upgradeHistory") or []
        documents.echo({"upgradeHistory": entries}, output)
        return
    console = out()
    console.print(
        render.heading(
            "UPGRADE HISTORY", Text(f"scaleset {name} in {cluster.namespace}, newest first")
        )
    )
    console.print(render.history_view(obj))


def register(app: typer.Typer) -> None:
    """Add the commands of this module to `app`, in the order `--help` lists them."""
    for name, help_, command in (
        (
            "pause",
            "Pause a ScaleSet: its upgrade stops after the running batch (spec.paused: true).",
            pause,
        ),
        ("resume", "Resume a paused ScaleSet (spec.paused: false).", resume),
        (
            "cancel",
            "Cancel a ScaleSet's running upgrade after its current batch (annotation "
            "galleon.dev/cancel-upgrade set to now).",
            cancel,
        ),
        (
            "upgrade",
            "Start an upgrade of a ScaleSet to its target version (annotation "
            "galleon.dev/start-upgrade set to now): in Manual mode, or to retry a faulted "
            "target.",
            upgrade,
        ),
        (
            "history",
            "The last OS upgrades of a ScaleSet, newest first (status.upgradeHistory).",
            history,
        ),
    ):
        app.command(name, help=help_)(reported(command))
