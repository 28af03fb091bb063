"""Flux's source-controller and kustomize-controller against the test control plane, and
a Git repository they pull from over HTTP: real GitOps for the integration tests.

Example:
    server = GitServer(tmp_path / "git").start()
    repo = server.repository("fleet", tmp_path / "work")
    revision = repo.commit({"fleet/web.yaml": text}, "web: 5 instances")
    flux = FluxControllers(tmp_path / "flux", control_plane).start()
    ...                                    # a GitRepository on repo.url, a Kustomization
    flux.stop(); server.stop()

- The controllers are the binaries hack/flux.sh builds (with the Flux CRDs beside
  them); like galleon_testkit.binaries, nothing here builds, and a missing binary
  raises MissingBinaries, which callers turn into a skip (or a failure under CI=true).
- The Git server is Git's own smart HTTP protocol: `git http-backend` (Debian's git)
  run as a CGI program per request by a small HTTP server in a thread of the test
  process, on 127.0.0.1. It serves the bare repositories under its root, read-only;
  commits are pushed to the bare repository through the file system.
- source-controller serves its artifacts on 127.0.0.1 and advertises that address, so
  kustomize-controller downloads them from there; every port is picked at start.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterable, Mapping
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from galleon_testkit.binaries import REPO_ROOT, MissingBinaries
from galleon_testkit.processes import (
    LOOPBACK,
    ManagedProcess,
    free_port,
    http_ok,
    stop_all,
)

SCRIPT = REPO_ROOT / "hack" / "flux.sh"
CONTROLLERS = ("source-controller", "kustomize-controller")
START_TIMEOUT = 60.0
GIT_TIMEOUT = 60.0
#: One identity for every commit: the tests compare revisions, not authors.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "galleon tests",
    "GIT_AUTHOR_EMAIL": "tests@galleon.invalid",
    "GIT_COMMITTER_NAME": "galleon tests",
    "GIT_COMMITTER_EMAIL": "tests@galleon.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


def flux_bin_dir() -> Path:
    """The folder with both controllers and `crds/<controller>/` (`hack/flux.sh --print`)."""
    try:
        completed = subprocess.run(
            [str(SCRIPT), "--print"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise MissingBinaries(f"could not run {SCRIPT} --print: {error}") from error
    if completed.returncode != 0:
        reason = completed.stderr.strip() or completed.stdout.strip()
        raise MissingBinaries(f"the Flux controllers are not built ({reason}); run `hack/flux.sh`")
    return Path(completed.stdout.strip().splitlines()[-1])


def _git_env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **GIT_ENV}


def git(*args: str, cwd: Path, home: Path) -> str:
    """Run git in `cwd` with a private HOME; return stdout; raise with stderr on failure."""
    completed = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=_git_env(home),
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, by Content-Length or chunked transfer encoding."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


class _HttpBackend(BaseHTTPRequestHandler):
    """Runs `git http-backend` (CGI) for each request; the server holds the root."""

    server: _GitHTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def log_message(self, format: str, *args: Any) -> None:
        with self.server.log_lock, self.server.log_path.open("a") as log:
            log.write(f"{self.address_string()} {format % args}\n")

    def _cgi(self) -> None:
        path, _, query = self.path.partition("?")
        body = _read_body(self) if self.command == "POST" else b""
        env = {
            **_git_env(self.server.root),
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
        }
        for header in ("Git-Protocol", "Content-Encoding"):
            if self.headers.get(header):
                env["HTTP_" + header.upper().replace("-", "_")] = self.headers[header]
        completed = subprocess.run(
            ["git", "http-backend"],
            input=body,
            env=env,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
        head, payload = b"", completed.stdout
        for separator in (b"\r\n\r\n", b"\n\n"):  # CGI headers end with a blank line
            if separator in completed.stdout:
                head, payload = completed.stdout.split(separator, 1)
                break
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        if completed.returncode != 0 and not head:
            status, payload = 500, completed.stderr
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _GitHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, log_path: Path) -> None:
        super().__init__((LOOPBACK, 0), _HttpBackend)
        self.root, self.log_path, self.log_lock = root, log_path, threading.Lock()


class GitRepository:
    """A bare repository the server serves, and a working clone that commits to it."""

    def __init__(self, server: GitServer, name: str, workdir: Path) -> None:
        self.server, self.name, self.workdir = server, name, workdir
        self.bare = server.root / f"{name}.git"
        self.home = server.root
        for init in (["--bare", str(self.bare)], [str(workdir)]):
            git("init", "--quiet", "--initial-branch=main", *init, cwd=server.root, home=self.home)
        git("remote", "add", "origin", str(self.bare), cwd=workdir, home=self.home)

    @property
    def url(self) -> str:
        """The repository's HTTP URL, e.g. http://127.0.0.1:40123/fleet.git."""
        return f"{self.server.url}/{self.name}.git"

    def commit(self, files: Mapping[str, str], message: str, *, remove: Iterable[str] = ()) -> str:
        """Write `files` (path -> text), delete `remove`, commit on main and push it to
        the served repository; return the commit's SHA."""
        for relative, text in files.items():
            path = self.workdir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for relative in remove:
            (self.workdir / relative).unlink()
        git("add", "--all", ".", cwd=self.workdir, home=self.home)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.workdir, home=self.home)
        git("push", "--quiet", "origin", "main", cwd=self.workdir, home=self.home)
        return git("rev-parse", "HEAD", cwd=self.workdir, home=self.home).strip()


class GitServer:
    """Bare repositories under `root`, served read-only over Git's smart HTTP protocol."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.log_path = self.root / "http.log"
        self._server: _GitHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GitServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> GitServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._server = _GitHTTPServer(self.root, self.log_path)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="git-http-backend", daemon=True
        )
        self._thread.start()
        return self

    def repository(self, name: str, workdir: Path) -> GitRepository:
        """A new empty repository `name`, with its working clone in `workdir`."""
        return GitRepository(self, name, Path(workdir))

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


class FluxControllers:
    """source-controller and kustomize-controller as child processes of the test.

    They act as the admin of the control plane (its kubeconfig), watch every
    namespace, elect no leader and send no events to a notification-controller.
    `start()` installs the Flux CRDs first. Attributes after `start()`: `storage`
    (the artifact server's address), `logs` (controller name -> log file).
    """

    def __init__(self, workdir: Path, control_plane: Any) -> None:
        self.workdir = Path(workdir)
        self.control_plane = control_plane
        self.storage = ""
        self.logs: dict[str, Path] = {}
        self._processes: list[ManagedProcess] = []

    def __enter__(self) -> FluxControllers:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> FluxControllers:
        folder = flux_bin_dir()
        for name in CONTROLLERS:
            self.control_plane.apply_crds(folder / "crds" / name)
        home = self.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "KUBECONFIG": str(self.control_plane.kubeconfig),
        }
        self.storage = f"{LOOPBACK}:{free_port()}"
        (self.workdir / "storage").mkdir(exist_ok=True)
        extra = {
            "source-controller": [
                f"--storage-path={self.workdir / 'storage'}",
                f"--storage-addr={self.storage}",
                f"--storage-adv-addr={self.storage}",
            ],
            "kustomize-controller": [],
        }
        try:
            for name in CONTROLLERS:
                health = free_port()
                log = self.workdir / f"{name}.log"
                process = ManagedProcess(
                    name,
                    [
                        str(folder / name),
                        f"--metrics-addr={LOOPBACK}:{free_port()}",
                        f"--health-addr={LOOPBACK}:{health}",
                        "--watch-all-namespaces",
                        "--enable-leader-election=false",
                        "--events-addr=",
                        "--log-level=debug",
                        *extra[name],
                    ],
                    log,
                    env=env,
                )
                self._processes.append(process)
                self.logs[name] = log
                process.start()
                process.wait_until(
                    partial(http_ok, f"http://{LOOPBACK}:{health}/readyz"),
                    timeout=START_TIMEOUT,
                )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_all(self._processes)
        self._processes = []
