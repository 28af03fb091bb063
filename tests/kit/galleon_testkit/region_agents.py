"""Region agents (`galleon-region-agent`) inside the WAN's regions (`galleon_testkit.wan`):
the same agent code a Region's Deployment runs in production, placed in the region's
network namespace, so the registry bytes it moves cross that region's shaped link.

    agent = RegionAgentProcess(plane, region, "east", workdir / "east.log").start()
    ...                   # the operator hands the region's copies to it
    agent.kill()          # a crash mid-copy; agent.start() is its restart
    agent.stop()

The agent reaches the control plane (which listens on the host's 127.0.0.1) through
an `ApiForwarder`: a listener on 127.0.0.1 *inside* the region's namespace (so the
API server's certificate, issued for 127.0.0.1, still matches) that relays each
connection to the API server on the host's loopback. The API traffic is small and
does not go over the region's link; the registry traffic does.

Rules of this module: the forwarder's threads and sockets stop with `close()` (the
agent's `stop()`); the agent is a `ManagedProcess` (own session, one log, only what
we started is signalled), run as `ip netns exec NS <this interpreter> -c ...` so it
is the galleon beside the kit, with `KUBECONFIG` removed from its environment.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from galleon_testkit.operator import operator_env
from galleon_testkit.processes import LOOPBACK, ManagedProcess
from galleon_testkit.wan import WanRegion

CLONE_NEWNET = 0x40000000
CHUNK = 1 << 16


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def listen_in(netns: str, address: str = LOOPBACK) -> socket.socket:
    """A listening TCP socket on `address` (a free port) inside the named namespace.

    The namespace is entered by a short-lived thread (a network namespace is a
    thread's), which makes the socket there and leaves; the socket stays in it."""
    made: list[Any] = []

    def make() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, 0))
                sock.listen(64)
                made.append(sock)
            finally:
                _setns(own)
        except BaseException as error:  # reported to the caller's thread
            made.append(error)
        finally:
            os.close(target)
            os.close(own)

    thread = threading.Thread(target=make, name=f"listen-{netns}")
    thread.start()
    thread.join(timeout=10)
    if not made:
        raise RuntimeError(f"could not listen in namespace {netns}")
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


class ApiForwarder:
    """127.0.0.1:`port` inside a namespace, relayed to `target` on the host."""

    def __init__(self, netns: str, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = listen_in(netns)
        self.port = self.listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name=f"forward-{netns}", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                inner, _ = self.listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(self.target, timeout=10)
                outer.settimeout(None)
            except OSError:
                inner.close()
                continue
            with self._lock:
                self._open.update((inner, outer))
            for a, b in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
            with self._lock:
                for sock in (source, sink):
                    if sock in self._open and sock.fileno() == -1:
                        self._open.discard(sock)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()


def agent_kubeconfig(admin: Path, port: int, path: Path) -> Path:
    """`admin` pointed at 127.0.0.1:`port` (the forwarder) instead of the API server."""
    config = yaml.safe_load(admin.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://{LOOPBACK}:{port}"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


class RegionAgentProcess:
    """`galleon-region-agent --region NAME` inside a WAN region's namespace."""

    def __init__(
        self,
        kubeconfig: Path,
        api: tuple[str, int],
        wan_region: WanRegion,
        region: str,
        log: Path,
        *,
        namespace: str = "galleon-system",
        identity: str | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.forwarder = ApiForwarder(wan_region.netns, api)
        self.kubeconfig = agent_kubeconfig(
            kubeconfig, self.forwarder.port, log.with_suffix(".kubeconfig")
        )
        self.log = log
        argv = wan_region.argv(
            sys.executable,
            "-c",
            "from galleon.main import agent_main; agent_main()",
            f"--region={region}",
            f"--kubeconfig={self.kubeconfig}",
            f"--namespace={namespace}",
            f"--identity={identity or f'{region}-agent'}",
            "--status-interval=1",
            "--stale-after=5",
            "--verbose",
            *(extra or []),
        )
        self.process = ManagedProcess(
            f"region-agent-{region}", argv, log, env=operator_env({"PYTHONUNBUFFERED": "1"})
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def running(self) -> bool:
        return self.process.running()

    def start(self) -> RegionAgentProcess:
        self.process.start()
        self.process.wait_until(lambda: "takes tasks in namespace" in self.log_text(), timeout=60)
        return self

    def kill(self) -> None:
        """SIGKILL: a crash mid-copy."""
        self.process.kill()

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 15 s; then the forwarder. Safe to call twice."""
        self.process.signal_group(signal.SIGTERM)
        self.process.stop(grace=15)

    def close(self) -> None:
        self.stop()
        self.forwarder.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
