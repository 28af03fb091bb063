"""The worked examples in the pure modules' docstrings are run, so they stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "galleon.api.common",
    "galleon.api.crd",
    "galleon.api.customize",
    "galleon.api.imagetemplate",
    "galleon.api.region",
    "galleon.api.registry_hosts",
    "galleon.core.agent_tasks",
    "galleon.core.builds",
    "galleon.core.claims",
    "galleon.core.conditions",
    "galleon.core.expectations",
    "galleon.core.imageversion_status",
    "galleon.core.inplace",
    "galleon.core.instances",
    "galleon.core.layers",
    "galleon.core.merge_patch",
    "galleon.core.observed",
    "galleon.core.pass_budget",
    "galleon.core.podcache",
    "galleon.core.prepull",
    "galleon.core.reasons",
    "galleon.core.references",
    "galleon.core.replica_states",
    "galleon.core.replication",
    "galleon.core.rollout.model",
    "galleon.core.rollout.notes",
    "galleon.core.rollout.planner",
    "galleon.core.rollout.preview",
    "galleon.core.scaleset_status",
    "galleon.core.sharing",
    "galleon.core.times",
    "galleon.core.upgrade_trigger",
    "galleon.core.versions",
    "galleon.core.waves",
    "galleon.core.windows",
    "galleon.kube.credentials",
    "galleon.main",
    "galleon.oci.addresses",
    "galleon.oci.build",
    "galleon.oci.client",
    "galleon.oci.download",
    "galleon.oci.referrers",
    "galleon.controllers.loop",
    "galleon.controllers.scaleset.follow",
    "galleon.controllers.registries",
    "galleon.controllers.shared",
    "galleon.controllers.indexes",
    "galleon.controllers.common",
    "galleon.controllers.gallery",
    "galleon.metrics",
    "galleon.api.scaleset",
    "galleon.oci.manifest",
    "galleon.cli.outcome",
    "galleon.cli.render.plan",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(name)
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0, f"{name} has no worked example"
    assert failures == 0, f"{failures} of {tried} examples in {name} failed"
