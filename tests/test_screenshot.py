"""vmbundle.guest.screenshot: PPM in, scaled, PNG out, checked against Pillow. (A real
screendump of the test guest goes through it in test_guest_power.py.)"""

from __future__ import annotations

import io
import random
import time
from fractions import Fraction

import pytest
from PIL import Image as PilImage

from vmbundle.errors import VmbundleError
from vmbundle.guest.screenshot import (
    BadScreendump,
    BadWidth,
    Image,
    parse_ppm,
    scale,
    to_png,
)


def noise(width: int, height: int, seed: int = 0) -> Image:
    return Image(width, height, random.Random(seed).randbytes(width * height * 3))


def checkerboard(width: int, height: int, cell: int) -> Image:
    rgb = bytearray()
    for y in range(height):
        for x in range(width):
            rgb += b"\xff\xff\xff" if (x // cell + y // cell) % 2 else b"\x00\x00\xaa"
    return Image(width, height, bytes(rgb))


def gradient(width: int, height: int) -> Image:
    rgb = bytearray()
    for y in range(height):
        for x in range(width):
            rgb += bytes((x * 255 // (width - 1), y * 255 // (height - 1), (x + y) % 256))
    return Image(width, height, bytes(rgb))


def ppm(img: Image) -> bytes:
    return b"P6\n%d %d\n255\n" % (img.width, img.height) + img.rgb


def pillow(img: Image) -> PilImage.Image:
    return PilImage.frombytes("RGB", (img.width, img.height), img.rgb)


def from_png(data: bytes) -> Image:
    with PilImage.open(io.BytesIO(data)) as png:
        assert png.format == "PNG"
        assert png.mode == "RGB"
        return Image(png.width, png.height, png.tobytes())


# --- round trips ------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(1, 1), (1, 5), (7, 1), (3, 7), (641, 479)])
def test_ppm_to_png_round_trips_through_pillow(width: int, height: int) -> None:
    img = noise(width, height)
    assert parse_ppm(ppm(img)) == img
    assert from_png(to_png(img)) == img


def test_a_ppm_pillow_writes_is_read() -> None:
    img = noise(13, 9, seed=1)
    out = io.BytesIO()
    pillow(img).save(out, format="PPM")
    assert parse_ppm(out.getvalue()) == img


def test_a_ppm_header_with_comments_and_other_white_space_is_read() -> None:
    img = noise(2, 3, seed=2)
    data = b"P6 # QEMU writes none of this\n2\t3\r\n# a comment\n255 " + img.rgb
    assert parse_ppm(data) == img


def test_the_png_is_rgb_8_bit_unfiltered() -> None:
    data = to_png(noise(5, 4))
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    # IHDR: width 5, height 4, depth 8, colour type 2 (RGB), deflate, filter 0, no interlace
    assert data[8:33] == (
        b"\x00\x00\x00\x0dIHDR\x00\x00\x00\x05\x00\x00\x00\x04\x08\x02\x00\x00\x00" + data[29:33]
    )
    with PilImage.open(io.BytesIO(data)) as png:
        png.verify()


# --- scaling ----------------------------------------------------------------

# Where a source pixel's centre falls exactly on the edge between two boxes and the ratio
# is no binary fraction (721 to 100: 7.21), Pillow's floating point may put that pixel in
# both boxes or in neither, where scale's integers put it in the first; these sizes have
# no such edge.
SCALES = [
    (1280, 800, 320),  # 4:1, the controller's thumbnail of a 1280x800 desktop
    (720, 400, 320),  # VGA text mode, 2.25:1
    (1024, 768, 333),
    (95, 31, 9),
    (7, 5, 3),
]


@pytest.mark.parametrize(("width", "height", "to"), SCALES)
@pytest.mark.parametrize("pattern", ["checkerboard", "gradient"])
def test_scale_matches_pillows_box_filter(width: int, height: int, to: int, pattern: str) -> None:
    img = checkerboard(width, height, 3) if pattern == "checkerboard" else gradient(width, height)
    small = scale(img, to)
    assert small.width == to
    assert small.height == max(1, round(height * to / width))
    expected = pillow(img).resize((small.width, small.height), PilImage.Resampling.BOX).tobytes()
    # Both round to 8 bits after each pass, each within 1 of the exact average (see
    # below), Pillow horizontally first, scale vertically first: 2 apart at the most.
    worst = max(abs(a - b) for a, b in zip(small.rgb, expected, strict=True))
    assert worst <= 2


def box_average(img: Image, width: int, height: int) -> list[Fraction]:
    """The exact average of each box, pixel i of n in box t of m when
    t*n/m < i + 1/2 <= (t+1)*n/m, the slow way."""

    def box(t: int, src: int, dst: int) -> list[int]:
        lo, hi = Fraction(t * src, dst), Fraction((t + 1) * src, dst)
        return [i for i in range(src) if lo < i + Fraction(1, 2) <= hi]

    out = []
    for y in range(height):
        for x in range(width):
            pixels = [(r, c) for r in box(y, img.height, height) for c in box(x, img.width, width)]
            for channel in range(3):
                total = sum(img.rgb[(r * img.width + c) * 3 + channel] for r, c in pixels)
                out.append(Fraction(total, len(pixels)))
    return out


@pytest.mark.parametrize(("width", "height", "to"), [(95, 31, 9), (101, 37, 10), (7, 5, 3)])
def test_scale_is_within_one_of_the_exact_box_average(width: int, height: int, to: int) -> None:
    img = noise(width, height, seed=width)
    small = scale(img, to)
    exact = box_average(img, small.width, small.height)
    assert max(abs(a - b) for a, b in zip(small.rgb, exact, strict=True)) <= 1


def test_scale_averages_whole_boxes_exactly() -> None:
    # Every 2x2 box of this image holds 0, 1, 2 and 4: its average, 1.75, is 2 (the rows
    # first: 1 and 2.5, halves up to 3; then (1 + 3) / 2).
    rgb = bytearray()
    for y in range(4):
        for x in range(6):
            rgb += bytes([(0, 1, 2, 4)[(y % 2) * 2 + x % 2]] * 3)
    small = scale(Image(6, 4, bytes(rgb)), 3)
    assert (small.width, small.height) == (3, 2)
    assert set(small.rgb) == {2}


def test_scale_keeps_white_text_visible_on_blue() -> None:
    # One-pixel strokes on blue: a box filter keeps them as a lighter blue, not gone.
    img = checkerboard(400, 200, 1)
    small = scale(img, 100)
    assert all(small.rgb[i] > 0x60 for i in range(0, len(small.rgb), 3))


def test_scale_no_wider_returns_the_image_itself() -> None:
    img = noise(30, 20)
    assert scale(img, 30) is img
    assert scale(img, 1000) is img


def test_scale_keeps_at_least_one_row() -> None:
    small = scale(noise(1000, 2), 10)
    assert (small.width, small.height) == (10, 1)


@pytest.mark.parametrize("width", [0, -5])
def test_scale_refuses_a_width_below_one(width: int) -> None:
    with pytest.raises(BadWidth, match=rf"^a screenshot cannot be {width} pixels wide"):
        scale(noise(4, 4), width)


def test_an_image_must_hold_its_pixels() -> None:
    with pytest.raises(ValueError, match="needs 12 bytes of RGB, got 11"):
        Image(2, 2, bytes(11))
    with pytest.raises(ValueError):
        Image(0, 1, b"")


# --- bad PPM ----------------------------------------------------------------

GOOD = ppm(noise(4, 3))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no data"),
        (b"\x89PNG\r\n\x1a\n", "not a binary PPM"),
        (b"P3\n4 3\n255\n" + b"0 " * 36, "not a binary PPM"),
        (b"P6", "bad PPM header"),
        (b"P64 3\n255\n" + bytes(36), "bad PPM header"),
        (b"P6\n4 x\n255\n" + bytes(36), "bad PPM header"),
        (b"P6\n-4 3\n255\n" + bytes(36), "bad PPM header"),
        (b"P6\n4 3\n255" + bytes(36), "bad PPM header"),
        (b"P6\n4 3 255\n", "cut short"),
        (b"P6\n0 3\n255\n", "0x3 pixels: no picture"),
        (b"P6\n4 3\n65535\n" + bytes(72), "maxval is 65535"),
        (b"P6\n4 3\n15\n" + bytes(36), "maxval is 15"),
        (b"P6\n99999999999 3\n255\n", "bad PPM header"),
        (GOOD[:-1], "cut short: 36 bytes of pixels expected, 35 found"),
        (GOOD + b"\n", "has more after its pixels: 36 bytes of pixels expected, 37 found"),
    ],
)
def test_a_bad_ppm_is_refused_in_one_line(data: bytes, message: str) -> None:
    with pytest.raises(BadScreendump) as info:
        parse_ppm(data)
    text = str(info.value)
    assert message in text
    assert text.startswith("screendump: ")
    assert "\n" not in text
    assert isinstance(info.value, VmbundleError)


def test_scale_of_a_desktop_to_a_thumbnail_takes_no_loop_over_pixels() -> None:
    # About 30 ms on the development machine; a loop over the pixels takes seconds. The
    # bound is loose so that only such a regression fails, not a busy machine.
    img = noise(1280, 800)
    started = time.perf_counter()
    scale(img, 320)
    assert time.perf_counter() - started < 1.0
