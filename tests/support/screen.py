"""What a screenshot of the test guest shows."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def shows_banner(png: Path) -> bool:
    """The test guest's VGA banner: mostly VGA blue (0xAA, which QEMU's 6-bit palette
    gives as 0xA8), with white text on it."""
    with Image.open(png) as img:
        rgb = img.convert("RGB")
        colours = rgb.getcolors(1 << 20) or []
    blue = sum(n for n, c in colours if c[0] < 16 and c[1] < 16 and 0xA0 <= c[2] <= 0xAF)
    white = sum(n for n, c in colours if min(c) > 0xC0)
    return blue > 0.5 * rgb.width * rgb.height and white > 100
