"""Importing this module registers every galleon controller's kopf handlers."""

from galleon.controllers import gallery, indexes, region  # noqa: F401
from galleon.controllers.builder import handlers as builder  # noqa: F401
from galleon.controllers.imageversion import handlers as imageversion  # noqa: F401
from galleon.controllers.scaleset import handlers as scaleset  # noqa: F401
