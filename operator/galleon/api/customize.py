"""`ImageTemplate.spec.customize`: the typed steps a build applies to its source, each
one reproducible layer (File, Archive, Layer) or one edit of the image config
(Environment, Labels, Entrypoint, Cmd, WorkingDir, User), and the image references a
template reads (its source, a Layer step's image).

Rules of this module:
- A step describes; `galleon.core.layers` and `galleon.oci.build` turn it into bytes,
  refusing at build time what only the bytes can show (an archive's entries).
- `type` names the step, and exactly the member of that name is set: one CEL rule
  per member and the model's `_member_of_type`, with the same message.
- Every "exactly one of" is written twice, as a CEL rule and a model validator with
  the same message (`exactly_one_rule`, `check_exactly_one`), like every rule here.
- Secret and ConfigMap references are of the template's own namespace only; a
  Secret reference that names a namespace is refused, never silently pruned.
- Registry hosts and download URLs are refused at admission when they are
  link-local, metadata-service or unspecified addresses (`registry_hosts`).
- Messages name the field relative to the object the rule sits on (the API server
  prefixes the full path, e.g. `spec.customize[2].file.content`).
- CEL cost: 64 steps multiply every rule here; a rule comparing every pair of a
  step's list (environment names) is over budget, so the list-map alone refuses
  duplicates there.

Why a little over 600 lines: nine step types and their content sources, each rule
written twice; they are read together when writing or checking a step.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from galleon.api import registry_hosts
from galleon.api.common import (
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    IMAGE_REFERENCE_MAX,
    LABEL_NAME_MAX,
    NAME_MAX,
    LocalSecretReference,
    SpecModel,
    cel,
    list_map,
    local_secret_field,
    object_default,
    refuse_secret_namespace,
    validations,
)
from galleon.api.imageversion import ImageSource, SourceTLS

KIND = "ImageTemplate"
MAX_STEPS = 64
"""Most customization steps of a template: each is a layer or a config edit."""
STEP_NAME_MAX = LABEL_NAME_MAX
PATH_MAX = 4096
"""Longest path in the image (Linux's PATH_MAX; `galleon.core.layers` counts bytes)."""
INLINE_CONTENT_MAX = 256 * 1024
"""Longest inline file content, in characters (bigger files: a ConfigMap, a Secret or a URL)."""
URL_MAX = 2048
"""Longest download URL (room for a pre-signed object-store URL)."""
KEY_MAX = NAME_MAX
"""Longest ConfigMap or Secret key (Kubernetes' limit)."""
KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
"""A ConfigMap or Secret key (Kubernetes' grammar)."""
OWNER_ID_MAX = 2**31 - 1
"""Largest uid or gid accepted: the positive int32 range (`galleon.core.layers` takes
up to 2**32 - 2, but ids past 2**31 - 1 break tools that read them as signed)."""
MODE_MAX = 0o7777
MAX_ENVIRONMENT = 128
ENVIRONMENT_NAME_MAX = 256
ENVIRONMENT_VALUE_MAX = 32768
MAX_IMAGE_LABELS = 64
IMAGE_LABEL_KEY_MAX = 256
IMAGE_LABEL_VALUE_MAX = 8192
MAX_ARGUMENTS = 256
ARGUMENT_MAX = 4096
USER_MAX = 513

StepType = Literal[
    "File", "Archive", "Layer", "Environment", "Labels", "Entrypoint", "Cmd", "WorkingDir", "User"
]
STEP_MEMBERS: dict[str, str] = {
    "File": "file",
    "Archive": "archive",
    "Layer": "layer",
    "Environment": "environment",
    "Labels": "labels",
    "Entrypoint": "entrypoint",
    "Cmd": "cmd",
    "WorkingDir": "workingDir",
    "User": "user",
}
"""Each step type and the one member (wire name) a step of that type sets."""
CONTENT_MESSAGE = "content must set exactly one of inline, configMapKeyRef, secretKeyRef and url"
ARCHIVE_SOURCE_MESSAGE = "source must set exactly one of configMapKeyRef, secretKeyRef and url"
STEP_NAMES_MESSAGE = "customize must not name a step twice"
ENVIRONMENT_NAMES_MESSAGE = "environment must not name a variable twice"
ENVIRONMENT_NAME_MESSAGE = "name must be a variable name without '=' or NUL, e.g. \"PATH\""
IMAGE_LABEL_KEY_MESSAGE = (
    f"labels keys must be 1 to {IMAGE_LABEL_KEY_MAX} characters without NUL, "
    'e.g. "org.opencontainers.image.source"'
)
USER_MESSAGE = (
    'user must be a user name or uid, optionally followed by ":" and a group name or gid '
    '(letters, digits, ".", "_" and "-"), e.g. "nobody" or "1000:1000"'
)
SHA256_MESSAGE = (
    "sha256Checksum must be 64 lower-case hexadecimal digits: the sha256 of the downloaded bytes"
)
DOWNLOAD_URL_MESSAGE = (
    'url must be a URL starting with "https://" or "http://", with a host name of at most '
    "253 characters, e.g. https://downloads.example.com/motd"
)
IMAGE_SUBJECT = "image's registry host"
USER_PATTERN = r"^[A-Za-z0-9._-]{1,256}(:[A-Za-z0-9._-]{1,256})?$"
SHA256_PATTERN = r"^[a-f0-9]{64}$"
ENVIRONMENT_NAME_PATTERN = r"^[^=\x00]+$"
IMAGE_LABEL_KEY_PATTERN = rf"^[^\x00]{{1,{IMAGE_LABEL_KEY_MAX}}}$"
ABSOLUTE_PATH_PATTERN = r"^(/[^/\x00]+)+$"
"""An absolute path: `/` and names, no empty name, no trailing `/`, no NUL (RE2 and Python)."""
DOT_COMPONENT_PATTERN = r"(^|/)\.\.?(/|$)"


# -- rules written twice: a CEL rule and a model validator -----------------------------


def exactly_one_rule(members: tuple[str, ...], message: str) -> dict[str, str]:
    """The CEL rule "exactly one of `members` (wire names) is set".

    >>> exactly_one_rule(("a", "b"), "m")["rule"]
    '(has(self.a) ? 1 : 0) + (has(self.b) ? 1 : 0) == 1'
    """
    return cel(" + ".join(f"(has(self.{m}) ? 1 : 0)" for m in members) + " == 1", message)


def check_exactly_one(values: tuple[object, ...], message: str) -> None:
    """The model's half of `exactly_one_rule`: raise `message` unless exactly one of
    `values` is set (not None).

    >>> check_exactly_one((None, "x"), "m")
    >>> check_exactly_one((None, None), "content must set exactly one of a and b")
    Traceback (most recent call last):
    ...
    ValueError: content must set exactly one of a and b; got none
    """
    count = sum(value is not None for value in values)
    if count != 1:
        raise ValueError(f"{message}; got {count or 'none'}")


def path_messages(field: str, *, root: bool) -> tuple[str, str]:
    """The two refusals of an absolute path field: its grammar, then its dot components.

    >>> path_messages("destination", root=False)[1]
    'destination must not have a "." or ".." component'
    """
    grammar = (
        f'{field} must be an absolute path, e.g. "/etc/motd": "/" and names separated by '
        'single "/", without a trailing "/" or a NUL'
    )
    if root:
        grammar += ' ("/" itself is allowed)'
    return grammar, f'{field} must not have a "." or ".." component'


def absolute_path_field(field: str, description: str, *, root: bool, default: Any = ...) -> Any:
    """A path in the image: absolute and normalized (`check_absolute_path` is the
    model's half); `root` allows "/" itself."""
    grammar, dots = path_messages(field, root=root)
    rule = f"self.matches(r'{ABSOLUTE_PATH_PATTERN}')"
    return Field(
        default,
        min_length=1,
        max_length=PATH_MAX,
        description=description,
        json_schema_extra=validations(
            cel(f"self == '/' || {rule}" if root else rule, grammar),
            cel(f"!self.matches(r'{DOT_COMPONENT_PATTERN}')", dots),
        ),
    )


def check_absolute_path(path: str, field: str, *, root: bool) -> str:
    """`path`, unless `absolute_path_field`'s rules refuse it.

    >>> check_absolute_path("/etc/motd", "destination", root=False)
    '/etc/motd'
    >>> check_absolute_path("/", "destination", root=True)
    '/'
    >>> check_absolute_path("/etc/../shadow", "destination", root=False)
    Traceback (most recent call last):
    ...
    ValueError: destination must not have a "." or ".." component; got '/etc/../shadow'
    """
    grammar, dots = path_messages(field, root=root)
    if not (root and path == "/") and not re.fullmatch(ABSOLUTE_PATH_PATTERN, path):
        raise ValueError(f"{grammar}; got {path!r}")
    if re.search(DOT_COMPONENT_PATTERN, path):
        raise ValueError(f"{dots}; got {path!r}")
    return path


def check_pattern(value: str, pattern: str, message: str) -> str:
    """`value` if it matches `pattern` (the same RE2 pattern as the CEL rule), else
    ValueError with `message`."""
    if not re.fullmatch(pattern, value):
        raise ValueError(f"{message}; got {value!r}")
    return value


class TemplateSourceTLS(SourceTLS):
    """How to reach a registry over TLS: its CA Secret in the template's namespace."""

    ca_secret_ref: LocalSecretReference | None = local_secret_field(
        KIND,
        "caSecretRef",
        "Secret of the ImageTemplate's namespace whose key `ca.crt` holds the CA bundle to trust.",
    )

    @field_validator("ca_secret_ref")
    @classmethod
    def _own_namespace(cls, ref: LocalSecretReference | None) -> LocalSecretReference | None:
        return refuse_secret_namespace(ref, KIND, "caSecretRef")


class TemplateImageSource(ImageSource):
    """An OCI image read by a build: ImageVersion's `spec.source`, with Secrets of the
    template's namespace."""

    image: str = Field(
        min_length=1,
        max_length=IMAGE_REFERENCE_MAX,
        description="Image reference, e.g. registry.example.com/base/ubuntu:22.04 (its digest "
        "is recorded in the build's status). Its registry host must not be a link-local, "
        "metadata-service or unspecified address, nor a non-canonical numeric one.",
        json_schema_extra=validations(
            *registry_hosts.cel_rules(
                registry_hosts.IMAGE_AUTHORITY, registry_hosts.IMAGE_APPLIES, IMAGE_SUBJECT
            )
        ),
    )
    credentials_secret_ref: LocalSecretReference | None = local_secret_field(
        KIND,
        "credentialsSecretRef",
        "Secret of the ImageTemplate's namespace with credentials to read the image (for a "
        "`.dockerconfigjson`, the entry of the image's registry host).",
    )
    tls: TemplateSourceTLS | None = Field(
        default=None, description="TLS settings for the registry."
    )

    @field_validator("credentials_secret_ref")
    @classmethod
    def _own_namespace(cls, ref: LocalSecretReference | None) -> LocalSecretReference | None:
        return refuse_secret_namespace(ref, KIND, "credentialsSecretRef")

    @field_validator("image")
    @classmethod
    def _registry_host(cls, image: str) -> str:
        registry_hosts.check(registry_hosts.image_authority(image), IMAGE_SUBJECT)
        return image


# -- the steps -------------------------------------------------------------------


class ConfigMapKeyReference(SpecModel):
    """One key of a ConfigMap of the template's namespace."""

    name: str = Field(
        max_length=NAME_MAX, pattern=DNS_SUBDOMAIN_PATTERN, description="Name of the ConfigMap."
    )
    key: str = Field(
        max_length=KEY_MAX,
        pattern=KEY_PATTERN,
        description="Key, of `data` (text) or `binaryData` (bytes).",
    )


class SecretKeyReference(LocalSecretReference):
    """One key of a Secret of the template's namespace."""

    key: str = Field(max_length=KEY_MAX, pattern=KEY_PATTERN, description="Key of the Secret.")


class Download(SpecModel):
    """Bytes fetched over http(s) when a build runs, used only if their sha256 matches."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "(self.url.startsWith('https://') || self.url.startsWith('http://')) "
                "&& isURL(self.url) && url(self.url).getHostname() != '' "
                f"&& size(url(self.url).getHostname()) <= {NAME_MAX}",
                DOWNLOAD_URL_MESSAGE,
                field_path=".url",
            )
        )
    }

    url: str = Field(
        max_length=URL_MAX,
        description="https:// (or http://: the checksum makes it safe) URL to download. Its "
        "host must not be a link-local, metadata-service or unspecified address, nor a "
        "non-canonical numeric one.",
        json_schema_extra=validations(
            *registry_hosts.cel_rules(
                registry_hosts.URL_AUTHORITY, registry_hosts.URL_APPLIES, registry_hosts.URL_SUBJECT
            )
        ),
    )
    sha256_checksum: str = Field(
        min_length=64,
        max_length=64,
        description="sha256 of the downloaded bytes, 64 lower-case hexadecimal digits; a "
        "download that does not match fails the build.",
        json_schema_extra=validations(cel(f"self.matches(r'{SHA256_PATTERN}')", SHA256_MESSAGE)),
    )

    @field_validator("url")
    @classmethod
    def _http_or_https(cls, url: str) -> str:
        try:
            host = urlsplit(url).hostname
        except ValueError:  # e.g. "http://[::1": not a URL at all
            host = None
        scheme_ok = url.startswith(("https://", "http://"))
        if not scheme_ok or not host or len(host) > NAME_MAX or any(c.isspace() for c in url):
            raise ValueError(DOWNLOAD_URL_MESSAGE)
        registry_hosts.check(registry_hosts.url_authority(url), registry_hosts.URL_SUBJECT)
        return url

    @field_validator("sha256_checksum")
    @classmethod
    def _hex(cls, checksum: str) -> str:
        return check_pattern(checksum, SHA256_PATTERN, SHA256_MESSAGE)


class Owner(SpecModel):
    """Numeric owner of what a step writes."""

    uid: int = Field(default=0, ge=0, le=OWNER_ID_MAX, description="User id.")
    gid: int = Field(default=0, ge=0, le=OWNER_ID_MAX, description="Group id.")


class FileContent(SpecModel):
    """Where a file's bytes come from: exactly one member."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            exactly_one_rule(("inline", "configMapKeyRef", "secretKeyRef", "url"), CONTENT_MESSAGE)
        )
    }

    inline: str | None = Field(
        default=None,
        max_length=INLINE_CONTENT_MAX,
        description=f"The text itself (UTF-8), at most {INLINE_CONTENT_MAX} characters.",
    )
    config_map_key_ref: ConfigMapKeyReference | None = Field(
        default=None, description="A key of a ConfigMap of the template's namespace."
    )
    secret_key_ref: SecretKeyReference | None = local_secret_field(
        KIND,
        "secretKeyRef",
        "A key of a Secret of the template's namespace (its value never appears in status, "
        "events or logs).",
    )
    url: Download | None = Field(
        default=None, description="A download, checked against its sha256."
    )

    @field_validator("secret_key_ref")
    @classmethod
    def _own_namespace(cls, ref: SecretKeyReference | None) -> SecretKeyReference | None:
        refuse_secret_namespace(ref, KIND, "secretKeyRef")
        return ref

    @model_validator(mode="after")
    def _exactly_one(self) -> FileContent:
        members = (self.inline, self.config_map_key_ref, self.secret_key_ref, self.url)
        check_exactly_one(members, CONTENT_MESSAGE)
        return self


class FileStep(SpecModel):
    """One file written into the image, as one layer."""

    destination: str = absolute_path_field(
        "destination",
        f"Absolute path of the file in the image, e.g. /etc/motd (at most {PATH_MAX} "
        "characters); its missing parent directories are created 0755, owned by 0:0.",
        root=False,
    )
    mode: int = Field(
        default=0o644,
        ge=0,
        le=MODE_MAX,
        description="Permission bits as a decimal integer: 420 is 0644 (the default), 493 is "
        "0755, at most 4095 (07777). kubectl reads a YAML 0644 as octal too.",
    )
    owner: Owner = Field(
        default_factory=Owner,
        description="Numeric owner of the file (default 0:0).",
        json_schema_extra=object_default(Owner),
    )
    content: FileContent = Field(description="The file's bytes: exactly one source.")

    @field_validator("destination")
    @classmethod
    def _absolute(cls, destination: str) -> str:
        return check_absolute_path(destination, "destination", root=False)


class ArchiveSource(SpecModel):
    """Where an archive's bytes come from: exactly one member."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            exactly_one_rule(("configMapKeyRef", "secretKeyRef", "url"), ARCHIVE_SOURCE_MESSAGE)
        )
    }

    config_map_key_ref: ConfigMapKeyReference | None = Field(
        default=None, description="A key of a ConfigMap's binaryData, of the template's namespace."
    )
    secret_key_ref: SecretKeyReference | None = local_secret_field(
        KIND, "secretKeyRef", "A key of a Secret of the template's namespace."
    )
    url: Download | None = Field(
        default=None, description="A download, checked against its sha256."
    )

    @field_validator("secret_key_ref")
    @classmethod
    def _own_namespace(cls, ref: SecretKeyReference | None) -> SecretKeyReference | None:
        refuse_secret_namespace(ref, KIND, "secretKeyRef")
        return ref

    @model_validator(mode="after")
    def _exactly_one(self) -> ArchiveSource:
        check_exactly_one(
            (self.config_map_key_ref, self.secret_key_ref, self.url), ARCHIVE_SOURCE_MESSAGE
        )
        return self


class ArchiveStep(SpecModel):
    """A tar (plain or gzip) unpacked into the image, as one layer."""

    destination: str = absolute_path_field(
        "destination",
        "Absolute directory the archive is unpacked under, e.g. /opt/tools or /. Entries "
        "with absolute names, `..`, links leaving the destination or device nodes fail the "
        "build.",
        root=True,
    )
    owner: Owner | None = Field(
        default=None,
        description="Numeric owner of every entry (default: each entry's own owner in the "
        "archive).",
    )
    source: ArchiveSource = Field(description="The archive's bytes: exactly one source.")

    @field_validator("destination")
    @classmethod
    def _absolute(cls, destination: str) -> str:
        return check_absolute_path(destination, "destination", root=True)


class LayerStep(SpecModel):
    """The layers of another OCI image, put on top in their order (nothing else of it:
    its config is not merged)."""

    image: TemplateImageSource = Field(
        description="The image whose layers are added (resolved to a digest when a build starts)."
    )


class EnvironmentVariable(SpecModel):
    """One variable of the image's environment."""

    name: str = Field(
        min_length=1,
        max_length=ENVIRONMENT_NAME_MAX,
        description="Variable name; it replaces a variable of that name in place.",
        json_schema_extra=validations(
            cel(f"self.matches(r'{ENVIRONMENT_NAME_PATTERN}')", ENVIRONMENT_NAME_MESSAGE)
        ),
    )
    value: str = Field(
        default="", max_length=ENVIRONMENT_VALUE_MAX, description="Value (may be empty)."
    )

    @field_validator("name")
    @classmethod
    def _variable_name(cls, name: str) -> str:
        return check_pattern(name, ENVIRONMENT_NAME_PATTERN, ENVIRONMENT_NAME_MESSAGE)


def distinct_names_rule(message: str) -> dict[str, str]:
    """CEL: no two items of the list share a `name` (the list-map refuses it too, with
    a generic "Duplicate value")."""
    return cel("self.all(a, self.exists_one(b, b.name == a.name))", message)


def check_distinct_names(names: list[str], message: str) -> None:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{message}: {duplicates}")


Argument = Annotated[str, Field(max_length=ARGUMENT_MAX)]
ImageLabelValue = Annotated[str, Field(max_length=IMAGE_LABEL_VALUE_MAX)]


class CustomizeStep(SpecModel):
    """One customization: `type` names it, and the member of that name says what it does."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            *(
                cel(
                    f"(self.type == '{step_type}') == has(self.{member})",
                    f'{member} must be set when type is "{step_type}", and only then',
                    field_path=f".{member}",
                )
                for step_type, member in STEP_MEMBERS.items()
            )
        )
    }

    name: str = Field(
        max_length=STEP_NAME_MAX,
        pattern=DNS_LABEL_PATTERN,
        description="Name of the step, unique in the template (a DNS label): the build's "
        "status reports each step by it.",
    )
    type: StepType = Field(
        description="File, Archive, Layer, Environment, Labels, Entrypoint, Cmd, WorkingDir or "
        "User; the step sets the member of that name (file, archive, ...) and no other."
    )
    file: FileStep | None = Field(default=None, description="File: one file, as a layer.")
    archive: ArchiveStep | None = Field(
        default=None, description="Archive: a tar or tar.gz unpacked, as a layer."
    )
    layer: LayerStep | None = Field(
        default=None, description="Layer: another image's layers on top."
    )
    environment: list[EnvironmentVariable] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ENVIRONMENT,
        description="Environment: variables set in the image config (new ones after the "
        "base's); a name given twice is refused.",
        # Only the list-map refuses a name twice at admission ("Duplicate value"): a CEL
        # rule comparing every pair would cost over budget at 64 steps of 128 variables.
        json_schema_extra=list_map("name"),
    )
    labels: dict[str, ImageLabelValue] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_IMAGE_LABELS,
        description="Labels: image config labels, merged over the base's.",
        json_schema_extra=validations(
            cel(f"self.all(k, k.matches(r'{IMAGE_LABEL_KEY_PATTERN}'))", IMAGE_LABEL_KEY_MESSAGE)
        ),
    )
    entrypoint: list[Argument] | None = Field(
        default=None,
        max_length=MAX_ARGUMENTS,
        description="Entrypoint: replaces the entrypoint (empty: none; as in a Dockerfile, an "
        "inherited Cmd is dropped with it).",
    )
    cmd: list[Argument] | None = Field(
        default=None,
        max_length=MAX_ARGUMENTS,
        description="Cmd: replaces the default arguments (empty: none).",
    )
    working_dir: str | None = absolute_path_field(
        "workingDir",
        "WorkingDir: the absolute working directory, e.g. /srv.",
        root=True,
        default=None,
    )
    user: str | None = Field(
        default=None,
        max_length=USER_MAX,
        description='User: name or uid, optionally ":" and a group name or gid, e.g. "1000:1000".',
        json_schema_extra=validations(cel(f"self.matches(r'{USER_PATTERN}')", USER_MESSAGE)),
    )

    @field_validator("environment")
    @classmethod
    def _distinct_variables(
        cls, variables: list[EnvironmentVariable] | None
    ) -> list[EnvironmentVariable] | None:
        check_distinct_names([v.name for v in variables or []], ENVIRONMENT_NAMES_MESSAGE)
        return variables

    @field_validator("labels")
    @classmethod
    def _label_keys(cls, labels: dict[str, str] | None) -> dict[str, str] | None:
        for key in labels or {}:
            check_pattern(key, IMAGE_LABEL_KEY_PATTERN, IMAGE_LABEL_KEY_MESSAGE)
        return labels

    @field_validator("working_dir")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        return None if path is None else check_absolute_path(path, "workingDir", root=True)

    @field_validator("user")
    @classmethod
    def _user(cls, user: str | None) -> str | None:
        return None if user is None else check_pattern(user, USER_PATTERN, USER_MESSAGE)

    @model_validator(mode="after")
    def _member_of_type(self) -> CustomizeStep:
        for step_type, member in STEP_MEMBERS.items():
            attribute = "working_dir" if member == "workingDir" else member
            if (self.type == step_type) != (getattr(self, attribute) is not None):
                raise ValueError(f'{member} must be set when type is "{step_type}", and only then')
        return self
