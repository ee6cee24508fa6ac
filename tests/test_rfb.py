"""The console's RFB filter (vmbundle.controller.rfb), with byte streams built by
hand as noVNC 1.7 and RFC 6143 spell them: every message type passes for who may
type, a view-only stream loses exactly the input, ClientInit always says shared,
the output never depends on how the stream was cut, and what cannot be parsed is
refused for good."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.rfb import (
    continuous_updates,
    cut_text,
    desktop_size,
    fence,
    key,
    pixel_format,
    pointer,
    qemu_audio,
    qemu_key,
    set_encodings,
    update_request,
    xvp,
)

from vmbundle.controller import rfb
from vmbundle.controller.rfb import ClientStream, RfbRefused

# What noVNC 1.7 asks for at full depth (core/rfb.js _sendEncodings), H.264 aside.
NOVNC_ENCODINGS = (
    1, 7, -260, 16, 21, 5, 2, 6, 0, -26, -254, -223, -224, -258, -261, -308, -309,
    -312, -313, -307, 0xC0A1E5CE - (1 << 32), -316, 0x574D5664, -239,
)  # fmt: skip

# One of every message, and whether it is input (dropped from a view-only stream).
EVERY_MESSAGE = [
    (pixel_format(), False),
    (set_encodings(0, 1, -223), False),
    (update_request(), False),
    (key(1, 0x61), True),
    (key(0, 0x61), True),
    (pointer(1, 100, 200), True),
    (pointer(0, 101, 201), True),
    (cut_text(b"secret"), True),
    (cut_text(b"\x10\x00\x00\x01", extended=True), True),
    (continuous_updates(1), False),
    (fence(0x80000002, b"ping"), False),
    (xvp(2), True),
    (desktop_size(1024, 768), True),
    (qemu_key(1, 0x62, 0x30), True),
    (qemu_key(0, 0x62, 0x30), True),
    (qemu_audio(0), True),
    (qemu_audio(2), True),
    (qemu_audio(1), True),
    (update_request(1), False),
]

VERSION = b"RFB 003.008\n"
# ProtocolVersion, security None, ClientInit asking for the screen alone ...
HELLO = VERSION + b"\x01" + b"\x00"
# ... which goes on as shared.
HELLO_PASSED = VERSION + b"\x01" + b"\x01"


def passed(chunks: list[bytes], *, view_only: bool) -> bytes:
    stream = ClientStream(view_only=view_only)
    return b"".join(stream.feed(c) for c in chunks)


def expected(messages: list[tuple[bytes, bool]], *, view_only: bool) -> bytes:
    return HELLO_PASSED + b"".join(m for m, is_input in messages if not (view_only and is_input))


def session() -> bytes:
    return HELLO + b"".join(m for m, _ in EVERY_MESSAGE)


# -- what passes --------------------------------------------------------------------


def test_every_message_passes_for_one_who_may_type() -> None:
    assert passed([session()], view_only=False) == expected(EVERY_MESSAGE, view_only=False)


def test_a_view_only_stream_loses_exactly_the_input() -> None:
    out = passed([session()], view_only=True)
    assert out == expected(EVERY_MESSAGE, view_only=True)
    screen_only = (
        pixel_format(),
        set_encodings(0, 1, -223),
        update_request(),
        continuous_updates(1),
        fence(0x80000002, b"ping"),
        update_request(1),
    )
    assert out == HELLO_PASSED + b"".join(screen_only)


def test_input_messages_are_exactly_what_the_filter_calls_input() -> None:
    kinds = {m[0] for m, is_input in EVERY_MESSAGE if is_input}
    assert kinds == rfb.INPUT == {4, 5, 6, 250, 251, 255}


@pytest.mark.parametrize("view_only", [False, True])
def test_a_stream_cut_at_any_byte_passes_the_same(view_only: bool) -> None:
    data = session()
    want = expected(EVERY_MESSAGE, view_only=view_only)
    for cut in range(len(data) + 1):
        assert passed([data[:cut], data[cut:]], view_only=view_only) == want, cut
    assert passed([data[i : i + 1] for i in range(len(data))], view_only=view_only) == want


def test_a_message_passes_only_once_whole() -> None:
    stream = ClientStream(view_only=False)
    assert stream.feed(HELLO) == HELLO_PASSED
    text = cut_text(b"x" * 100_000)
    for i in range(0, len(text) - 1, 1000):
        assert stream.feed(text[i : min(i + 1000, len(text) - 1)]) == b""
    request = update_request()
    assert stream.feed(text[-1:] + request[:1]) == text
    assert stream.feed(request[1:]) == request


def test_a_large_cut_text_in_small_pieces_is_read_to_its_end() -> None:
    text = cut_text(b"y" * rfb.MAX_CUT_TEXT)
    for view_only in (False, True):
        stream = ClientStream(view_only=view_only)
        out = [stream.feed(HELLO)]
        out += [stream.feed(text[i : i + 4096]) for i in range(0, len(text), 4096)]
        out.append(stream.feed(update_request()))
        assert b"".join(out) == HELLO_PASSED + (b"" if view_only else text) + update_request()


@pytest.mark.parametrize("flag", [0, 1, 2, 255])
def test_client_init_always_asks_to_share(flag: int) -> None:
    for hello in (VERSION + b"\x01", b"RFB 003.007\n\x02" + bytes(16)):
        for view_only in (False, True):
            out = passed([hello + bytes([flag]) + update_request()], view_only=view_only)
            assert out == hello + b"\x01" + update_request()


def test_a_vnc_authentication_response_passes_unread() -> None:
    """16 bytes, whatever they are: a 4 there is no KeyEvent."""
    response = bytes([4] * 8 + [5] * 8)
    hello = VERSION + b"\x02" + response + b"\x00"
    out = passed([hello + key(1, 0x61) + update_request()], view_only=True)
    assert out == VERSION + b"\x02" + response + b"\x01" + update_request()


def test_set_encodings_loses_extended_mouse_buttons() -> None:
    """With it a server may make PointerEvent 7 bytes long, which the client's
    bytes cannot show; without it noVNC sends the 6-byte one."""
    kept = tuple(e for e in NOVNC_ENCODINGS if e != rfb.EXTENDED_MOUSE_BUTTONS)
    for view_only in (False, True):
        out = passed(
            [HELLO + set_encodings(*NOVNC_ENCODINGS) + update_request()], view_only=view_only
        )
        assert out == HELLO_PASSED + set_encodings(*kept) + update_request()
        out = passed([HELLO + set_encodings(*kept)], view_only=view_only)
        assert out == HELLO_PASSED + set_encodings(*kept)
    assert passed([HELLO + set_encodings(-316)], view_only=True) == HELLO_PASSED + set_encodings()


# -- any messages, cut anywhere -----------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
encoding = st.one_of(st.sampled_from(NOVNC_ENCODINGS), st.integers(-(1 << 31), (1 << 31) - 1))


def _encodings(encs: list[int]) -> tuple[bytes, bool, bytes]:
    kept = [e for e in encs if e != rfb.EXTENDED_MOUSE_BUTTONS]
    return set_encodings(*encs), False, set_encodings(*kept)


# (message, is input, what passes for one who may type)
MESSAGE = st.one_of(
    st.builds(pixel_format, st.sampled_from([8, 16, 32]), u8).map(lambda m: (m, False, m)),
    st.lists(encoding, max_size=30).map(_encodings),
    st.builds(update_request, st.integers(0, 1), u16, u16, u16, u16).map(lambda m: (m, False, m)),
    st.builds(continuous_updates, st.integers(0, 1), u16, u16, u16, u16).map(
        lambda m: (m, False, m)
    ),
    st.builds(fence, u32, st.binary(max_size=rfb.MAX_FENCE_PAYLOAD)).map(lambda m: (m, False, m)),
    st.builds(key, st.integers(0, 1), u32).map(lambda m: (m, True, m)),
    st.builds(pointer, u8, u16, u16).map(lambda m: (m, True, m)),
    st.builds(cut_text, st.binary(max_size=300), extended=st.booleans()).map(
        lambda m: (m, True, m)
    ),
    st.builds(xvp, u8).map(lambda m: (m, True, m)),
    st.builds(desktop_size, u16, u16, st.integers(0, 4)).map(lambda m: (m, True, m)),
    st.builds(qemu_key, u16, u32, u32).map(lambda m: (m, True, m)),
    st.builds(qemu_audio, st.integers(0, 2), u8, u8, u32).map(lambda m: (m, True, m)),
)


@given(messages=st.lists(MESSAGE, max_size=25), view_only=st.booleans(), data=st.data())
def test_any_messages_cut_anywhere(
    messages: list[tuple[bytes, bool, bytes]], view_only: bool, data: st.DataObject
) -> None:
    stream = HELLO + b"".join(m for m, _, _ in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    want = HELLO_PASSED + b"".join(
        out for _, is_input, out in messages if not (view_only and is_input)
    )
    assert passed(chunks, view_only=view_only) == want


# -- what is refused ----------------------------------------------------------------

KNOWN = {0, 2, 3, 4, 5, 6, 150, 248, 250, 251, 255}


@pytest.mark.parametrize("kind", sorted(set(range(256)) - KNOWN))
def test_an_unknown_message_type_is_refused_for_good(kind: int) -> None:
    for view_only in (False, True):
        stream = ClientStream(view_only=view_only)
        assert stream.feed(HELLO) == HELLO_PASSED
        # The messages before it in the same piece do not pass either.
        with pytest.raises(RfbRefused, match=f"^client message type {kind}: not one"):
            stream.feed(update_request() + bytes([kind]) + bytes(30))
        with pytest.raises(RfbRefused, match="refused already"):
            stream.feed(update_request())


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"RFB 003.003\n", "the client answered RFB 3.3"),
        (b"RFB 003.005\n", "the client answered RFB 3.3"),
        (b"RFB 004.001\n", r"^b'RFB 004\.001\\n': not RFB protocol version 3\.7 or 3\.8$"),
        (b"GET / HTTP/1.1\r\n", "not RFB protocol version"),
        (VERSION + b"\x00", r"^security type 0: the console passes only None \(1\)"),
        (VERSION + b"\x10", "security type 16"),  # Tight
        (VERSION + b"\x13", "security type 19"),  # VeNCrypt
        (HELLO + cut_text(b"z" * (rfb.MAX_CUT_TEXT + 1))[:8], "ClientCutText of 1048577 bytes"),
        (HELLO + struct.pack(">Bxxxi", 6, -(1 << 31)), "ClientCutText of 2147483648 bytes"),
        (HELLO + fence(0, b"f" * 65)[:9], "ClientFence with 65 bytes"),
        (HELLO + b"\xff\x02", "^QEMU client message 2: not one"),
        (HELLO + b"\xff\x01\x00\x03", "^QEMU audio operation 3: not enable"),
    ],
)
def test_what_cannot_be_parsed_is_refused(data: bytes, line: str) -> None:
    stream = ClientStream(view_only=False)
    with pytest.raises(RfbRefused, match=line):
        for i in range(len(data)):  # as soon as the byte that tells arrives
            stream.feed(data[i : i + 1])
