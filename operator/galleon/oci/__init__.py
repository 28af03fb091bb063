"""galleon's OCI registry client: resolve, copy (streamed, digest-checked, skipping
blobs already there, mounting within one registry, fanning out), delete."""

from galleon.oci.client import Manifest, RegistryClient, Resolution
from galleon.oci.copy import CopyResult, Target, copy_image, copy_image_to_many, delete_image
from galleon.oci.errors import RegistryError
from galleon.oci.reference import Reference, parse

__all__ = [
    "CopyResult",
    "Manifest",
    "Reference",
    "RegistryClient",
    "RegistryError",
    "Resolution",
    "Target",
    "copy_image",
    "copy_image_to_many",
    "delete_image",
    "parse",
]
