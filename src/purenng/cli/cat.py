"""``purenng cat``: an nngcat-compatible command line client.

``purenng cat`` opens one SP socket, dials and listens where it is told,
then sends and/or receives messages and prints them, so that shell scripts
can take part in a Scalability Protocols topology.  Its flags, output
formats, checks, error messages and exit statuses are those of ``nngcat``
(NNG 1.5.2), so it can stand in for it in scripts; the differences are
listed at the end.

Rules (as nngcat):

* Exactly one protocol flag (``--req0``... with the aliases ``--req``...;
  ``--pair`` is PAIR v1, or PAIR v0 with ``--compat``) and at least one
  address (``--dial``/``--connect``, ``--listen``/``--bind``, ``-l``/``-L``
  for a tcp port on 127.0.0.1, ``-x``/``-X`` for an ipc path).  Endpoints
  start in the order given.  A dial waits for its first connection and a
  failure is fatal, unless ``--async`` or ``--compat`` is given: then it
  connects (and reconnects) in the background.
* TLS flags (``--insecure``, ``--cacert``, ``--cert``, ``--key``) make one
  :class:`~purenng.tls_config.TLSConfig` for the socket; ``tls+tcp://`` endpoints
  use it, the others ignore it, as in nngcat.  Without ``--insecure`` a
  dialer verifies the server's certificate (against ``--cacert``).
* At most one format and at most one of ``--data``/``--file``.  Received
  messages are printed in the chosen format; without one nothing is
  printed (``--format no`` says so explicitly).
* Fatal errors print one line on stderr and exit with status 1; a normal
  end exits with 0.  Running out of ``--recv-timeout`` while receiving (or
  the end of a survey, or a REQ with no request outstanding) is a normal
  end, except in a REP/RESPONDENT that answers with ``--data``, for which a
  failed receive is fatal ("Receive error: Timed out").

Theory of operation (the loop each protocol runs, as nngcat):

* **receive loop** (PULL, SUB; REP/RESPONDENT and PAIR/BUS without data):
  receive and print until ``--count`` messages, a timeout or a state error.
* **reply loop** (REP/RESPONDENT with data): receive, print, answer with the
  data; ``--count`` exchanges or forever.
* **send loop** (PUSH, PUB): after ``--delay``, send the data once, or
  ``--count`` times, or every ``--interval`` seconds.
* **send then receive** (REQ, SURVEYOR; PAIR/BUS with data): after
  ``--delay``, send, then print what comes back.  Without ``--interval``
  and ``--count`` this is one send followed by the receive loop; otherwise
  each round receives until the interval is over (or ``--recv-timeout``,
  or the survey or request is finished), and rounds repeat ``--count``
  times or forever.  The interval is measured from the start of a round.
* Loops that send end with a 200 ms linger, as nngcat's, so that the last
  message leaves before the socket closes.

Differences from nngcat 1.5.2, all deliberate:

* Times (``--delay``, ``--interval``, ``--recv-timeout``, ``--send-timeout``)
  accept fractions of a second (``0.25``); nngcat takes whole seconds.
* ``--pair`` works as documented (nngcat 1.5.2 ignores it and then reports
  "No protocol specified.").
* Long flags may be abbreviated while unambiguous, as in nngcat; usage
  errors found by the argument parser (an unknown or ambiguous flag, a
  missing value) exit with status 2 and argparse's message; ``--help``
  exits with 0.  A value that starts with ``-`` must be attached
  (``--data=-x`` or ``-D-x``).  nngcat's ``--flag:value`` form is not
  accepted.
* ZeroTier (``--zt-home``) is recognised but refused: purenng has no
  ZeroTier transport.
* ``--version`` prints purenng's version.
* A ``--count`` above 2147483647 is refused, as NNG's current nngcat does
  (1.5.2 lets it overflow).
* With ``--count`` and no ``--interval`` a send-then-receive round waits at
  most ``--recv-timeout`` (nngcat 1.5.2 then fails with "Cannot set recv
  timeout: Invalid argument").

Mirrors: NNG's ``src/tools/nngcat/nngcat.c`` and ``docs/man/nngcat.1.adoc``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..core.socket import Socket

__all__ = [
    "FORMATS",
    "HELP",
    "PROTOCOLS",
    "CatConfig",
    "Fatal",
    "add_arguments",
    "configure",
    "format_message",
    "run",
]

#: The one-line help of ``purenng cat`` (see :class:`purenng.cli.command.Command`).
HELP = "nngcat-compatible command line client"

#: Protocol flag names -> purenng socket class names.  ``pair`` is resolved
#: by :func:`configure` (pair1, or pair0 with ``--compat``).
PROTOCOLS: dict[str, str] = {
    "req0": "Req0",
    "rep0": "Rep0",
    "pub0": "Pub0",
    "sub0": "Sub0",
    "push0": "Push0",
    "pull0": "Pull0",
    "surveyor0": "Surveyor0",
    "respondent0": "Respondent0",
    "pair0": "Pair0",
    "pair1": "Pair1",
    "bus0": "Bus0",
}

#: ``--format`` values; ``no`` prints nothing (nngcat's default too).
FORMATS = ("no", "raw", "ascii", "quoted", "hex", "msgpack")

#: Seconds a loop that sends waits before the socket closes (nngcat: 200 ms).
LINGER = 0.2

#: The largest time value, in seconds (nngcat: one day).
MAX_SECONDS = 86400

_INT32_MAX = 0x7FFFFFFF
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")

# Protocol flags: (flags, protocol, help).  As in nngcat, an alias that is
# the only flag its name is a prefix of (``--req`` of ``--req0``) is not
# registered: the parser's prefix matching finds it, and an abbreviation such
# as ``--surv`` stays unambiguous.  ``--sub`` (also a prefix of
# ``--subscribe``) and ``--pair`` (of ``--pair0`` and ``--pair1``) are
# registered, as nngcat does.
_PROTOCOL_FLAGS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("--req0",), "req0", "REQ v0 (or --req): send a request, print the reply"),
    (("--rep0",), "rep0", "REP v0 (or --rep): print requests, answer with the data"),
    (("--pub0",), "pub0", "PUB v0 (or --pub): publish the data"),
    (("--sub0", "--sub"), "sub0", "SUB v0: print what matches --subscribe (default: all)"),
    (("--push0",), "push0", "PUSH v0 (or --push): push the data"),
    (("--pull0",), "pull0", "PULL v0 (or --pull): print what is pushed"),
    (("--surveyor0",), "surveyor0", "SURVEYOR v0 (or --surveyor): survey, print responses"),
    (("--respondent0",), "respondent0", "RESPONDENT v0 (or --respondent): answer surveys"),
    (("--pair0",), "pair0", "PAIR v0"),
    (("--pair1",), "pair1", "PAIR v1 (not with --compat)"),
    (("--pair",), "pair", "PAIR v1, or PAIR v0 with --compat"),
    (("--bus0",), "bus0", "BUS v0 (or --bus)"),
)

# Address flags: (flags, mode, metavar, help).
_ADDRESS_FLAGS: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    (("--dial", "--connect"), "dial", "URL", "dial (connect to) URL; repeatable"),
    (("--listen", "--bind"), "listen", "URL", "listen (bind) on URL; repeatable"),
    (("--bind-local", "-L"), "listen-local", "PORT", "listen on tcp://127.0.0.1:PORT"),
    (("--connect-local", "-l"), "dial-local", "PORT", "dial tcp://127.0.0.1:PORT"),
    (("--bind-ipc", "-X"), "listen-ipc", "PATH", "listen on the ipc path PATH"),
    (("--connect-ipc", "-x"), "dial-ipc", "PATH", "dial the ipc path PATH"),
)

_FORMAT_FLAGS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("--raw",), "raw"),
    (("--ascii", "-A"), "ascii"),
    (("--quoted", "-Q"), "quoted"),
    (("--hex",), "hex"),
    (("--msgpack",), "msgpack"),
)


class Fatal(Exception):
    """An error that ends ``purenng cat`` with status 1; the text is printed."""


# ---------------------------------------------------------------- arguments


class _AppendPair(argparse.Action):
    """Append ``(self.const, value)`` to a list kept in order across flags.

    Several flags share one destination (every address flag, ``--data`` and
    ``--file``) so that their order on the command line survives.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append((self.const, values))
        setattr(namespace, self.dest, items)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``purenng cat``: nngcat's, with its aliases."""
    from .. import __version__

    parser.description = (
        "Send and receive SP messages from the command line, with nngcat's flags: "
        "purenng cat <proto> <addr>... [<fmt>] [<opts>...] [<src>]"
    )
    # The protocol aliases rely on prefix matching (see _PROTOCOL_FLAGS).
    parser.allow_abbrev = True
    proto = parser.add_argument_group("protocol (exactly one)")
    for flags, name, text in _PROTOCOL_FLAGS:
        proto.add_argument(*flags, dest="protocols", action="append_const", const=name, help=text)
    addr = parser.add_argument_group("addresses (one or more)")
    for flags, mode, metavar, text in _ADDRESS_FLAGS:
        addr.add_argument(
            *flags, dest="addresses", action=_AppendPair, const=mode, metavar=metavar, help=text
        )
    fmt = parser.add_argument_group("output format (at most one; default: print nothing)")
    fmt.add_argument(
        "--format",
        dest="formats",
        action="append",
        metavar="FORMAT",
        help="one of " + ", ".join(FORMATS),
    )
    for flags, name in _FORMAT_FLAGS:
        fmt.add_argument(
            *flags, dest="formats", action="append_const", const=name, help=f"--format {name}"
        )
    opts = parser.add_argument_group("options")
    opts.add_argument(
        "--subscribe",
        action="append",
        metavar="TOPIC",
        help="SUB: subscribe to messages starting with TOPIC; repeatable (default: all)",
    )
    opts.add_argument(
        "--silent", "-q", dest="verbosity", action="store_const", const="silent", help="be quiet"
    )
    opts.add_argument(
        "--verbose",
        "-v",
        dest="verbosity",
        action="store_const",
        const="verbose",
        help="print the addresses dialed and listened on",
    )
    opts.add_argument("--count", "-C", metavar="N", help="stop after N messages or exchanges")
    opts.add_argument("--delay", "-d", metavar="SECS", help="wait SECS before the first send")
    opts.add_argument("--interval", "-i", metavar="SECS", help="send again every SECS")
    opts.add_argument("--recv-timeout", metavar="SECS", help="give up receiving after SECS")
    opts.add_argument("--send-timeout", metavar="SECS", help="give up sending after SECS")
    opts.add_argument(
        "--recv-maxsz", "-Z", metavar="SIZE", help="largest message accepted, bytes; 0: no limit"
    )
    opts.add_argument(
        "--compat",
        action="store_true",
        help="behave like nanocat: dial in the background, --pair is PAIR v0",
    )
    opts.add_argument("--async", dest="async_", action="store_true", help="dial in the background")
    opts.add_argument("--socket-name", metavar="NAME", help="a name for the socket (logs, stats)")
    opts.add_argument(
        "--insecure", "-k", action="store_true", help="TLS: do not verify the peer's certificate"
    )
    opts.add_argument("--cacert", metavar="FILE", help="TLS: CA certificates to trust (PEM)")
    opts.add_argument(
        "--cert", "-E", metavar="FILE", help="TLS: our certificate (PEM; may hold the key too)"
    )
    opts.add_argument("--key", metavar="FILE", help="TLS: our private key (PEM)")
    opts.add_argument("--zt-home", metavar="PATH", help="ZeroTier: not supported")
    opts.add_argument("--version", "-V", action="version", version=__version__)
    src = parser.add_argument_group("data to send (at most one)")
    src.add_argument(
        "--file",
        "-F",
        dest="sources",
        action=_AppendPair,
        const="file",
        metavar="FILE",
        help="send the contents of FILE (- for standard input)",
    )
    src.add_argument(
        "--data",
        "-D",
        dest="sources",
        action=_AppendPair,
        const="data",
        metavar="DATA",
        help="send DATA",
    )


# ---------------------------------------------------------------- checks


@dataclass
class CatConfig:
    """What ``purenng cat`` will do, after nngcat's checks.

    Times are in seconds; None is "not given" (no limit, no interval).
    """

    protocol: str
    addresses: list[tuple[str, str]]
    """``("dial" | "listen", url)`` in command line order."""
    format: str = "no"
    data: bytes | None = None
    topics: list[bytes] = field(default_factory=list)
    count: int = 0
    delay: float = 0.0
    interval: float | None = None
    recv_timeout: float | None = None
    send_timeout: float | None = None
    recv_max_size: int | None = None
    verbose: bool = False
    background_dial: bool = False
    socket_name: str | None = None
    tls: dict[str, Any] | None = None
    """:class:`~purenng.tls_config.TLSConfig` fields from the TLS flags, if any was given."""


def _integer(text: str, maximum: int) -> int:
    """A non-negative whole number, with nngcat's messages."""
    if not text:
        raise Fatal("Empty integer argument.")
    if not text.isascii() or not text.isdigit():
        raise Fatal("Integer argument expected.")
    value = int(text)
    if value > maximum:
        raise Fatal("Integer argument too large.")
    return value


def _seconds(text: str) -> float:
    """Seconds: a whole number as nngcat, or a decimal fraction."""
    if not text:
        raise Fatal("Empty integer argument.")
    if not text.isascii() or not _DECIMAL.fullmatch(text):
        raise Fatal("Integer argument expected.")
    value = float(text)
    if value > MAX_SECONDS:
        raise Fatal("Integer argument too large.")
    return value


def _load_file(path: str) -> bytes:
    """The bytes of ``path``, or of standard input for ``-``."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise Fatal(f"Cannot open file {path}: {exc.strerror or exc}") from None


def _ipc_url(path: str) -> str:
    """nngcat's ``-x``/``-X`` URL: the path is taken from the root directory."""
    return "ipc://" + path if path.startswith("/") else "ipc:///" + path


def configure(args: argparse.Namespace) -> CatConfig:
    """Turn parsed flags into a :class:`CatConfig`, applying nngcat's checks.

    The checks run in nngcat's order, so that the first problem reported is
    the one nngcat would report.

    Raises:
        Fatal: the combination is invalid; the message is nngcat's.
    """
    protocols: list[str] = args.protocols or []
    if len(protocols) > 1:
        raise Fatal("Only one protocol may be specified.")
    proto = protocols[0] if protocols else None

    formats: list[str] = args.formats or []
    if len(formats) > 1:
        raise Fatal("Format may be specified only once.")
    fmt = formats[0] if formats else None
    if fmt is not None and fmt not in FORMATS:
        raise Fatal("Invalid format specified.")

    sources: list[tuple[str, str]] = args.sources or []
    if len(sources) > 1:
        raise Fatal("Data (--file, --data) may be specified only once.")
    data: bytes | None = None
    if sources:
        kind, value = sources[0]
        data = _load_file(value) if kind == "file" else os.fsencode(value)

    addresses: list[tuple[str, str]] = []
    for mode, value in args.addresses or []:
        if mode.endswith("-local"):
            url = f"tcp://127.0.0.1:{_integer(value, 65535)}"
        elif mode.endswith("-ipc"):
            url = _ipc_url(value)
        else:
            url = value
        addresses.append(("dial" if mode.startswith("dial") else "listen", url))

    count = _integer(args.count, _INT32_MAX) if args.count is not None else 0
    delay = _seconds(args.delay) if args.delay is not None else 0.0
    interval = _seconds(args.interval) if args.interval is not None else None
    send_timeout = _seconds(args.send_timeout) if args.send_timeout is not None else 0.0
    recv_timeout = _seconds(args.recv_timeout) if args.recv_timeout is not None else 0.0
    recv_max_size = None
    if args.recv_maxsz is not None:
        recv_max_size = _integer(args.recv_maxsz, _INT32_MAX)

    tls: dict[str, Any] | None = None
    if args.insecure or args.cacert or args.cert or args.key:
        # As nngcat: the files are read now, and without --key the key is
        # looked for in the --cert file.
        cert = _load_file(args.cert) if args.cert else None
        tls = {
            "auth_mode": "none" if args.insecure else None,
            "ca_data": _load_file(args.cacert) if args.cacert else None,
            "cert_data": cert,
            "key_data": _load_file(args.key) if args.key else cert,
        }
    if args.zt_home is not None:
        raise Fatal("ZeroTier (--zt-home) is not supported by purenng.")

    if not addresses:
        raise Fatal("No address specified.")

    if args.compat:
        if args.async_:
            raise Fatal("Options --async and --compat are incompatible.")
        if count != 0:
            raise Fatal("Options --count and --compat are incompatible.")
        if proto == "pair":
            proto = "pair0"
        if proto == "pair1":
            raise Fatal("Protocol does not support --compat.")
    elif proto == "pair":
        proto = "pair1"

    topics: list[bytes] = [os.fsencode(t) for t in args.subscribe or []]
    if proto == "sub0":
        if not topics:
            topics = [b""]
    elif topics:
        raise Fatal("Protocol does not support --subscribe.")

    if proto in ("pull0", "sub0"):
        if data is not None:
            raise Fatal("Protocol does not support --file or --data.")
        if interval is not None:
            raise Fatal("Protocol does not support --interval.")
    elif proto in ("push0", "pub0"):
        if fmt is not None:
            raise Fatal("Protocol does not support --format options.")
        if data is None:
            raise Fatal("Protocol requires either --file or --data.")
    elif proto in ("surveyor0", "req0"):
        if data is None:
            raise Fatal("Protocol requires either --file or --data.")
    elif proto in ("rep0", "respondent0"):
        if interval is not None:
            raise Fatal("Protocol does not support --interval.")
    elif proto in ("pair0", "pair1", "bus0") and interval is not None and data is None:
        raise Fatal("Option --interval requires either --file or --data.")
    if proto is None:
        raise Fatal("No protocol specified.")

    return CatConfig(
        protocol=proto,
        addresses=addresses,
        format=fmt or "no",
        data=data,
        topics=topics,
        count=count,
        delay=delay,
        interval=interval,
        # nngcat sets a timeout only when it is above zero: 0 means none.
        recv_timeout=recv_timeout or None,
        send_timeout=send_timeout or None,
        recv_max_size=recv_max_size,
        verbose=args.verbosity == "verbose",
        background_dial=bool(args.compat or args.async_),
        socket_name=args.socket_name,
        tls=tls,
    )


# ---------------------------------------------------------------- formats


def _byte_table(escape: dict[int, bytes]) -> list[bytes]:
    """Per-byte output: printable ASCII as itself, the rest ``\\xNN``."""
    table = [b"\\x%02x" % b if not 0x20 <= b < 0x7F else bytes((b,)) for b in range(256)]
    for b, text in escape.items():
        table[b] = text
    return table


# C's isprint() in the C locale is 0x20..0x7e.
_ASCII = bytes(b if 0x20 <= b < 0x7F else 0x2E for b in range(256))
_QUOTED = _byte_table({0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t", 0x22: b'\\"', 0x5C: b"\\\\"})
_HEX = [b"\\x%02x" % b for b in range(256)]


def format_message(fmt: str, body: bytes) -> bytes:
    """The bytes nngcat prints for a received message ``body``.

    Args:
        fmt: One of :data:`FORMATS`.
        body: The message body.

    Returns:
        ``no``: nothing.  ``raw``: the body as is.  ``ascii``: the body with
        every byte outside printable ASCII replaced by ``.``, no delimiter.
        ``quoted``: a C string literal (``\\n \\r \\t \\" \\\\`` escapes,
        ``\\xNN`` for other non-printables) and a newline.  ``hex``: every
        byte as ``\\xNN`` in double quotes, and a newline.  ``msgpack``: a
        MessagePack bin 8/16/32 object.

    Raises:
        ValueError: an unknown format.
    """
    if fmt == "no":
        return b""
    if fmt == "raw":
        return body
    if fmt == "ascii":
        return body.translate(_ASCII)
    if fmt == "quoted":
        return b'"' + b"".join([_QUOTED[b] for b in body]) + b'"\n'
    if fmt == "hex":
        return b'"' + b"".join([_HEX[b] for b in body]) + b'"\n'
    if fmt == "msgpack":
        n = len(body)
        if n < 0x100:
            head = b"\xc4" + n.to_bytes(1, "big")
        elif n < 0x10000:
            head = b"\xc5" + n.to_bytes(2, "big")
        else:
            head = b"\xc6" + n.to_bytes(4, "big")
        return head + body
    raise ValueError(f"unknown format {fmt!r}")


# ---------------------------------------------------------------- running

# NNG's nng_strerror() texts for the errors purenng raises.
_STRERROR = (
    ("ConnectionRefused", "Connection refused"),
    ("ConnectionReset", "Connection reset"),
    ("AddressInUse", "Address in use"),
    ("BadAddress", "Address invalid"),
    ("PluginError", "Not supported"),
    ("NotSupported", "Not supported"),
    ("BadOption", "Invalid argument"),
    ("Timeout", "Timed out"),
    ("Closed", "Object closed"),
    ("WrongThread", "Incorrect state"),
    ("BadState", "Incorrect state"),
    ("ProtocolError", "Protocol error"),
    ("MessageTooLarge", "Message too large"),
    ("TryAgain", "Try again"),
)


def _strerror(exc: BaseException) -> str:
    """nngcat's wording for ``exc`` (``nng_strerror``), so scripts see the same text."""
    names = {k.__name__ for k in type(exc).__mro__}
    text = next((t for n, t in _STRERROR if n in names), None)
    return text if text is not None else (str(exc) or type(exc).__name__)


class _Cat:
    """One run: the socket, the output and the loops of nngcat."""

    def __init__(self, cfg: CatConfig, sock: Socket, out: IO[bytes]) -> None:
        self.cfg = cfg
        self.sock = sock
        self.out = out

    def print_message(self, body: bytes) -> None:
        """Print one received body; flushed at once so pipelines see it live."""
        if self.cfg.format == "no":
            return
        self.out.write(format_message(self.cfg.format, body))
        self.out.flush()

    def say(self, text: str) -> None:
        """A ``--verbose`` line; on standard output, as nngcat prints it."""
        self.out.write(text.encode() + b"\n")
        self.out.flush()

    def fail(self, what: str, exc: BaseException) -> Fatal:
        """The fatal error for ``exc`` in nngcat's words: ``what: reason``."""
        return Fatal(f"{what}: {_strerror(exc)}")

    # ------------------------------------------------------------ setup

    def subscribe(self) -> None:
        """SUB: subscribe before any endpoint starts, so nothing is missed."""
        from ..core.socket_classes import Sub0

        sock = self.sock
        if not isinstance(sock, Sub0):  # configure() allows topics with --sub0 only
            return
        for topic in self.cfg.topics:
            try:
                sock.subscribe(topic)
            except Exception as exc:
                raise self.fail(
                    f"Unable to subscribe to topic {topic.decode(errors='replace')}", exc
                ) from None

    def start_endpoints(self) -> None:
        """Listen and dial in command line order.

        A dial waits for its first connection unless ``--async``/``--compat``
        asked for a background dial: a script then learns at once that the
        peer is not there, as with nngcat.
        """
        from ..core.errors import BadAddress, BadOption, NotSupported

        for mode, url in self.cfg.addresses:
            try:
                if mode == "dial":
                    block = not self.cfg.background_dial
                    d = self.sock.dial(url, block=block)
                    if self.cfg.verbose:
                        self.say(f"Connected to: {d.url}")
                else:
                    lst = self.sock.listen(url)
                    if self.cfg.verbose:
                        self.say(f"Listening at: {lst.url}")
            except (BadAddress, BadOption, NotSupported) as exc:
                kind = "dialer" if mode == "dial" else "listener"
                raise self.fail(f"Unable to create {kind} for {url}", exc) from None
            except Exception as exc:
                raise self.fail(f"Unable to {mode} on {url}", exc) from None

    # ------------------------------------------------------------ loops

    def send_data(self) -> None:
        """Send ``--data``/``--file``; a failure (e.g. ``--send-timeout``) is fatal."""
        from ..core.errors import Error

        assert self.cfg.data is not None
        try:
            self.sock.send(self.cfg.data)
        except Error as exc:
            raise self.fail("Send error", exc) from None

    def recv_loop(self) -> None:
        """Print what arrives until ``--count``, a timeout or a state error."""
        from ..core.errors import BadState, Error, Timeout

        count, n = self.cfg.count, 0
        while not (count > 0 and n >= count):
            n += 1
            try:
                body = self.sock.recv()
            except (Timeout, BadState):
                return
            except Error as exc:
                raise self.fail("Receive error", exc) from None
            self.print_message(body)

    def reply_loop(self) -> None:
        """REP/RESPONDENT with data: answer every request with it."""
        from ..core.errors import Error

        count, n = self.cfg.count, 0
        while True:
            try:
                body = self.sock.recv()
            except Error as exc:
                raise self.fail("Receive error", exc) from None
            self.print_message(body)
            self.send_data()
            n += 1
            if count > 0 and n >= count:
                break
        time.sleep(LINGER)

    def send_loop(self) -> None:
        """PUSH/PUB: send once, ``--count`` times or every ``--interval``."""
        cfg = self.cfg
        if cfg.delay > 0:
            time.sleep(cfg.delay)
        n = 0
        while True:
            start = time.monotonic()
            self.send_data()
            n += 1
            if (cfg.interval is None and cfg.count == 0) or (cfg.count > 0 and n >= cfg.count):
                break
            if cfg.interval is not None:
                left = cfg.interval - (time.monotonic() - start)
                if left > 0:
                    time.sleep(left)
        time.sleep(LINGER)

    def send_recv(self) -> None:
        """REQ/SURVEYOR, PAIR/BUS with data: send, then print the answers."""
        from ..core.errors import BadState, Error, Timeout, TryAgain

        cfg, sock = self.cfg, self.sock
        if cfg.delay > 0:
            time.sleep(cfg.delay)
        n = 0
        while True:
            start = time.monotonic()
            self.send_data()
            if cfg.interval is None and cfg.count == 0:
                self.recv_loop()
                return
            # Receive until this round's interval is over; the timeout is
            # set before each receive as the time left (or --recv-timeout).
            while True:
                timeout = cfg.recv_timeout
                if cfg.interval is not None:
                    left = cfg.interval - (time.monotonic() - start)
                    if timeout is None or left < timeout:
                        timeout = left
                block = timeout is None or timeout > 0
                try:
                    sock.recv_timeout = timeout if block else None
                    body = sock.recv(block=block)
                except (Timeout, BadState, TryAgain):
                    break
                except Error as exc:
                    raise self.fail("Cannot receive", exc) from None
                self.print_message(body)
            n += 1
            if cfg.count > 0 and n >= cfg.count:
                return
            if cfg.interval is not None:
                left = cfg.interval - (time.monotonic() - start)
                if left > 0:
                    time.sleep(left)

    def main_loop(self) -> None:
        """Run the loop nngcat runs for this protocol (see the module header)."""
        proto, has_data = self.cfg.protocol, self.cfg.data is not None
        if proto in ("sub0", "pull0"):
            self.recv_loop()
        elif proto in ("rep0", "respondent0"):
            if has_data:
                self.reply_loop()
            else:
                self.recv_loop()
        elif proto in ("push0", "pub0"):
            self.send_loop()
        elif proto in ("bus0", "pair0", "pair1"):
            if has_data:
                self.send_recv()
            else:
                self.recv_loop()
        else:
            self.send_recv()


def _tls_config(fields: dict[str, Any]) -> Any:
    """A checked :class:`~purenng.tls_config.TLSConfig`, or Fatal with nngcat's wording."""
    try:
        from ..tls_config import TLSConfig
    except ImportError as exc:  # pragma: no cover - the ssl module is missing
        raise Fatal(f"Unable to configure TLS: {exc}") from None
    from ..core.errors import Error

    try:
        return TLSConfig(**{k: v for k, v in fields.items() if v is not None}).check()
    except Error as exc:
        raise Fatal(f"Unable to configure TLS: {exc}") from None


def _open_socket(cfg: CatConfig) -> Socket:
    """The socket with its options; a missing or broken protocol plugin is fatal."""
    import purenng

    options: dict[str, Any] = {}
    if cfg.send_timeout is not None:
        options["send_timeout"] = cfg.send_timeout
    if cfg.recv_timeout is not None:
        options["recv_timeout"] = cfg.recv_timeout
    if cfg.recv_max_size is not None:
        options["recv_max_size"] = cfg.recv_max_size
    if cfg.socket_name is not None:
        options["name"] = cfg.socket_name
    if cfg.tls is not None:
        # A socket-level default: TLS transports use it, the others ignore it.
        options["tls_config"] = _tls_config(cfg.tls)
    cls = getattr(purenng, PROTOCOLS[cfg.protocol])
    try:
        sock: Socket = cls(**options)
    except purenng.Error as exc:
        raise Fatal(f"Unable to open socket: {exc}") from None
    return sock


def run(
    args: argparse.Namespace, *, out: IO[bytes] | None = None, err: IO[str] | None = None
) -> int:
    """Run ``purenng cat``; 0 on a normal end, 1 after a fatal error.

    Args:
        args: The flags, as parsed by a parser set up by :func:`add_arguments`.
        out: Where messages and ``--verbose`` lines go (default: standard output).
        err: Where the fatal error line goes (default: standard error).
    """
    if out is None:
        out = sys.stdout.buffer
    try:
        cfg = configure(args)
        sock = _open_socket(cfg)
        try:
            cat = _Cat(cfg, sock, out)
            cat.subscribe()
            cat.start_endpoints()
            cat.main_loop()
        finally:
            sock.close()
    except Fatal as exc:
        with contextlib.suppress(OSError):
            out.flush()
        print(exc, file=sys.stderr if err is None else err)
        return 1
    except BrokenPipeError:
        # The reader of our output went away: stop quietly, as a C tool
        # killed by SIGPIPE would, without a traceback at interpreter exit.
        if out is sys.stdout.buffer:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return 1
    return 0
