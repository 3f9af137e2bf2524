"""Option declarations and validation.

Options are keyword arguments and attributes named like NNG's without the
prefix (``recv_timeout``, ``reconnect_time_min``...).  Times are seconds as
``float | None`` (None: no limit), sizes are bytes, buffers are messages.

Who declares what:

* the core declares socket options (:data:`SOCKET_OPTIONS`) and
  dialer/listener options (:data:`ENDPOINT_OPTIONS`);
* a protocol declares its own in ``Protocol.option_specs``;
* a transport declares its own in ``Transport.option_specs``; their names
  start with the transport's scheme and an underscore (``tcp_nodelay``,
  ``ipc_permissions``), as NNG's ``tcp-nodelay`` and ``ipc:permissions`` do.
  That prefix is how a socket finds the transport that validates them.

A bad value raises :class:`~purenng.core.errors.BadOption` naming the option,
the value and what was expected.

On the socket classes (and contexts) each option a user may set is declared
as an :class:`Option` attribute, so type checkers know its type and refuse
a misspelt name; the descriptor reads and writes through the owner's option
machinery, with the same validation.  An unknown name raises ``BadOption``
(an ``AttributeError`` too) naming the closest valid option
(:func:`unknown_option`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar, overload

from .errors import BadOption

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "ENDPOINT_OPTIONS",
    "SOCKET_OPTIONS",
    "Option",
    "OptionHost",
    "OptionSpec",
    "boolean",
    "declared_options",
    "duration",
    "integer",
    "string",
    "unknown_option",
    "validate",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One option: its name, how to check a value, its default and meaning.

    Attributes:
        name: The keyword name.
        check: Returns the normalised value or raises ``ValueError``/``TypeError``
            with what was expected.
        default: The default value.
        doc: One line for documentation and error messages.
        readonly: Reading only (e.g. a bound port).
    """

    name: str
    check: Callable[[Any], Any]
    default: Any
    doc: str = ""
    readonly: bool = False


def validate(spec: OptionSpec, value: Any) -> Any:
    """Normalise ``value`` for ``spec``.

    Raises:
        BadOption: the value does not fit, or the option is read-only.
    """
    if spec.readonly:
        raise BadOption(f"option {spec.name!r} is read-only")
    try:
        return spec.check(value)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: float(10**400)
        raise BadOption(f"bad value {value!r} for option {spec.name!r}: {exc}") from None


class OptionHost(Protocol):
    """What an :class:`Option` attribute needs from its owner (a socket, a context)."""

    def _get_option(self, name: str) -> Any: ...

    def _set_option(self, name: str, value: Any) -> None: ...


class Option(Generic[T]):
    """An option declared as a typed attribute: ``recv_timeout: Option[float | None]``.

    On an instance, reading gives the option's value and writing validates
    and applies it, exactly as the owner's ``_get_option``/``_set_option``
    do (a socket's: same checks, applied to the protocol on the socket's
    loop before returning).  On the class it is the descriptor itself, with
    its ``name``.

    ``T`` is the type read back; a write takes the same type (a checker also
    lets an ``int`` through where a ``float`` is expected, as the validators do).
    """

    __slots__ = ("name",)

    def __init__(self) -> None:
        self.name: str = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(self, obj: OptionHost, objtype: type[Any] | None = None) -> T: ...

    def __get__(self, obj: OptionHost | None, objtype: type[Any] | None = None) -> Self | T:
        if obj is None:
            return self
        value: T = obj._get_option(self.name)
        return value

    def __set__(self, obj: OptionHost, value: T) -> None:
        obj._set_option(self.name, value)

    def __repr__(self) -> str:
        return f"<option {self.name!r}>"


def declared_options(cls: type[Any]) -> frozenset[str]:
    """The names whose attribute on ``cls`` (its own or a base's) is an :class:`Option`."""
    seen: dict[str, object] = {}
    for k in cls.__mro__:
        for n, v in vars(k).items():
            seen.setdefault(n, v)  # the first class in the MRO wins, as for lookups
    return frozenset(n for n, v in seen.items() if isinstance(v, Option))


def unknown_option(
    owner: str, name: str, known: Iterable[str], elsewhere: Iterable[str] = ()
) -> BadOption:
    """The error for an option ``owner`` does not have.

    It names the classes in ``elsewhere`` that have it (``"Push0 has no
    option 'resend_time' (an option of Req0)"``), or else the closest of
    ``known``: ``"Req0 has no option 'recv_timout'; did you mean 'recv_timeout'?"``
    """
    others = sorted(set(elsewhere))
    if others:
        return BadOption(f"{owner} has no option {name!r} (an option of {', '.join(others)})")
    import difflib  # the error path only: keeps it out of ``import purenng``

    close = difflib.get_close_matches(name, sorted(set(known)), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return BadOption(f"{owner} has no option {name!r}{hint}")


def duration(*, allow_none: bool = True, minimum: float = 0.0) -> Callable[[Any], float | None]:
    """A time in seconds; None (if allowed) means "no limit"."""

    def check(value: Any) -> float | None:
        if value is None:
            if allow_none:
                return None
            raise ValueError("expected a number of seconds, not None")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected seconds as a number{' or None' if allow_none else ''}")
        v = float(value)
        if math.isnan(v) or v < minimum:
            raise ValueError(f"expected seconds >= {minimum}")
        if math.isinf(v):
            if allow_none:
                return None
            raise ValueError("expected a finite number of seconds")
        return v

    return check


def integer(minimum: int = 0, maximum: int | None = None) -> Callable[[Any], int]:
    """A whole number in ``[minimum, maximum]``."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("expected an int")
        if value < minimum or (maximum is not None and value > maximum):
            hi = "" if maximum is None else f"..{maximum}"
            raise ValueError(f"expected an int in {minimum}{hi or '..'}")
        return value

    return check


def boolean(value: Any) -> bool:
    """True or False."""
    if not isinstance(value, bool):
        raise TypeError("expected True or False")
    return value


def string(value: Any) -> str:
    """A str."""
    if not isinstance(value, str):
        raise TypeError("expected a str")
    return value


#: Options every socket has (wire-protocols.md §3.1 for the defaults).
SOCKET_OPTIONS: Mapping[str, OptionSpec] = {
    s.name: s
    for s in (
        OptionSpec("recv_timeout", duration(), None, "seconds recv() waits; None: forever"),
        OptionSpec("send_timeout", duration(), None, "seconds send() waits; None: forever"),
        OptionSpec(
            "recv_max_size",
            integer(0),
            1 << 20,
            "largest message accepted from a stream peer, bytes; 0: no limit "
            "(default 1 MiB as nanomsg and mangos; NNG 1.x defaults to 0)",
        ),
        OptionSpec("recv_buffer", integer(0, 8192), 128, "messages queued for the application"),
        OptionSpec("send_buffer", integer(0, 8192), 0, "messages queued by the protocol"),
        OptionSpec(
            "reconnect_time_min", duration(allow_none=False), 0.1, "first redial delay, seconds"
        ),
        OptionSpec(
            "reconnect_time_max",
            duration(allow_none=False),
            0.0,
            "largest redial delay, seconds; 0: no exponential back-off",
        ),
        OptionSpec("name", string, "", "a name for logs and stats"),
        OptionSpec(
            "linger",
            duration(allow_none=False),
            0.0,
            "seconds close() waits for accepted messages to reach the kernel; 0: none "
            "(not an acknowledgement: see docs/api.md)",
        ),
        OptionSpec(
            "recv_idle_timeout",
            duration(minimum=0.001),
            None,
            "close a pipe that received nothing for this many seconds (a half-open peer "
            "or a stalled path); None: never",
        ),
        OptionSpec(
            "max_pipes",
            integer(0),
            0,
            "most pipes one listener holds, counting those still in their handshake; "
            "beyond it a connection is closed at once; 0: no limit (as NNG)",
        ),
        OptionSpec(
            "sp_handshake_timeout",
            duration(allow_none=False, minimum=0.001),
            10.0,
            "seconds a stream pipe's peer has to send its 8-byte SP header (NNG: 10)",
        ),
    )
}

#: Socket options a dialer or listener may override for itself.
ENDPOINT_OPTIONS = frozenset(
    {
        "recv_max_size",
        "reconnect_time_min",
        "reconnect_time_max",
        "recv_idle_timeout",
        "max_pipes",
        "sp_handshake_timeout",
    }
)
