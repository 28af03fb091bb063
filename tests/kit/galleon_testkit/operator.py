"""The galleon operator as a child process: the one place that knows how to launch it.

Used by the pytest fixtures (`cluster_fixtures.operator_factory`), the local demo
and the benchmarks, so all of them run the operator the same way.

Rules of this module:

- The operator runs as `<this interpreter> -m galleon.main`, so it is the galleon
  installed beside the kit, never a `galleon-operator` found on $PATH.
- It talks to the cluster of the kubeconfig it is given: `KUBECONFIG` is removed
  from its environment, so it can never reach the user's real cluster.
- Its metrics and health endpoints listen on 127.0.0.1 only, on ports picked with
  `processes.free_port` unless the caller names one.
- It is started and stopped through `processes.ManagedProcess` (own session, one
  log file, only what we started is signalled); `start()` returns once `/healthz`
  answers, or fails with the tail of the log.
- The argv is `--kubeconfig`, the scope flags, `--metrics-port`, `--health-port`,
  `--bind-address`, `--allow-cidr=127.0.0.0/8`, `--verbose` when asked, then the
  caller's extra flags, in that order, and is written at the top of the log by
  `ManagedProcess.start`. Every registry of the kit listens on loopback, which the
  operator's address policy denies by default: the kit allows it, and a test that
  needs a denied address denies one inside it (`--deny-cidr=127.0.0.2/32`).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from galleon_testkit.processes import LOOPBACK, ManagedProcess, free_port, http_ok

LOOPBACK_NETWORK = "127.0.0.0/8"


def operator_argv(
    kubeconfig: Path,
    *,
    metrics_port: int,
    health_port: int,
    namespaces: Sequence[str] = (),
    all_namespaces: bool = False,
    verbose: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of the operator.

    Example: operator_argv(Path("k"), metrics_port=0, health_port=9000) ==
    [sys.executable, "-m", "galleon.main", "--kubeconfig=k", "--metrics-port=0",
    "--health-port=9000", "--bind-address=127.0.0.1", "--allow-cidr=127.0.0.0/8"].
    """
    scope = [f"--namespace={namespace}" for namespace in namespaces]
    if all_namespaces:
        scope.append("--all-namespaces")
    return [
        sys.executable,
        "-m",
        "galleon.main",
        f"--kubeconfig={kubeconfig}",
        *scope,
        f"--metrics-port={metrics_port}",
        f"--health-port={health_port}",
        f"--bind-address={LOOPBACK}",
        f"--allow-cidr={LOOPBACK_NETWORK}",
        *(["--verbose"] if verbose else []),
        *extra,
    ]


def operator_env(extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without `KUBECONFIG`, plus `extra_env`."""
    env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    env.update(extra_env or {})
    return env


class OperatorProcess:
    """The real galleon operator, run as `python -m galleon.main` against a control plane.

    Example:
        operator = OperatorProcess(plane.kubeconfig, workdir / "operator.log").start()
        ...                             # it reconciles what the caller creates
        operator.kill(); operator.start()   # a crash and a restart mid-work
        operator.stop()
    """

    def __init__(
        self,
        kubeconfig: Path,
        log: Path,
        *,
        namespaces: Sequence[str] = (),
        all_namespaces: bool = False,
        metrics_port: int | None = None,
        verbose: bool = False,
        extra: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """`metrics_port=None` picks a free port; 0 disables the metrics endpoint."""
        self.metrics_port = free_port() if metrics_port is None else metrics_port
        self.health_port = free_port()
        self.log = log
        self.process = ManagedProcess(
            "galleon-operator",
            operator_argv(
                kubeconfig,
                metrics_port=self.metrics_port,
                health_port=self.health_port,
                namespaces=namespaces,
                all_namespaces=all_namespaces,
                verbose=verbose,
                extra=extra,
            ),
            log,
            env=operator_env(extra_env),
        )

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"

    @property
    def health_url(self) -> str:
        return f"http://{LOOPBACK}:{self.health_port}/healthz"

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        """Launch the operator and wait until `/healthz` answers; return self."""
        self.process.start()
        self.process.wait_until(lambda: http_ok(self.health_url), timeout=timeout)
        return self

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to clean up."""
        self.process.kill()

    def stop(self) -> None:
        """SIGINT (as Ctrl-C), then SIGTERM, and SIGKILL after 15 s. Safe to call twice."""
        self.process.signal_group(signal.SIGINT)
        self.process.stop(grace=15)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
