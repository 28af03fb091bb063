"""Child processes of the test harness: start, wait until ready, stop without strays.

Rules of this module:

- Every child starts in its own session (`start_new_session=True`), so its PID is
  also its process-group ID, and with `PR_SET_PDEATHSIG` so the kernel sends it
  SIGTERM if the Python process that started it dies without cleaning up.
- stdout and stderr go to one log file per process; nothing is piped (a full pipe
  would block the child).
- Stopping signals only what we started: the process group of a child whose exit
  has not been collected yet (so the group ID cannot have been reused), SIGTERM
  first, SIGKILL after a grace period.
- Every wait is bounded and fails early, with the tail of the log, when the
  child exits instead of becoming ready.
- Servers listen on 127.0.0.1 only; `free_port` hands out loopback ports and never
  the same one twice in one Python process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
_handed_out_ports: set[int] = set()
_PR_SET_PDEATHSIG = 1


class ProcessFailed(RuntimeError):
    """A child exited, or did not become ready in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and that we never handed out.

    There is a small window between closing our probe socket and the child binding
    the port; handing each port out once keeps our own children from colliding.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
        if port not in _handed_out_ports:
            _handed_out_ports.add(port)
            return int(port)
    raise RuntimeError("no free loopback port found")


def log_tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 64 * 1024))
            text = log.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGTERM it when our thread dies.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ManagedProcess:
    """One child process with a log file. Start it, check it, stop it.

    Example:
        etcd = ManagedProcess("etcd", ["/bin/etcd", ...], logs / "etcd.log")
        etcd.start()
        etcd.wait_until(lambda: http_ok("http://127.0.0.1:2379/health"), timeout=30)
        etcd.stop()
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        """Launch the child (appending to its log, so restarts keep the history)."""
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.started_at = time.monotonic()

    def wait_until(
        self, ready: Callable[[], bool], *, timeout: float, interval: float = 0.2
    ) -> float:
        """Poll `ready()` until true; return the seconds since start. Fail if the child exits."""
        deadline = time.monotonic() + timeout
        while True:
            if self.popen is None or self.popen.poll() is not None:
                code = self.popen.returncode if self.popen else None
                raise ProcessFailed(
                    f"{self.name} exited with code {code} before it was ready; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            with contextlib.suppress(Exception):
                if ready():
                    return time.monotonic() - self.started_at
            if time.monotonic() > deadline:
                raise ProcessFailed(
                    f"{self.name} was not ready after {timeout:.0f}s; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(interval)

    def signal_group(self, signum: int) -> None:
        """Signal the child's process group, only while its exit is not yet collected."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)

    def kill(self) -> None:
        """SIGKILL at once (a crash, as in `kill -9`) and collect the exit status."""
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=30)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL. Safe to call twice."""
        if self.popen is None:
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()


def http_ok(
    url: str,
    *,
    context: ssl.SSLContext | None = None,
    expect: bytes | None = None,
    timeout: float = 3.0,
) -> bool:
    """True when GET `url` answers 200 (and, if given, the body contains `expect`)."""
    # No proxies from the environment: everything we probe is on loopback.
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=timeout) as response:
            body = response.read()
    except (urllib.error.URLError, OSError):
        return False
    return response.status == 200 and (expect is None or expect in body)


def insecure_tls() -> ssl.SSLContext:
    """A TLS context for the self-signed health endpoints of KCM and the scheduler."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def stop_all(processes: Sequence[ManagedProcess], grace: float = 10.0) -> None:
    """Stop several children: SIGTERM all at once, then wait, then SIGKILL the stubborn."""
    for process in processes:
        process.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        if process.popen is None:
            continue
        try:
            process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
