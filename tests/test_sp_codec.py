"""The pure SP codec: handshake parsing and stream framing under any chunking.

The decoder is fed the way ``asyncio.BufferedProtocol`` feeds it: ask for a
buffer, copy at most that many bytes in, report how many.  Hypothesis draws
the payloads (empty, small, around and far beyond the 64 KiB big-body
threshold) and the chunk sizes, so every split of the stream is exercised:
split length prefixes, a big body arriving one byte at a time, several
frames in one read.  Garbage must end in a recorded purenng ``Error``, never
an exception out of ``buffer_updated`` and never a buffer sized by a length
the limit refuses.
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from purenng.core import sp_codec
from purenng.core.errors import Error, MessageTooLarge, ProtocolError
from purenng.core.sp_codec import (
    BIG_BODY,
    HANDSHAKE_SIZE,
    MAX_STREAM_LENGTH,
    POOLED_MAX,
    POOLED_PER_CLASS,
    RECV_BUFFER,
    BigBufferPool,
    SPDecoder,
    encode_handshake,
    frame_prefix,
    parse_handshake,
)

PUSH = 0x50

#: Upper bound on feeding steps per example, so a 300 KiB stream split into
#: tiny chunks stays fast; the split points are still drawn.
MAX_STEPS = 4000


class Collector:
    """Records what the decoder reports."""

    def __init__(self) -> None:
        self.protocols: list[int] = []
        self.messages: list[bytes] = []

    def on_handshake(self, proto: int) -> None:
        self.protocols.append(proto)

    def on_message(self, payload: bytes | bytearray) -> None:
        self.messages.append(bytes(payload))


def make_decoder(*, recv_max_size: int = 0, ipc: bool = False) -> tuple[SPDecoder, Collector]:
    c = Collector()
    return SPDecoder(c.on_handshake, c.on_message, recv_max_size=recv_max_size, ipc=ipc), c


def feed(
    dec: SPDecoder,
    data: bytes,
    sizes: list[int],
    *,
    limit: int | None = None,
) -> None:
    """Feed ``data`` in chunks cycling through ``sizes``, honouring view lengths.

    With ``limit``, every handed-out buffer is checked to stay within it.
    """
    step = max(1, len(data) // MAX_STEPS)
    view = memoryview(data)
    i = 0
    while view:
        want = max(sizes[i % len(sizes)], step)
        i += 1
        buf = dec.get_buffer(-1)
        assert len(buf) > 0, "get_buffer must never return an empty view"
        if limit is not None:
            assert len(buf) <= limit, f"decoder offered a {len(buf)}-byte buffer"
        n = min(len(buf), want, len(view))
        buf[:n] = view[:n]
        dec.buffer_updated(n)
        view = view[n:]


def frames(payloads: list[bytes], *, ipc: bool = False) -> bytes:
    return b"".join(frame_prefix(len(p), ipc=ipc) + p for p in payloads)


def payload_of(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


# Sizes: mostly small, some right at the big-body threshold, some far beyond.
sizes_st = st.one_of(
    st.integers(0, 300),
    st.integers(BIG_BODY - 10, BIG_BODY + 10),
    st.integers(0, 300 * 1024),
)
payloads_st = st.lists(
    st.tuples(sizes_st, st.integers(0, 2**32)).map(lambda t: payload_of(*t)),
    max_size=6,
)
chunks_st = st.lists(
    st.one_of(st.integers(1, 16), st.integers(1, 9), st.integers(1, 200_000)),
    min_size=1,
    max_size=12,
)

codec_settings = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------- handshake


@given(st.integers(0, 0xFFFF))
def test_handshake_round_trip(proto: int) -> None:
    header = encode_handshake(proto)
    assert len(header) == HANDSHAKE_SIZE
    assert header[:4] == b"\x00SP\x00"
    assert header[6:] == b"\x00\x00"
    assert parse_handshake(header) == proto
    assert parse_handshake(bytearray(header)) == proto
    assert parse_handshake(memoryview(header)) == proto


def test_handshake_known_bytes() -> None:
    # wire-protocols.md §2.1: pair1 and REQ examples.
    assert encode_handshake(0x11) == bytes.fromhex("0053500000110000")
    assert encode_handshake(0x30) == bytes.fromhex("0053500000300000")


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"\x01SP\x00\x00\x50\x00\x00", id="byte0"),
        pytest.param(b"\x00sP\x00\x00\x50\x00\x00", id="byte1"),
        pytest.param(b"\x00SQ\x00\x00\x50\x00\x00", id="byte2"),
        pytest.param(b"\x00SP\x01\x00\x50\x00\x00", id="version-1"),
        pytest.param(b"\x00SP\xff\x00\x50\x00\x00", id="version-255"),
        pytest.param(b"\x00SP\x00\x00\x50\x01\x00", id="reserved6"),
        pytest.param(b"\x00SP\x00\x00\x50\x00\x01", id="reserved7"),
        pytest.param(b"GET / HT", id="http"),
        pytest.param(b"\x00SP\x00\x00\x50\x00", id="short"),
        pytest.param(b"\x00SP\x00\x00\x50\x00\x00\x00", id="long"),
        pytest.param(b"", id="empty"),
    ],
)
def test_parse_handshake_refuses(header: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_handshake(header)


@given(st.binary(min_size=8, max_size=8))
def test_parse_handshake_any_bytes(header: bytes) -> None:
    valid = header[:4] == b"\x00SP\x00" and header[6:] == b"\x00\x00"
    if valid:
        assert parse_handshake(header) == int.from_bytes(header[4:6], "big")
    else:
        with pytest.raises(ProtocolError):
            parse_handshake(header)


@pytest.mark.parametrize("split", range(1, HANDSHAKE_SIZE))
def test_decoder_handshake_split(split: int) -> None:
    dec, c = make_decoder()
    feed(dec, encode_handshake(0x51), [split])
    assert c.protocols == [0x51]
    assert dec.handshake_done
    assert dec.error is None


def test_decoder_bad_header_records_error_and_discards() -> None:
    dec, c = make_decoder()
    feed(dec, b"\x00SP\x01\x00\x50\x00\x00" + frames([b"x"]), [3])
    assert isinstance(dec.error, ProtocolError)
    assert c.protocols == []
    assert c.messages == []


def test_decoder_refusal_from_on_handshake_stops_messages() -> None:
    c = Collector()

    def refuse(proto: int) -> None:
        c.on_handshake(proto)
        dec.fail(ProtocolError("wrong peer"))

    dec = SPDecoder(refuse, c.on_message)
    feed(dec, encode_handshake(0x10) + frames([b"a", b"b"]), [100])
    assert c.protocols == [0x10]
    assert c.messages == []
    assert isinstance(dec.error, ProtocolError)


# ---------------------------------------------------------------- framing


@pytest.mark.parametrize("ipc", [False, True], ids=["tcp", "ipc"])
@codec_settings
@given(payloads=payloads_st, sizes=chunks_st)
def test_any_payloads_any_chunking(payloads: list[bytes], sizes: list[int], ipc: bool) -> None:
    dec, c = make_decoder(ipc=ipc)
    feed(dec, encode_handshake(PUSH) + frames(payloads, ipc=ipc), sizes)
    assert dec.error is None
    assert c.protocols == [PUSH]
    assert len(c.messages) == len(payloads)
    assert c.messages == payloads


@pytest.mark.parametrize("ipc", [False, True], ids=["tcp", "ipc"])
def test_empty_messages(ipc: bool) -> None:
    dec, c = make_decoder(ipc=ipc)
    feed(dec, encode_handshake(PUSH) + frames([b"", b"", b"x", b""], ipc=ipc), [1])
    assert dec.error is None
    assert c.messages == [b"", b"", b"x", b""]


def test_frame_prefix_layout() -> None:
    assert frame_prefix(5) == b"\x00" * 7 + b"\x05"
    assert frame_prefix(5, ipc=True) == b"\x01" + b"\x00" * 7 + b"\x05"
    assert frame_prefix(2**40 + 1) == struct.pack(">Q", 2**40 + 1)


def test_ipc_type_byte_must_be_one() -> None:
    dec, c = make_decoder(ipc=True)
    feed(dec, encode_handshake(PUSH) + b"\x00" + struct.pack(">Q", 1) + b"x", [64])
    assert isinstance(dec.error, ProtocolError)
    assert c.messages == []


@pytest.mark.parametrize("limit", [1, 100, BIG_BODY, 1 << 20])
def test_length_at_limit_accepted_above_refused(limit: int) -> None:
    dec, c = make_decoder(recv_max_size=limit)
    body = b"z" * limit
    feed(dec, encode_handshake(PUSH) + frames([body]), [65536])
    assert dec.error is None
    assert c.messages == [body]
    feed(dec, frame_prefix(limit + 1) + b"z" * (limit + 1), [65536])
    assert isinstance(dec.error, MessageTooLarge)
    assert c.messages == [body]


@pytest.mark.parametrize(
    "length",
    [MAX_STREAM_LENGTH + 1, 1 << 61, 1 << 62, 1 << 63, (1 << 64) - 1],
    ids=["2^60", "2^61", "2^62", "2^63", "2^64-1"],
)
@pytest.mark.parametrize("ipc", [False, True], ids=["tcp", "ipc"])
def test_reserved_length_bits_refused_without_limit(length: int, ipc: bool) -> None:
    # recv_max_size=0 means "no limit", yet the top four bits stay reserved.
    dec, c = make_decoder(recv_max_size=0, ipc=ipc)
    feed(dec, encode_handshake(PUSH) + frame_prefix(length, ipc=ipc) + b"abc", [4])
    assert isinstance(dec.error, MessageTooLarge)
    assert "reserved" in str(dec.error)
    assert c.messages == []


def test_oversize_refused_before_allocation() -> None:
    # 2**40 bytes could never be allocated: refusing must happen on the prefix.
    dec, c = make_decoder(recv_max_size=1 << 20)
    feed(dec, encode_handshake(PUSH) + frame_prefix(2**40) + b"\x00" * 100, [3], limit=RECV_BUFFER)
    assert isinstance(dec.error, MessageTooLarge)
    assert c.messages == []
    # Further input is discarded, and buffers stay small.
    feed(dec, frames([b"after"]) * 10, [7], limit=RECV_BUFFER)
    assert c.messages == []


def test_error_is_sticky() -> None:
    dec, c = make_decoder(recv_max_size=10)
    feed(dec, encode_handshake(PUSH) + frames([b"ok"]) + frame_prefix(11), [100])
    first = dec.error
    assert isinstance(first, MessageTooLarge)
    dec.fail(ProtocolError("second"))
    assert dec.error is first
    feed(dec, frames([b"late"]), [100])
    assert c.messages == [b"ok"]


def test_messages_before_error_delivered_in_one_read() -> None:
    dec, c = make_decoder(recv_max_size=100)
    data = encode_handshake(PUSH) + frames([b"a", b"b", b"c"]) + frame_prefix(101) + frames([b"d"])
    feed(dec, data, [len(data)])
    assert c.messages == [b"a", b"b", b"c"]
    assert isinstance(dec.error, MessageTooLarge)


# ---------------------------------------------------------------- garbage

GARBAGE_LIMIT = 512 * 1024


def _frame_or_noise() -> st.SearchStrategy[bytes]:
    """Valid frames, frames with lying lengths, and raw noise."""
    valid = st.binary(max_size=64).map(lambda b: frame_prefix(len(b)) + b)
    lying = st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=64)).map(
        lambda t: struct.pack(">Q", t[0]) + t[1]
    )
    near = st.tuples(st.integers(GARBAGE_LIMIT - 2, GARBAGE_LIMIT + 2), st.binary(max_size=32)).map(
        lambda t: struct.pack(">Q", t[0]) + t[1]
    )
    return st.one_of(valid, lying, near, st.binary(max_size=64))


@pytest.mark.parametrize("ipc", [False, True], ids=["tcp", "ipc"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.one_of(st.just(encode_handshake(PUSH)), st.binary(min_size=8, max_size=8)),
    parts=st.lists(_frame_or_noise(), max_size=12),
    sizes=chunks_st,
)
def test_garbage_ends_in_purenng_error_with_bounded_buffers(
    header: bytes, parts: list[bytes], sizes: list[int], ipc: bool
) -> None:
    prefix = b"\x01" if ipc else b""
    data = header + b"".join(prefix + p if i % 2 else p for i, p in enumerate(parts))
    dec, c = make_decoder(recv_max_size=GARBAGE_LIMIT, ipc=ipc)
    # Any exception escaping buffer_updated fails the test here.
    feed(dec, data, sizes, limit=max(RECV_BUFFER, GARBAGE_LIMIT))
    assert dec.error is None or isinstance(dec.error, ProtocolError | MessageTooLarge)
    assert isinstance(dec.error, Error | None)
    assert all(len(m) <= GARBAGE_LIMIT for m in c.messages)
    assert len(c.protocols) <= 1
    if dec.error is None:
        # No error: everything delivered is what the frames said, in order.
        assert len(c.protocols) == 1


@pytest.mark.parametrize(
    ("first_bytes", "hint"),
    [(b"\x16\x03\x01\x02\x00\x01\x00\x01", "tls+tcp://"), (b"GET / HT", "ws://")],
)
def test_handshake_error_hints_at_the_right_transport(first_bytes: bytes, hint: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_handshake(first_bytes)
    assert hint in str(info.value)


# ------------------------------------------------------------------ buffer growth


def _decoder(out: list[bytes]) -> SPDecoder:
    return SPDecoder(lambda proto: None, lambda p: out.append(bytes(p)))


def test_an_idle_decoder_holds_a_small_buffer() -> None:
    from purenng.core.sp_codec import INITIAL_BUFFER

    dec = _decoder([])
    assert INITIAL_BUFFER < RECV_BUFFER
    assert len(dec.get_buffer(-1)) == INITIAL_BUFFER


def test_a_small_frame_larger_than_the_initial_buffer_arrives_whole() -> None:
    from purenng.core.sp_codec import INITIAL_BUFFER

    out: list[bytes] = []
    dec = _decoder(out)
    payload = bytes(range(256)) * ((INITIAL_BUFFER * 3) // 256)  # 48 KiB < BIG_BODY
    assert INITIAL_BUFFER < len(payload) < BIG_BODY
    feed(dec, encode_handshake(PUSH) + frame_prefix(len(payload)) + payload, [1000])
    assert out == [payload]
    assert dec.error is None


def test_a_read_that_fills_the_buffer_makes_it_grow_up_to_the_maximum() -> None:
    from purenng.core.sp_codec import INITIAL_BUFFER

    out: list[bytes] = []
    dec = _decoder(out)
    small = frame_prefix(56) + b"x" * 56
    stream = encode_handshake(PUSH) + small * (RECV_BUFFER // 64 * 4)
    sizes = []
    view = memoryview(stream)
    while view:
        buf = dec.get_buffer(-1)
        sizes.append(len(buf))
        n = min(len(buf), len(view))  # every read fills what it is offered
        buf[:n] = view[:n]
        dec.buffer_updated(n)
        view = view[n:]
    assert len(out) == RECV_BUFFER // 64 * 4
    assert sizes[0] == INITIAL_BUFFER
    assert max(sizes) <= RECV_BUFFER
    assert max(sizes) > RECV_BUFFER // 2


# ------------------------------------------------------------------ big-body buffers


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> BigBufferPool:
    """A private pool, so that what other tests left behind does not count."""
    fresh = BigBufferPool()
    monkeypatch.setattr(sp_codec, "BIG_BUFFERS", fresh)
    return fresh


def _raw_decoder(out: list[bytes | bytearray]) -> SPDecoder:
    """A decoder whose payloads are kept as delivered (not copied)."""
    dec = SPDecoder(lambda proto: None, out.append)
    feed(dec, encode_handshake(PUSH), [8])
    return dec


def test_big_bodies_arrive_as_bytes_that_later_bodies_do_not_overwrite(
    pool: BigBufferPool,
) -> None:
    out: list[bytes | bytearray] = []
    dec = _raw_decoder(out)
    bodies = [payload_of(100 * 1024, seed) for seed in range(4)]
    for body in bodies:
        feed(dec, frame_prefix(len(body)) + body, [4096])
    assert all(type(p) is bytes for p in out)
    assert out == bodies
    # One buffer served all four bodies and went back to the pool.
    assert pool.spare_bytes() == 128 * 1024


def test_interleaved_big_bodies_on_two_pipes_use_separate_buffers(pool: BigBufferPool) -> None:
    out_a: list[bytes | bytearray] = []
    out_b: list[bytes | bytearray] = []
    a, b = _raw_decoder(out_a), _raw_decoder(out_b)
    body_a, body_b = payload_of(200 * 1024, 1), payload_of(200 * 1024, 2)
    stream_a = frame_prefix(len(body_a)) + body_a
    half = len(stream_a) // 2
    feed(a, stream_a[:half], [8192])  # a is in the middle of its body
    feed(b, frame_prefix(len(body_b)) + body_b, [8192])
    feed(b, frame_prefix(len(body_b)) + body_b, [8192])  # b reuses its buffer
    feed(a, stream_a[half:], [8192])
    assert out_a == [body_a]
    assert out_b == [body_b, body_b]


def test_bodies_beyond_the_pooled_sizes_are_not_kept(pool: BigBufferPool) -> None:
    out: list[bytes | bytearray] = []
    dec = _raw_decoder(out)
    body = payload_of(POOLED_MAX + 1, 3)
    feed(dec, frame_prefix(len(body)) + body, [1 << 20])
    assert out == [body]
    assert pool.spare_bytes() == 0


def test_the_pool_keeps_a_bounded_number_of_spares_per_size() -> None:
    pool = BigBufferPool()
    taken = [pool.take(BIG_BODY + 1) for _ in range(POOLED_PER_CLASS + 3)]
    assert {len(b) for b in taken} == {2 * BIG_BODY}
    for b in taken:
        pool.give(b)
    assert pool.spare_bytes() == POOLED_PER_CLASS * 2 * BIG_BODY
    again = pool.take(2 * BIG_BODY)
    assert any(again is b for b in taken)
    assert BigBufferPool.size_class(BIG_BODY) == BIG_BODY
    assert BigBufferPool.size_class(POOLED_MAX) == POOLED_MAX
    assert BigBufferPool.size_class(POOLED_MAX + 1) == 0
