"""Real OCI registries on 127.0.0.1: Debian's `docker-registry` (distribution 2.x).

    with Registry(tmp_path / "reg") as registry:
        registry.host        # "127.0.0.1:41234"
        registry.stop(); registry.start()   # same port, same storage: a restart
    secured = Registry(tmp_path / "sec", credentials=("ci", "s3cret"), tls=True).start()
    secured.url          # "https://127.0.0.1:41235" (basic auth, CA in secured.ca_cert)

Rules of this module: each registry has its own storage folder and config file
under its workdir, listens on 127.0.0.1 only (or on an address of a network
namespace the test made: `address` and `netns`, see `galleon_testkit.wan`), has
deletion enabled (replicas are removed by digest), and is started and stopped as a
`ManagedProcess`. A missing binary raises `MissingRegistry`, which fixtures turn into
a skip locally and a failure under CI=true.
"""

from __future__ import annotations

import re
import shutil
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import yaml

from galleon_testkit import pki
from galleon_testkit.processes import LOOPBACK, ManagedProcess, free_port

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT = 30.0


#: A line of the registry's access log (Apache combined format, written to stdout).
ACCESS_LINE = re.compile(
    r'^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" '
    r'(?P<status>\d{3}) \S+ "[^"]*" "(?P<agent>[^"]*)"'
)


@dataclass(frozen=True)
class AccessLogEntry:
    """One request the registry answered, e.g. GET /v2/a/manifests/sha256:… 200 containerd/…"""

    method: str
    path: str
    status: int
    agent: str


class MissingRegistry(RuntimeError):
    """Debian's docker-registry is not installed (`apt-get install docker-registry`)."""


def registry_binary() -> str:
    found = shutil.which(REGISTRY_BINARY) or (
        "/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").exists() else None
    )
    if not found:
        raise MissingRegistry(
            "docker-registry not found; install it with `apt-get install docker-registry` "
            "(hack/setup.sh does)"
        )
    return found


class Registry:
    """One distribution registry on a loopback port, with its own storage."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        name: str = "registry",
        *,
        credentials: tuple[str, str] | None = None,
        tls: bool = False,
        access_log: bool = False,
        address: str = LOOPBACK,
        netns: str | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.address = address
        self.netns = netns
        self.port = port or free_port()
        self.name = name
        self.storage = self.workdir / "storage"
        self.config = self.workdir / "config.yml"
        self.log = self.workdir / "registry.log"
        self.credentials = credentials
        self.tls = tls
        self.access_log = access_log
        self.ca_cert: Path | None = None
        self._pki: pki.Pki | None = None
        self._process: ManagedProcess | None = None

    @property
    def host(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def _answers(self) -> bool:
        """GET /v2/ gets an HTTP answer from the registry (401 counts, with auth on)."""
        context = ssl.create_default_context(cafile=str(self.ca_cert)) if self.ca_cert else None
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=context))
        try:
            with urllib.request.build_opener(*handlers).open(f"{self.url}/v2/", timeout=3):
                return True
        except urllib.error.HTTPError as error:
            return error.code == 401
        except OSError:
            return False

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        http: dict[str, object] = {"addr": self.host, "secret": "galleon-test"}
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": not self.access_log}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
        }
        if self.credentials is not None:
            import bcrypt  # a test-only dependency: the registry wants bcrypt htpasswd

            user, password = self.credentials
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(f"{user}:{hashed}\n")
            config["auth"] = {"htpasswd": {"realm": "galleon-test", "path": str(htpasswd)}}
        if self.tls:
            if self._pki is None:  # one CA and serving pair (127.0.0.1) per registry
                self._pki = pki.generate(self.workdir / "pki")
            self.ca_cert = self._pki.ca_cert
            http["tls"] = {
                "certificate": str(self._pki.apiserver_cert),
                "key": str(self._pki.apiserver_key),
            }
        self.config.write_text(yaml.safe_dump(config))

    def requests(self) -> list[AccessLogEntry]:
        """What the registry served, from its access log (`access_log=True`)."""
        if not self.access_log:
            raise RuntimeError(f"registry {self.host} was started without its access log")
        entries = []
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            match = ACCESS_LINE.match(line)
            if match:
                entries.append(
                    AccessLogEntry(
                        match["method"], match["path"], int(match["status"]), match["agent"]
                    )
                )
        return entries

    @property
    def pid(self) -> int | None:
        """The registry's PID while it runs."""
        running = self._process is not None and self._process.running()
        return self._process.pid if running and self._process is not None else None

    def start(self) -> Registry:
        binary = registry_binary()
        self._write_config()
        argv = [binary, "serve", str(self.config)]
        if self.netns is not None:  # `ip netns exec` execs the registry: same PID
            argv = ["ip", "netns", "exec", self.netns, *argv]
        self._process = ManagedProcess(f"{self.name}:{self.port}", argv, self.log)
        self._process.start()
        self._process.wait_until(self._answers, timeout=START_TIMEOUT)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(grace=5)

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()

    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
