"""Real OCI registries on 127.0.0.1: Debian's `docker-registry` (distribution 2.x).

    with Registry(tmp_path / "reg") as registry:
        registry.host        # "127.0.0.1:41234"
        registry.stop(); registry.start()   # same port, same storage: a restart

Rules of this module: each registry has its own storage folder and config file
under its workdir, listens on 127.0.0.1 only, has deletion enabled (replicas are
removed by digest), and is started and stopped as a `ManagedProcess`. A missing
binary raises `MissingRegistry`, which fixtures turn into a skip locally and a
failure under CI=true.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType

import yaml

from galleon.testing.processes import LOOPBACK, ManagedProcess, free_port, http_ok

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT = 30.0


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

    def __init__(self, workdir: Path, port: int | None = None, name: str = "registry") -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.name = name
        self.storage = self.workdir / "storage"
        self.config = self.workdir / "config.yml"
        self.log = self.workdir / "registry.log"
        self._process: ManagedProcess | None = None

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": "galleon-test"},
        }
        self.config.write_text(yaml.safe_dump(config))

    def start(self) -> Registry:
        binary = registry_binary()
        self._write_config()
        self._process = ManagedProcess(
            f"{self.name}:{self.port}", [binary, "serve", str(self.config)], self.log
        )
        self._process.start()
        self._process.wait_until(lambda: http_ok(f"{self.url}/v2/"), timeout=START_TIMEOUT)
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
