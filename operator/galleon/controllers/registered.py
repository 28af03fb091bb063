"""Importing this module registers every galleon controller's kopf handlers."""

from galleon.controllers import gallery, imageversion, region, scaleset  # noqa: F401
