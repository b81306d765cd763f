"""``market dashboard``: serve the browser dashboard (:mod:`market.apps.dashboard`) with Solara.

The process becomes ``python -m solara run market/apps/dashboard.py`` in production mode (no
auto-reload), bound to loopback by default, so signals (Ctrl-C, SIGTERM) reach the server
itself and no orphan is left behind. ``--host 0.0.0.0`` exposes it to the network (it
has no authentication).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from market.errors import MarketInputError

NAME = "dashboard"
HELP = "serve the browser dashboard (Mesa SolaraViz)"
DESCRIPTION = ("Serve the interactive dashboard: pick a scenario and a mechanism, set weights, pricing, clusters "
               "and market size, then step or play the market round by round.")

#: the Solara app (defines ``page``)
APP = Path(__file__).resolve().parents[1] / "dashboard.py"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 1..65535, got {port}")
    return port


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``market dashboard``."""
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=_port, default=8765, help="port (default 8765)")
    p.add_argument("--open", action="store_true", help="also open the page in a web browser")


def server_command(host: str, port: int, open_browser: bool = False) -> list[str]:
    """The ``solara run`` command line that serves the dashboard."""
    return [
        sys.executable, "-m", "solara", "run", str(APP), "--host", host, "--port", str(port), "--production",
        "--open" if open_browser else "--no-open",
    ]


def check_port_free(host: str, port: int) -> None:
    """Fail early, in one line, if ``host:port`` cannot be bound.

    Raises:
        MarketInputError: if the address is in use or not an address of this machine.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise MarketInputError(f"--host {host!r}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(address)
        except OSError as exc:
            raise MarketInputError(f"cannot serve on {host}:{port}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    """``market dashboard``: replace this process with the Solara server."""
    check_port_free(args.host, args.port)
    if args.host not in LOOPBACK:
        print(f"warning: serving on {args.host}: anyone who can reach it can use the dashboard", file=sys.stderr)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"dashboard on http://{shown}:{args.port}/ (Ctrl-C stops it)", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    command = server_command(args.host, args.port, args.open)
    os.execv(command[0], command)  # noqa: S606 (fixed argument list, no shell)
    return 0  # not reached
