"""The fuzz targets in the normal suite: a short fixed-seed pass, and corpus replay.

* Every target of ``fuzz/`` runs a few thousand mutated inputs from a fixed
  seed (deterministic: the same inputs on every run), with the plain driver.
* Every input saved under ``fuzz/corpus/`` and ``fuzz/crashes/`` replays
  without a crash: a crash that was fixed stays fixed.
* Inputs under ``fuzz/known/`` (none now) crash in code whose fix is
  pending; each gets a strict xfail naming the place, so the fix shows up
  when it lands.
* hypothesis properties for the codecs: SP framing and WebSocket framing
  round-trip any list of messages, however the byte stream is cut.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz._harness import CORPUS, CRASHES, Crash, judge, read_dir  # noqa: E402
from fuzz.run import load_targets, run_plain, shutdown_targets  # noqa: E402

TARGETS = load_targets()
#: Inputs per target in the short pass (slow targets get fewer).
SHORT = {"tls_config": 60, "http_connection": 800, "compat_options": 800, "sp_decoder": 2000}
DEFAULT_SHORT = 4000


@pytest.fixture(scope="module", autouse=True)
def _release_targets() -> Iterator[None]:
    """The loops and sockets the targets keep between inputs go with this module."""
    yield
    shutdown_targets()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_short_fixed_seed_pass(name: str) -> None:
    t = TARGETS[name]
    n = SHORT.get(name, DEFAULT_SHORT)
    result = run_plain(t, n, 0, seed=20240601, per_input=0, report=False, stop_on_crash=True)
    assert result["inputs"] >= 1
    assert result["crash_kinds"] == [], result["crashes"]


def _saved_dirs() -> list[Path]:
    bases = [b for b in (CORPUS, CRASHES) if b.is_dir()]
    return [d for base in bases for d in sorted(base.iterdir()) if d.is_dir() and read_dir(d)]


@pytest.mark.parametrize(
    "directory", _saved_dirs(), ids=[f"{d.parent.name}/{d.name}" for d in _saved_dirs()]
)
def test_saved_inputs_replay(directory: Path) -> None:
    """Every input saved for a target (corpus or fixed crash) runs without a crash."""
    name = directory.name
    assert name in TARGETS, f"{directory}: no fuzz target called {name!r}"
    failures = []
    files = read_dir(directory)
    for path, data in files:
        try:
            judge(TARGETS[name], data)
        except Crash as c:
            failures.append(f"{path.name}: {c}")
    assert files
    assert failures == []


def test_every_target_documents_what_it_allows() -> None:
    for t in TARGETS.values():
        mod = sys.modules[t.fn.__module__]
        assert mod.__doc__, f"{t.name}: its module has no docstring"
        assert t.name in mod.__doc__, f"{t.name}: not described in its module"
        assert isinstance(t.allowed, tuple)


# ---------------------------------------------------------------- fixed crashes, by name


def test_huge_duration_is_a_bad_option() -> None:
    """``float(10**400)`` raised OverflowError out of option validation."""
    import purenng

    with pytest.raises(purenng.BadOption, match="recv_timeout"):
        purenng.Pair0(recv_timeout=10**400)


def test_compat_ca_files_must_be_names() -> None:
    """An int in ``ca_files`` was opened as a file descriptor (and closed)."""
    import purenng.compat.pynng as pynng

    with pytest.raises(ValueError, match="ca_files"):
        pynng.TLSConfig(pynng.TLSConfig.MODE_CLIENT, ca_files=[1, 2])._to_purenng()  # type: ignore[list-item]


def test_ipc_abstract_names_with_surrogates() -> None:
    """Found by the url target: a lone surrogate used to escape as UnicodeEncodeError.

    A surrogate escape (what ``os.fsdecode`` makes of a byte that is not
    UTF-8) stands for its byte, as in ipc paths; any other lone surrogate
    is a bad address.
    """
    from purenng.core.errors import BadAddress
    from purenng.core.registry import get_registry
    from purenng.core.url import parse_url
    from purenng.transports.ipc import _address

    crash = (CRASHES / "url" / "abstract-surrogate").read_bytes()
    url = parse_url("abstract://" + crash.decode("utf-8", "surrogateescape"))
    get_registry().transport("abstract").check_url(url)
    assert _address(url) == b"\0\xff"
    with pytest.raises(BadAddress):
        get_registry().transport("abstract").check_url(parse_url("abstract://a\ud800b"))


# ---------------------------------------------------------------- hypothesis properties

_messages = st.lists(st.binary(max_size=300), max_size=12)
_cuts = st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=30)


def _cut(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        out.append(data[pos : pos + n])
        pos += n
        i += 1
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=_messages, cuts=_cuts, ipc=st.booleans())
def test_sp_codec_round_trip(msgs: list[bytes], cuts: list[int], ipc: bool) -> None:
    from purenng.core.sp_codec import SPDecoder, encode_handshake, frame_prefix

    stream = encode_handshake(0x11) + b"".join(frame_prefix(len(m), ipc=ipc) + m for m in msgs)
    got: list[bytes] = []
    protos: list[int] = []
    dec = SPDecoder(protos.append, lambda p: got.append(bytes(p)), recv_max_size=0, ipc=ipc)
    for piece in _cut(stream, cuts):
        view = memoryview(piece)
        while view:
            buf = dec.get_buffer(-1)
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            dec.buffer_updated(n)
            view = view[n:]
    assert dec.error is None
    assert protos == [0x11]
    assert got == msgs


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    msgs=st.lists(st.binary(min_size=0, max_size=300), max_size=10),
    cuts=_cuts,
    frame_max=st.sampled_from([0, 1, 7, 64, 1000]),
    client=st.booleans(),
)
def test_ws_codec_round_trip(
    msgs: list[bytes], cuts: list[int], frame_max: int, client: bool
) -> None:
    from purenng.transports._ws_codec import WSCodec

    sender = WSCodec(client=client, send_frame_max=frame_max)
    receiver = WSCodec(client=not client)
    for m in msgs:
        sender.send_message(m[:3], m[3:])
    wire = b"".join(sender.data_to_send())
    got: list[bytes] = []
    for piece in _cut(wire, cuts):
        got += [bytes(x) for x in receiver.receive(piece)]
    assert receiver.error is None
    assert got == msgs
