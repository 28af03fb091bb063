"""The entry points: `galleon-operator` (the operator) and `galleon-region-agent`
(a region's replication agent, `galleon.controllers.region_agent`).

Rules of this module: it parses flags, points the Kubernetes clients at the right
cluster, imports the controllers (which registers their kopf handlers) and runs
kopf's operator loop until a signal stops it. Settings live in
`galleon.controllers.config` and `galleon.controllers.runtime`, not here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
import zlib


def priority(text: str) -> int:
    """A peering priority: an integer, or "auto" for one derived from the pod's name.

    >>> priority("7"), priority("auto") == priority("auto"), 0 < priority("auto") <= 10**6
    (7, True, True)
    """
    if text != "auto":
        return int(text)
    return zlib.crc32(socket.gethostname().encode()) % 1_000_000 + 1


def cidr(text: str) -> str:
    """A network flag, checked now (a typo must stop the start, not allow everything).

    >>> cidr("127.0.0.0/8")
    '127.0.0.0/8'
    """
    import ipaddress

    try:
        return str(ipaddress.ip_network(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a network (CIDR with no host bits, e.g. 10.0.0.0/8)"
        ) from None


def cidrs(text: str) -> list[str]:
    """Networks of a comma-separated environment variable.

    >>> cidrs("10.0.0.0/8, fd00::/8"), cidrs("")
    (['10.0.0.0/8', 'fd00::/8'], [])
    """
    return [cidr(part) for part in text.split(",") if part.strip()]


def address_and_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags the operator and a region agent share: where they may connect, and
    debug logging."""
    parser.add_argument(
        "--deny-cidr",
        action="append",
        type=cidr,
        default=cidrs(os.environ.get("GALLEON_DENY_CIDRS", "")),
        help="network (CIDR) no registry, redirect or token realm may be reached in "
        "(repeatable; beside the default loopback, link-local and metadata addresses)",
    )
    parser.add_argument(
        "--allow-cidr",
        action="append",
        type=cidr,
        default=cidrs(os.environ.get("GALLEON_ALLOW_CIDRS", "")),
        help="network (CIDR) that may be reached (repeatable); the most specific "
        "--deny-cidr/--allow-cidr/default network containing an address decides",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def prepare(args: argparse.Namespace) -> None:
    """Point the Kubernetes clients at `--kubeconfig` and set the logging up."""
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="galleon-operator",
        description="Run the galleon operator: gallery replication and scale set OS upgrades.",
    )
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig to use (default: $KUBECONFIG, then in-cluster config)",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); Regions are cluster-scoped",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (default)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("GALLEON_METRICS_PORT", "8080")),
        help="port of the Prometheus /metrics endpoint (0 disables it)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=int(os.environ.get("GALLEON_HEALTH_PORT", "8081")),
        help="port of the liveness endpoint /healthz (0 disables it)",
    )
    parser.add_argument(
        "--bind-address",
        default=os.environ.get("GALLEON_BIND_ADDRESS", "0.0.0.0"),
        help="address the metrics and health endpoints listen on",
    )
    parser.add_argument(
        "--peering",
        default=os.environ.get("GALLEON_PEERING", ""),
        help="kopf peering name for leader/standby replicas (empty: standalone)",
    )
    parser.add_argument(
        "--priority",
        type=priority,
        default=priority(os.environ.get("GALLEON_PRIORITY", "0")),
        help='peering priority; replicas need distinct values ("auto": derived from the '
        "host name, distinct per pod)",
    )
    parser.add_argument(
        "--replication-concurrency",
        type=int,
        default=int(os.environ.get("GALLEON_REPLICATION_CONCURRENCY", "4")),
        help="image versions replicating at the same time",
    )
    parser.add_argument(
        "--namespace-replication-concurrency",
        type=int,
        default=(
            int(os.environ["GALLEON_NAMESPACE_REPLICATION_CONCURRENCY"])
            if os.environ.get("GALLEON_NAMESPACE_REPLICATION_CONCURRENCY")
            else None
        ),
        help="of those, image versions of one namespace (1 to --replication-concurrency; "
        "default 2, or --replication-concurrency when lower)",
    )
    parser.add_argument(
        "--build-concurrency",
        type=int,
        default=int(os.environ.get("GALLEON_BUILD_CONCURRENCY", "1")),
        help="image builds running at the same time (each holds its new layers in memory)",
    )
    parser.add_argument(
        "--build-max-step-mib",
        type=int,
        default=int(os.environ.get("GALLEON_BUILD_MAX_STEP_MIB", "64")),
        help="largest File or Archive step, in MiB of content (a layer is built in memory: "
        "about 7 MiB of memory per MiB at its peak)",
    )
    parser.add_argument(
        "--region-concurrency",
        type=int,
        default=int(os.environ.get("GALLEON_REGION_CONCURRENCY", "2")),
        help="registries of one region written to at the same time",
    )
    parser.add_argument(
        "--status-interval",
        type=float,
        default=float(os.environ.get("GALLEON_STATUS_INTERVAL", "2")),
        help="minimum seconds between two progress writes of one object's status",
    )
    parser.add_argument(
        "--agent-timeout",
        type=float,
        default=float(os.environ.get("GALLEON_AGENT_TIMEOUT", "60")),
        help="seconds a region agent may leave a copy untaken or go silent on one "
        "before the copy is retried (Regions with replication.copiedBy: RegionAgent)",
    )
    parser.add_argument(
        "--operator-namespace",
        default=os.environ.get("GALLEON_NAMESPACE", "galleon-system"),
        help="namespace of Secrets named by cluster-scoped Regions without a namespace",
    )
    address_and_logging_arguments(parser)
    args = parser.parse_args(argv)
    if args.namespace_replication_concurrency is None:
        args.namespace_replication_concurrency = min(2, max(1, args.replication_concurrency))
    if not 1 <= args.namespace_replication_concurrency <= max(1, args.replication_concurrency):
        parser.error(
            "--namespace-replication-concurrency (or $GALLEON_NAMESPACE_REPLICATION_CONCURRENCY)"
            f" is {args.namespace_replication_concurrency}; it must be from 1 to "
            f"--replication-concurrency ({args.replication_concurrency})"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    prepare(args)
    from galleon.controllers import runtime

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runtime.run(args))
    sys.exit(0)


def parse_agent_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="galleon-region-agent",
        description="Run a region's replication agent: copy image versions into the "
        "region's registries as the operator's ReplicationTasks say (Regions with "
        "replication.copiedBy: RegionAgent).",
    )
    parser.add_argument("--region", required=True, help="the Region this agent copies into")
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig to use (default: $KUBECONFIG, then in-cluster config)",
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("GALLEON_NAMESPACE", "galleon-system"),
        help="the operator's namespace: where its tasks and the Regions' Secrets are",
    )
    parser.add_argument(
        "--identity",
        default=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
        help="this agent's name in the tasks it takes (default: $POD_NAME, else host-pid)",
    )
    parser.add_argument("--concurrency", type=int, default=2, help="tasks copied at the same time")
    parser.add_argument(
        "--status-interval",
        type=float,
        default=2.0,
        help="seconds between two progress (and heartbeat) writes of a task",
    )
    parser.add_argument(
        "--stale-after",
        type=float,
        default=30.0,
        help="seconds after which a task another agent took but stopped reporting on is taken over",
    )
    address_and_logging_arguments(parser)
    return parser.parse_args(argv)


def agent_main(argv: list[str] | None = None) -> None:
    args = parse_agent_args(argv)
    prepare(args)
    from galleon.controllers import region_agent
    from galleon.controllers.registries import Registries
    from galleon.oci.addresses import AddressPolicy

    policy = AddressPolicy.of(deny=tuple(args.deny_cidr), allow=tuple(args.allow_cidr))
    registries = Registries(args.namespace, policy)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            region_agent.run(
                args.region,
                args.namespace,
                registries,
                args.identity,
                concurrency=max(1, args.concurrency),
                status_interval=max(0.1, args.status_interval),
                stale_after=max(1.0, args.stale_after),
            )
        )
    sys.exit(0)


if __name__ == "__main__":
    main()
