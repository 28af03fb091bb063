"""Download a build input over http(s): bounded, checked against its sha256, under
the operator's address policy.

Rules of this module:
- No credentials, no cookies, no proxy from the environment: a download is a
  plain GET of a URL the template names, and its checksum is what makes it safe.
- Every connection (and every redirect hop, at most 5) is judged by the address
  policy before anything is sent (`galleon.oci.addresses`).
- The bytes are hashed as they arrive and never held past `limit`; a body longer
  than `limit` or a digest that does not match is refused (`DownloadRefused`,
  permanent). A server that stops, stalls past the read deadline or answers 5xx
  is `Unavailable` (transient); 4xx is `DownloadRefused`.
- Messages name the URL without its query (a pre-signed URL's signature stays out
  of status and Events).
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from galleon.oci import errors
from galleon.oci.addresses import AddressPolicy, session_options

CHUNK = 256 * 1024
MAX_REDIRECTS = 5
TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=30)


class DownloadRefused(errors.RegistryError):
    """A download that no retry fixes (4xx, too big, not the checksum)."""

    permanent = True
    reason = "DownloadRefused"


def shown(url: str) -> str:
    """`url` without its query and fragment, for messages.

    >>> shown("https://bucket.example/tools.tar?X-Amz-Signature=abc")
    'https://bucket.example/tools.tar'
    """
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


async def download(url: str, sha256_hex: str, *, limit: int, policy: AddressPolicy | None) -> bytes:
    """The bytes at `url`, if at most `limit` of them and their sha256 is `sha256_hex`."""
    where = shown(url)
    options = session_options(policy)
    digest = hashlib.sha256()
    data = bytearray()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=options["resolver"]),
        timeout=TIMEOUT,
        trust_env=False,
        middlewares=options["middlewares"],
        max_line_size=8190,
        max_field_size=8190,
    ) as session:
        try:
            async with session.get(url, max_redirects=MAX_REDIRECTS) as response:
                if response.status >= 500:
                    raise errors.Unavailable(f"{where}: {response.status}")
                if response.status >= 400:
                    raise DownloadRefused(f"{where}: {response.status}")
                declared = response.content_length
                if declared is not None and declared > limit:
                    raise DownloadRefused(f"{where} is {declared} bytes, more than {limit}")
                async for chunk in response.content.iter_chunked(CHUNK):
                    data += chunk
                    if len(data) > limit:
                        raise DownloadRefused(f"{where} is more than {limit} bytes")
                    digest.update(chunk)
        except aiohttp.TooManyRedirects as error:
            raise DownloadRefused(f"{where}: more than {MAX_REDIRECTS} redirects") from error
        except TimeoutError as error:
            raise errors.Unavailable(f"{where}: no complete answer in time") from error
        except (aiohttp.ClientError, OSError) as error:
            raise errors.Unavailable(
                f"{where}: {type(error).__name__}: {str(error)[:200]}"
            ) from error
    got = digest.hexdigest()
    if got != sha256_hex:
        raise DownloadRefused(
            f"{where}: sha256 is {got}, the template's sha256Checksum is {sha256_hex}"
        )
    return bytes(data)
