"""``purenng serve``: static files and SP endpoints on one HTTP port.

Runs a :class:`purenng.http.Server` with any number of static directories
(``--static [PREFIX=]DIR``) and SP sockets listening on paths of the same
port over WebSocket (``--sp PROTO:PATH``), for example::

    purenng serve --port 8080 --static site/ --sp rep0:/echo --sp pull0:/log

What each SP endpoint does with the messages it gets:

* ``rep0``, ``respondent0``, ``pair0``, ``pair1``, ``bus0``: answer each
  message with the same bytes (an echo service, handy for a browser page);
* ``pull0``, ``sub0`` (subscribed to everything): print one line per
  message on stdout, ``PATH `` followed by the message in the ``--format``
  (``quoted`` by default, as nngcat's ``--quoted``; ``hex``; ``ascii``).

Protocols that only send or ask (``push0``, ``pub0``, ``req0``,
``surveyor0``) are refused: nothing would drive them here.

Rules:

* The first line on stdout is ``serving URL`` (the real port when
  ``--port 0``), then one line per static mount and SP endpoint, flushed, so
  scripts and tests can read the address.
* ``--tls-cert FILE`` (and ``--tls-key FILE`` when the key is separate)
  serves https and wss.
* It runs until interrupted (Ctrl-C, SIGTERM) or for ``--duration``
  seconds; exit status 0, or 1 with one line on stderr for a setup error
  (port in use, bad directory, unknown protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from ..core.socket import Socket

__all__ = ["ECHO", "HELP", "PRINT", "add_arguments", "run"]

#: The one-line help of ``purenng serve`` (see :class:`purenng.cli.command.Command`).
HELP = "static files, REST and SP-over-WebSocket on one HTTP port"

#: Protocols that answer every message with itself.
ECHO = ("rep0", "respondent0", "pair0", "pair1", "bus0")
#: Protocols whose messages are printed.
PRINT = ("pull0", "sub0")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``purenng serve``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind; 0: any (8080)")
    parser.add_argument(
        "--static",
        action="append",
        default=[],
        metavar="[PREFIX=]DIR",
        help="serve the files of DIR at PREFIX (default /); repeatable",
    )
    parser.add_argument(
        "--sp",
        action="append",
        default=[],
        metavar="PROTO:PATH",
        help=f"an SP socket at ws://HOST:PORT/PATH; echo: {', '.join(ECHO)}; "
        f"print: {', '.join(PRINT)}; repeatable",
    )
    parser.add_argument(
        "--format",
        choices=("quoted", "hex", "ascii"),
        default="quoted",
        help="how printed messages look (quoted)",
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="certificate (PEM): serve https/wss")
    parser.add_argument("--tls-key", metavar="FILE", help="private key (PEM), if not in the cert")
    parser.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long (default: never)"
    )


def _format(data: bytes, fmt: str) -> str:
    if fmt == "hex":
        return data.hex()
    if fmt == "ascii":
        return "".join(chr(b) if 32 <= b < 127 else "." for b in data)
    return (
        '"'
        + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\x{b:02x}" for b in data)
        + '"'
    )


def _parse_sp(spec: str) -> tuple[str, str]:
    proto, sep, path = spec.partition(":")
    if not sep or not path:
        raise ValueError(f"--sp {spec!r}: expected PROTO:PATH, e.g. rep0:/echo")
    if proto not in ECHO + PRINT:
        raise ValueError(
            f"--sp {spec!r}: {proto!r} is not served here; use one of {', '.join(ECHO + PRINT)}"
        )
    return proto, path if path.startswith("/") else "/" + path


def _parse_static(spec: str) -> tuple[str, str]:
    prefix, sep, directory = spec.partition("=")
    if not sep:
        return "/", spec
    return prefix or "/", directory


async def _echo(sock: Socket) -> None:
    from ..core.errors import Closed, Error

    while True:
        try:
            msg = await sock.arecv_msg()
            await sock.asend_msg(msg)
        except Closed:
            return
        except Error:
            continue  # e.g. the requester went away before the reply


async def _print(sock: Socket, path: str, fmt: str) -> None:
    from ..core.errors import Closed

    while True:
        try:
            data = await sock.arecv()
        except Closed:
            return
        sys.stdout.write(f"{path} {_format(data, fmt)}\n")
        sys.stdout.flush()


async def _serve(args: argparse.Namespace) -> int:
    import purenng

    from ..core.errors import Error
    from ..http import Server

    tls = None
    if args.tls_cert:
        tls = purenng.TLSConfig(cert_file=args.tls_cert, key_file=args.tls_key)
    try:
        sps = [_parse_sp(s) for s in args.sp]
        statics = [_parse_static(s) for s in args.static]
        srv = Server(args.host, args.port, tls_config=tls)
        for prefix, directory in statics:
            srv.static(prefix, directory)
    except (ValueError, Error) as exc:
        print(f"purenng serve: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    socks: list[Any] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        try:
            await srv.astart()
            lines = [f"serving {srv.url}"]
            for prefix, directory in statics:
                lines.append(f"static {srv.url}{prefix} {directory}")
            for proto, path in sps:
                if proto == "sub0":
                    sub = purenng.Sub0()
                    sub.subscribe(b"")  # print everything published to the path
                    sock: Socket = sub
                else:
                    sock = purenng.Socket(proto)
                socks.append(sock)
                lst = await srv.alisten_sp(sock, path)
                if proto in ECHO:
                    tasks.append(loop.create_task(_echo(sock)))
                    lines.append(f"sp {lst.url} {proto} echo")
                else:
                    tasks.append(loop.create_task(_print(sock, path, args.format)))
                    lines.append(f"sp {lst.url} {proto} print")
        except (OSError, Error, ValueError) as exc:
            print(f"purenng serve: {exc}", file=sys.stderr)
            return 1
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.duration):
                await stop.wait()
        return 0
    finally:
        for sock in socks:
            await sock.aclose()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await srv.aclose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted or ``--duration`` has passed."""
    return asyncio.run(_serve(args))
