"""`kubectl galleon dashboard`: a local, read-only web page of galleries, image
replication per region and ScaleSet rollouts, kept live by watches of the API.

Rules of this package:
- `model` is pure (what the page shows, from plain objects); `watches` keeps the
  cluster's objects with the user's kubeconfig (list and watch only); `server`
  serves the page, its JSON document and a Server-Sent Events stream of it (GET and
  HEAD only); this module is the command that ties them together.
- It listens on 127.0.0.1 unless `--address` names another address, and says so
  when that address is not loopback (whoever reaches it sees what the kubeconfig
  can read).
- It runs until Ctrl-C or SIGTERM, then stops its watches and its server.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated, Any

import typer

from galleon.cli.cluster import CliError, load_config
from galleon.cli.console import complain, reported, say
from galleon.cli.options import (
    AllNamespacesOption,
    ContextOption,
    KubeconfigOption,
    NamespaceOption,
)

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 3100
SHUTDOWN_SECONDS = 2.0
"""How long open streams get to end when the dashboard stops."""


async def serve(config: Any, namespace: str, all_namespaces: bool, address: str, port: int) -> None:
    """Watch, serve and print the URL; return on SIGINT or SIGTERM."""
    # Imported here, not at the top: every other command of the plugin starts without
    # loading the web server.
    from aiohttp import web
    from lightkube import ALL_NS, AsyncClient

    from galleon.cli.dashboard.server import allowed_hosts, is_loopback, make_app
    from galleon.cli.dashboard.watches import Store, follow

    scope = "all namespaces" if all_namespaces else f"namespace {namespace}"
    store = Store(scope)
    client = AsyncClient(config, namespace=namespace, trust_env=False)
    watched = ALL_NS if all_namespaces else namespace
    bound: list[int] = []
    app = make_app(store, lambda: allowed_hosts(address, bound[0]) if bound else frozenset())
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    tasks = [asyncio.create_task(follow(client, s, store, watched)) for s in store.sources]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, address, port)
        try:
            await site.start()
        except OSError as error:
            raise CliError(f"cannot listen on {address}:{port}: {error.strerror}") from error
        bound.append(_port(runner, port))
        host = f"[{address}]" if ":" in address else address
        say(f"galleon dashboard of {scope}: http://{host}:{bound[0]}/ (read only; Ctrl-C stops it)")
        if not is_loopback(address):
            complain(
                f"warning: listening on {address}: whoever can reach it sees everything "
                "your kubeconfig can read"
            )
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runner.cleanup()
        await client.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _port(runner: Any, asked: int) -> int:
    """The port the server listens on (the one the system chose for `--port 0`)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked


@reported
def dashboard(
    port: Annotated[
        int,
        typer.Option(
            "--port", help="Port to listen on (0: any free port; the URL is printed).", min=0
        ),
    ] = DEFAULT_PORT,
    address: Annotated[
        str,
        typer.Option(
            "--address",
            help="Address to listen on. Anything but loopback shows the cluster to "
            "whoever reaches it.",
        ),
    ] = DEFAULT_ADDRESS,
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Serve the dashboard until Ctrl-C."""
    config = load_config(kubeconfig, context)
    chosen = namespace or config.namespace
    asyncio.run(serve(config, chosen, all_namespaces, address, port))


def register(app: typer.Typer) -> None:
    """Add `dashboard` to `app`."""
    app.command(
        "dashboard",
        help=(
            "A live, read-only web page of galleries, image replication per region and "
            "ScaleSet rollouts, on http://127.0.0.1:3100/ (watches of the API with your "
            "kubeconfig)."
        ),
    )(dashboard)
