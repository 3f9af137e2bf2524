"""The fuzz harness: what a target is, how one input is judged, and input helpers.

A **target** is a function ``fn(data: bytes) -> object`` that feeds one input
to one decoder or parser of purenng.  It declares the exceptions its entry
point is documented to raise (``allowed``); any other exception is a crash,
and so is a failed ``assert`` inside the target (the targets assert their
invariants: nothing outside a static root is served, a socket stays usable
...).  The value a target returns is a small, hashable *feature* of the
outcome (which error, how many messages); the plain driver keeps inputs that
show a new feature, as a cheap stand-in for coverage guidance.

The same targets run under atheris (coverage-guided, libFuzzer) and under the
plain seeded mutation driver (:mod:`fuzz.run`), and in ``tests/test_fuzz.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "CORPUS",
    "CRASHES",
    "KNOWN",
    "TARGETS",
    "Crash",
    "Input",
    "Target",
    "judge",
    "read_dir",
    "target",
]

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS = FUZZ_DIR / "corpus"
CRASHES = FUZZ_DIR / "crashes"
#: Crashing inputs whose fix belongs to a file this campaign does not own;
#: ``tests/test_fuzz.py`` replays them as strict xfails.
KNOWN = FUZZ_DIR / "known"


@dataclasses.dataclass(frozen=True)
class Target:
    """One fuzz target.

    Attributes:
        name: Directory name under corpus/ and crashes/.
        fn: Feeds one input; returns a feature of the outcome.
        allowed: The documented exceptions of the entry point.
        modules: purenng modules whose line coverage the plain driver reports.
        seeds: Built-in seed inputs (the corpus directory adds more).
        weight: Share of the total inputs in a long run (fast targets get more).
        max_len: Longest input the mutators make.
        dictionary: Tokens the mutators splice in (also given to libFuzzer).
    """

    name: str
    fn: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...]
    modules: tuple[str, ...]
    seeds: tuple[bytes, ...] = ()
    weight: float = 1.0
    max_len: int = 4096
    dictionary: tuple[bytes, ...] = ()


TARGETS: dict[str, Target] = {}


def target(
    name: str,
    *,
    allowed: Sequence[type[BaseException]] = (),
    modules: Sequence[str] = (),
    seeds: Sequence[bytes] = (),
    weight: float = 1.0,
    max_len: int = 4096,
    dictionary: Sequence[bytes] = (),
) -> Callable[[Callable[[bytes], object]], Callable[[bytes], object]]:
    """Register the decorated function as a target."""

    def register(fn: Callable[[bytes], object]) -> Callable[[bytes], object]:
        if name in TARGETS:
            raise ValueError(f"fuzz target {name!r} registered twice")
        TARGETS[name] = Target(
            name,
            fn,
            tuple(allowed),
            tuple(modules),
            tuple(seeds),
            weight,
            max_len,
            tuple(dictionary),
        )
        return fn

    return register


class Crash(Exception):
    """One input made a target fail in an undocumented way."""

    def __init__(self, target: str, data: bytes, exc: BaseException) -> None:
        self.target = target
        self.data = data
        self.exc = exc
        super().__init__(
            f"{target}: {type(exc).__name__}: {exc} (input {data[:64]!r}, {len(data)} bytes)"
        )


def judge(t: Target, data: bytes) -> object:
    """Run ``t`` on ``data``; the feature, or :class:`Crash` for an undocumented failure.

    KeyboardInterrupt and SystemExit pass through (the driver stops).
    """
    try:
        return t.fn(data)
    except t.allowed as exc:
        # The words of the message (not the values in it): which check refused.
        return ("raised", type(exc).__name__, *[w for w in str(exc).split() if w.isalpha()][:5])
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        raise Crash(t.name, data, exc) from exc


def digest(data: bytes) -> str:
    """libFuzzer's file name for an input (its SHA-1)."""
    return hashlib.sha1(data).hexdigest()


def read_dir(path: Path) -> list[tuple[Path, bytes]]:
    """The inputs saved in ``path`` (README files and dot files skipped), sorted by name."""
    if not path.is_dir():
        return []
    return [
        (p, p.read_bytes())
        for p in sorted(path.iterdir())
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".md")
    ]


class Input:
    """Structured values taken from the front of a fuzz input (never raises).

    The same bytes always give the same values, so an input saved by atheris
    replays identically under the plain driver and the tests.  When the
    bytes run out every getter returns zeros and empty strings.
    """

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        """Bytes not taken yet."""
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes (fewer at the end)."""
        out = self.data[self.pos : self.pos + max(0, n)]
        self.pos += len(out)
        return out

    def u8(self) -> int:
        """One byte as 0..255."""
        b = self.take(1)
        return b[0] if b else 0

    def u16(self) -> int:
        """Two bytes, big-endian."""
        return int.from_bytes(self.take(2).ljust(2, b"\0"), "big")

    def u32(self) -> int:
        """Four bytes, big-endian."""
        return int.from_bytes(self.take(4).ljust(4, b"\0"), "big")

    def flag(self) -> bool:
        """One byte's lowest bit."""
        return bool(self.u8() & 1)

    def pick(self, choices: Sequence[Any]) -> Any:
        """One of ``choices``."""
        return choices[self.u8() % len(choices)]

    def blob(self, most: int = 255) -> bytes:
        """A length byte (capped at ``most``) and that many bytes."""
        return self.take(self.u8() % (most + 1) if most < 255 else self.u8())

    def text(self, most: int = 255) -> str:
        """A :meth:`blob` decoded as UTF-8 with surrogate escapes (any bytes make a str)."""
        return self.blob(most).decode("utf-8", "surrogateescape")

    def rest(self) -> bytes:
        """Everything not taken yet."""
        return self.take(self.remaining())

    def chunks(self, data: bytes) -> list[bytes]:
        """``data`` cut into at most 24 pieces at points drawn from one input byte (a seed).

        The number of pieces is bounded so that a long input does not turn
        into thousands of one-byte reads (a cost, not a finding).
        """
        seed = self.u8()
        if seed == 0 or len(data) < 2:
            return [data]
        k = 1 + seed % 24
        state = seed
        cuts = set()
        for _ in range(k - 1):
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            # Small offsets are likelier: headers sit at the front.
            span = len(data) if state & 1 else min(len(data), 32)
            cuts.add(1 + (state >> 8) % max(1, span - 1))
        points = [0, *sorted(c for c in cuts if c < len(data)), len(data)]
        return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def be16(n: int) -> bytes:
    """Two bytes, big-endian (for seed building)."""
    return struct.pack(">H", n)
