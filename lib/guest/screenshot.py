"""A guest's screen, from QEMU's screendump to a PNG thumbnail: pure, no I/O.

QMP `screendump` writes a binary PPM (P6, maxval 255) on every profile, the 0.14
fork included, so the controller always asks for PPM, reads the file and hands
its bytes here: parse_ppm, then scale for a thumbnail, then to_png.

scale averages boxes of source pixels (the box filter), so that the text on a
console stays legible in a thumbnail where point sampling would drop strokes.
It is pure Python and fast enough for a web page's thumbnails because it never
loops over pixels: a row (or a column) of samples is spread into the lanes of
one big integer, whose additions and multiplications add and divide every
sample at once in C (see _Lanes).
"""

from __future__ import annotations

import itertools
import re
import struct
import zlib

import attrs

from vmbundle.errors import VmbundleError


class ScreenshotError(VmbundleError):
    """A screenshot that cannot be made: the kinds below."""


class BadScreendump(ScreenshotError):
    """The bytes are not a PPM as QEMU's screendump writes it (P6, maxval 255)."""


class BadWidth(ScreenshotError):
    """A thumbnail width that cannot be made (less than one pixel)."""


def _rgb_repr(rgb: bytes) -> str:
    return f"<{len(rgb)} bytes>"


@attrs.frozen
class Image:
    """An 8-bit RGB picture: rgb holds width x height pixels, row by row, 3 bytes each."""

    width: int
    height: int
    rgb: bytes = attrs.field(repr=_rgb_repr)

    def __attrs_post_init__(self) -> None:
        if self.width < 1 or self.height < 1 or len(self.rgb) != self.width * self.height * 3:
            raise ValueError(
                f"an image of {self.width}x{self.height} pixels needs "
                f"{self.width * self.height * 3} bytes of RGB, got {len(self.rgb)}"
            )


# --- PPM -------------------------------------------------------------------

# Netpbm's header: "P6", width, height and maxval, separated by white space and
# comments (from '#' to the end of the line), then exactly one white space
# character before the samples.
_SEP = rb"(?:[ \t\r\n\v\f]|#[^\r\n]*[\r\n])+"
_NUMBER = rb"([0-9]{1,9})"
_PPM_HEADER = re.compile(rb"P6" + (_SEP + _NUMBER) * 3 + rb"[ \t\r\n\v\f]")
# Far more than any header QEMU writes ("P6\n720 400\n255\n"), so that a stream
# of comments is not searched to its end.
_MAX_HEADER = 4096


def parse_ppm(data: bytes) -> Image:
    """The image in a binary PPM; BadScreendump, in one line, for anything else."""
    if not data.startswith(b"P6"):
        start = bytes(data[:8])
        raise BadScreendump(
            f"screendump: not a binary PPM (P6): it starts with {start!r}"
            if data
            else "screendump: no data (an empty file)"
        )
    m = _PPM_HEADER.match(data, 0, _MAX_HEADER)
    if m is None:
        raise BadScreendump(f"screendump: bad PPM header: {bytes(data[:40])!r}")
    width, height, maxval = (int(n) for n in m.groups())
    if width < 1 or height < 1:
        raise BadScreendump(f"screendump: the PPM is {width}x{height} pixels: no picture")
    if maxval != 255:
        raise BadScreendump(
            f"screendump: the PPM's maxval is {maxval}; only 255 (8-bit samples) is read"
        )
    need = width * height * 3
    have = len(data) - m.end()
    if have != need:
        what = "is cut short" if have < need else "has more after its pixels"
        raise BadScreendump(
            f"screendump: the PPM of {width}x{height} pixels {what}: "
            f"{need} bytes of pixels expected, {have} found"
        )
    return Image(width, height, bytes(data[m.end() :]))


# --- scaling ----------------------------------------------------------------


def scale(img: Image, width: int) -> Image:
    """img made width pixels wide, its aspect ratio kept (the height rounded, at least
    1), each pixel the average of the source pixels whose centres fall in its box, as
    Pillow's BOX filter does. No wider than img: img itself."""
    if width < 1:
        raise BadWidth(f"a screenshot cannot be {width} pixels wide; ask for 1 or more")
    if width >= img.width:
        return img
    # round(height * width / img.width), halves up, in integers.
    height = max(1, (2 * img.height * width + img.width) // (2 * img.width))
    rows = _average_rows(img.rgb, img.width * 3, _boxes(img.height, height))
    return Image(width, height, _average_columns(rows, img.width, height, _boxes(img.width, width)))


def _boxes(src: int, dst: int) -> list[tuple[int, int]]:
    """The dst runs of src pixels, (start, end) each, that become one pixel: pixel i
    belongs to box t when t*src/dst < i + 1/2 <= (t+1)*src/dst."""
    edges = [(2 * t * src - dst) // (2 * dst) + 1 for t in range(dst + 1)]
    return list(itertools.pairwise(edges))


class _Lanes:
    """Samples as the lanes of one big integer, for averaging n of them at a time.

    A lane is `size` bytes, little-endian: each sample goes into a lane's low
    byte, lanes add up without carrying into each other (sums stay below 256 x
    the largest n), and the average of n summed samples, rounded halves up, is
    `(sum + n//2) * m >> 8*low` with m = ceil(2**(8*low) / n): the top byte of
    each lane, read back with one slice. That is exact while 2**(8*low) >= 256 n**2
    (the error of m, below n, times a sum below 256 n stays under 2**(8*low)).
    """

    def __init__(self, count: int, largest_n: int) -> None:
        low = 1
        while 1 << (8 * low) < 256 * largest_n * largest_n:
            low += 1
        self.low = low
        self.size = low + 1
        self.count = count
        self._ones = int.from_bytes(b"\x01".ljust(self.size, b"\0") * count, "little")
        self._spread = bytearray(count * self.size)

    def spread(self, samples: bytes) -> int:
        """count samples, one a lane."""
        self._spread[:: self.size] = samples
        return int.from_bytes(self._spread, "little")

    def average(self, total: int, n: int) -> bytes:
        """The count lane averages of total, a sum of n spread rows of samples."""
        m = -(-(1 << (8 * self.low)) // n)
        product = (total + self._ones * (n // 2)) * m
        return product.to_bytes(self.count * self.size, "little")[self.low :: self.size]


def _average_rows(rgb: bytes, row_bytes: int, boxes: list[tuple[int, int]]) -> bytes:
    """Each box of rows made one row, their average."""
    lanes = _Lanes(row_bytes, max(b - a for a, b in boxes))
    out = []
    for a, b in boxes:
        total = sum(lanes.spread(rgb[r * row_bytes : (r + 1) * row_bytes]) for r in range(a, b))
        out.append(lanes.average(total, b - a))
    return b"".join(out)


def _average_columns(
    rgb: bytes, src_width: int, height: int, boxes: list[tuple[int, int]]
) -> bytes:
    """Each box of pixel columns made one column, their average."""
    row_bytes = src_width * 3
    dst_row_bytes = len(boxes) * 3
    lanes = _Lanes(height, max(b - a for a, b in boxes))
    out = bytearray(dst_row_bytes * height)
    for x, (a, b) in enumerate(boxes):
        for channel in range(3):
            # One channel of one column: every row_bytes-th byte.
            total = sum(lanes.spread(rgb[3 * c + channel :: row_bytes]) for c in range(a, b))
            out[3 * x + channel :: dst_row_bytes] = lanes.average(total, b - a)
    return bytes(out)


# --- PNG --------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def to_png(img: Image) -> bytes:
    """img as a PNG: 8-bit RGB, not interlaced, every row unfiltered (filter type 0)."""
    stride = img.width * 3
    raw = b"".join(b"\0" + img.rgb[i : i + stride] for i in range(0, len(img.rgb), stride))
    header = struct.pack(">IIBBBBB", img.width, img.height, 8, 2, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )
