"""galleon: a shared image gallery with safe, batched OS image upgrades of scale sets."""

GROUP = "galleon.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
