"""Drawing for the synthetic data generator: object alpha patches and photo backgrounds.

Shapes are drawn at 4x on a square canvas and box-filtered down, so their
edges are anti-aliased; glyphs are Pillow's default font (the FreeType
Aileron face when Pillow has FreeType, else its bitmap font, scaled).

Backgrounds are photographs bundled inside the installed scikit-image
wheel (``skimage/data/*.png|jpg``). They are read straight from the
package directory, so nothing is ever downloaded and skimage itself is not
imported.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from components.core.images import decode_rgb

__all__ = [
    "BACKGROUND_FILES",
    "CLASS_COLOURS",
    "GLYPHS",
    "SHAPES",
    "available_backgrounds",
    "background_crop",
    "is_known_class",
    "load_background",
    "render_object",
    "shrink_to_fit",
]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross", "diamond", "hexagon", "crescent")
"""Geometric shape classes."""

GLYPHS: tuple[str, ...] = tuple(f"letter_{c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ") + tuple(f"digit_{d}" for d in "0123456789")
"""Glyph classes: ``letter_A`` .. ``letter_Z`` and ``digit_0`` .. ``digit_9``."""

BACKGROUND_FILES: dict[str, str] = {
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "rocket": "rocket.jpg",
    "camera": "camera.png",
    "coins": "coins.png",
    "moon": "moon.png",
    "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "brick": "brick.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "clock": "clock_motion.png",
}
"""Background name -> file in ``skimage/data``: photographs only (no text, logos or charts,
which would put unlabelled letters or shapes behind the objects)."""

CLASS_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 40, 40),  # red
    (40, 90, 235),  # blue
    (40, 190, 60),  # green
    (250, 215, 30),  # yellow
    (205, 50, 205),  # magenta
    (30, 205, 215),  # cyan
    (250, 130, 20),  # orange
    (125, 60, 205),  # purple
    (245, 245, 245),  # white
    (140, 85, 40),  # brown
)
"""Base colour of the i-th configured class (cycled), jittered per object."""

_SUPERSAMPLE = 4
_MAX_BACKGROUND_SIDE = 640


def is_known_class(name: str) -> bool:
    """Whether the generator can draw a class.

    Args:
        name: a class name.

    Returns:
        True for a name in :data:`SHAPES` or :data:`GLYPHS`.
    """
    return name in SHAPES or name in GLYPHS


def _skimage_data_dir() -> Path | None:
    # find_spec on a top-level package locates it without importing it.
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def available_backgrounds() -> list[str]:
    """Names of the background photographs present in the installed scikit-image.

    Returns:
        Names (keys of :data:`BACKGROUND_FILES`) whose file ships in the wheel, in table order.
    """
    d = _skimage_data_dir()
    if d is None:
        return []
    return [name for name, f in BACKGROUND_FILES.items() if (d / f).is_file()]


@functools.lru_cache(maxsize=len(BACKGROUND_FILES))
def load_background(name: str) -> Image.Image:
    """Decodes one bundled photograph as RGB, its longer side at most 640 pixels.

    Args:
        name: a key of :data:`BACKGROUND_FILES`.

    Returns:
        The RGB image (cached; do not modify it).

    Raises:
        FileNotFoundError: the file does not ship with the installed scikit-image.
    """
    d = _skimage_data_dir()
    path = d / BACKGROUND_FILES[name] if d is not None else Path(BACKGROUND_FILES[name])
    if not path.is_file():
        raise FileNotFoundError(f"background {name!r}: {path} is not in the installed scikit-image")
    im = Image.fromarray(decode_rgb(path))
    scale = _MAX_BACKGROUND_SIDE / max(im.size)
    if scale < 1:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BOX)
    return im


def background_crop(name: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of a bundled photograph, rescaled to ``width x height`` and maybe mirrored.

    Args:
        name: a key of :data:`BACKGROUND_FILES`.
        width: output width in pixels.
        height: output height in pixels.
        rng: the random source.

    Returns:
        ``HxWx3`` float32 pixels in 0..255.
    """
    src = load_background(name)
    aspect = width / height
    full_w = min(src.width, src.height * aspect)
    scale = float(rng.uniform(0.35, 1.0))
    cw = max(1.0, full_w * scale)
    ch = max(1.0, cw / aspect)
    x0 = float(rng.uniform(0.0, src.width - cw))
    y0 = float(rng.uniform(0.0, src.height - ch))
    crop = src.resize((width, height), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(crop, dtype=np.float32)


def _polygon(n: int, radius: float, centre: tuple[float, float], start: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [
        (centre[0] + radius * math.cos(start + 2 * math.pi * k / n), centre[1] + radius * math.sin(start + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _draw_shape(draw: ImageDraw.ImageDraw, name: str, s: float) -> None:
    """Draws a shape filling an ``s x s`` canvas (value 255 on 0)."""
    m = s * 0.02
    c = (s / 2, s / 2)
    r = s / 2 - m
    if name == "circle":
        draw.ellipse([m, m, s - m, s - m], fill=255)
    elif name == "square":
        draw.rectangle([m, m, s - m, s - m], fill=255)
    elif name == "triangle":
        h = (s - 2 * m) * math.sqrt(3) / 2
        top = (s - h) / 2
        draw.polygon([(s / 2, top), (s - m, top + h), (m, top + h)], fill=255)
    elif name == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.42
            a = -math.pi / 2 + math.pi * k / 5
            pts.append((c[0] + rad * math.cos(a), c[1] + 0.05 * s + rad * math.sin(a)))
        draw.polygon(pts, fill=255)
    elif name == "ring":
        draw.ellipse([m, m, s - m, s - m], fill=255)
        inner = r * 0.55
        draw.ellipse([c[0] - inner, c[1] - inner, c[0] + inner, c[1] + inner], fill=0)
    elif name == "cross":
        arm = (s - 2 * m) / 3
        draw.rectangle([m + arm, m, m + 2 * arm, s - m], fill=255)
        draw.rectangle([m, m + arm, s - m, m + 2 * arm], fill=255)
    elif name == "diamond":
        half_w = r * 0.62
        draw.polygon([(c[0], m), (c[0] + half_w, c[1]), (c[0], s - m), (c[0] - half_w, c[1])], fill=255)
    elif name == "hexagon":
        draw.polygon(_polygon(6, r, c, start=0.0), fill=255)
    elif name == "crescent":
        draw.ellipse([m, m, s - m, s - m], fill=255)
        off = r * 0.55
        draw.ellipse([m + off, m - off * 0.2, s - m + off, s - m - off * 0.2], fill=0)
    else:
        raise ValueError(f"unknown shape {name!r}")


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError, TypeError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _glyph(char: str, s: int) -> Image.Image:
    """A glyph scaled to fit an ``s x s`` alpha canvas, centred."""
    big = s * _SUPERSAMPLE
    font = _font(big)
    stroke = max(1, big // 18)  # Aileron Regular is thin: thicken the strokes
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), char, font=font, stroke_width=stroke)
    canvas = Image.new("L", (int(x1 - x0) + 2, int(y1 - y0) + 2), 0)
    ImageDraw.Draw(canvas).text((1 - x0, 1 - y0), char, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    box = canvas.getbbox()
    if box is not None:
        canvas = canvas.crop(box)
    fit = 0.96 * s / max(canvas.size)
    tw, th = max(1, round(canvas.width * fit)), max(1, round(canvas.height * fit))
    # A bitmap font is tiny: scale up with nearest first so the box filter below keeps it crisp.
    small = canvas.resize((tw, th), Image.Resampling.BOX if fit < 1 else Image.Resampling.NEAREST)
    out = Image.new("L", (s, s), 0)
    out.paste(small, ((s - tw) // 2, (s - th) // 2))
    return out


def render_object(name: str, size: int, angle: float) -> np.ndarray:
    """The alpha patch of one object: drawn, anti-aliased, rotated and cropped tight.

    Args:
        name: a class in :data:`SHAPES` or :data:`GLYPHS`.
        size: side in pixels of the square the object is drawn in before rotation.
        angle: rotation in degrees, counter-clockwise.

    Returns:
        ``hxw`` uint8 alpha (255 inside), cropped to its non-zero pixels.
    """
    size = max(4, int(size))
    if name in GLYPHS:
        patch = _glyph(name.split("_", 1)[1], size)
    else:
        big = Image.new("L", (size * _SUPERSAMPLE, size * _SUPERSAMPLE), 0)
        _draw_shape(ImageDraw.Draw(big), name, float(size * _SUPERSAMPLE))
        patch = big.resize((size, size), Image.Resampling.BOX)
    if angle:
        patch = patch.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=0)
    box = patch.getbbox()
    if box is not None:
        patch = patch.crop(box)
    return np.asarray(patch, dtype=np.uint8)


def shrink_to_fit(alpha: np.ndarray, width: int, height: int) -> np.ndarray:
    """Downscales an alpha patch, keeping its aspect, so it fits in ``width x height``.

    Args:
        alpha: the patch.
        width: largest width.
        height: largest height.

    Returns:
        The patch, unchanged when it already fits.
    """
    h, w = alpha.shape
    if w <= width and h <= height:
        return alpha
    f = min(width / w, height / h)
    im = Image.fromarray(alpha).resize((max(1, int(w * f)), max(1, int(h * f))), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.uint8)
