"""Fixtures shared by every test tier.

The control-plane and registry fixtures live in the `galleon.testing` package so
that the local demo (`make demo`) starts exactly the same pieces as the tests.
"""

pytest_plugins = [
    "galleon.testing.cluster_fixtures",
    "galleon.testing.registry_fixtures",
]
