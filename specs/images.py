"""Pictures and files, framework-free: the one decoding and resampling routine, atomic writes, and grids.

- `to_pixels` is the only way a picture becomes training pixels, in this order: turned upright by its EXIF
  orientation; 16-bit pixels scaled to 8 bits (x / 257, rounded; PIL's own conversion clips them to 255);
  palette, CMYK and other colour spaces converted to RGB; transparency composited on white or black (`alpha`,
  or refused); gray repeated to RGB, or colour turned gray (ITU-R 601-2 luma), as the model's channels ask;
  fitted to a square (`fit`: stretched, centre-cropped or padded with black); PIL's bilinear resize to S x S.
  What it changed on the way is counted in a `Conversions`, which the data set reports in one line.
- `write_atomically` writes a temp file beside the target and renames it: readers never see half a file.
  `save_atomically` does the same for writers that insist on naming the file themselves (Keras's `save_weights`
  and `save` want a name ending in `.weights.h5` or `.keras`).
- `save_grid` tiles uint8 (N, H, W, C) images into one picture, e.g. the sample grid written after every epoch,
  in the format its extension names (PNG, JPEG, WebP: `picture_format`).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, features

ALPHA = ("white", "black", "refuse")  # what transparent pixels become: composited on white or black, or refused
FITS = ("stretch", "crop", "pad")  # how a picture that is not square becomes S x S
FAR_FROM_SQUARE = 1.5  # a longer side above this many times the shorter one is reported with how it was fitted
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # PIL's modes of 16-bit gray (PNG opens as I;16 or I)
ORIENTATION = 0x0112  # the EXIF tag: 1 is upright, 2-8 a mirror and/or a turn
PICTURE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}  # what save_grid writes
PICTURE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}  # WebP lossless keeps every pixel
WITH_ALPHA = ("RGBA", "LA", "La", "RGBa", "PA")  # PIL's modes with an alpha channel
MODE_NAMES = {"P": "palette", "CMYK": "CMYK"}  # how the note names a converted mode (others by their PIL name)


class PictureError(ValueError):
    """A picture that `to_pixels` refuses (transparency with alpha="refuse", floating-point pixels)."""


@dataclass
class Conversions:
    """What `to_pixels` changed, counted over a data set: the one-line note its reader prints."""

    counts: Counter = field(default_factory=Counter)  # kind -> number of pictures
    widest: tuple[float, str] = (1.0, "")  # the largest aspect ratio seen, and the picture's name and size

    def add(self, kind: str) -> None:
        self.counts[kind] += 1

    def note(self, total: int, image_size: int, channels: int, alpha: str, fit: str) -> str:
        """One line, or "" when nothing was changed that a user would want to know."""
        counts, parts = self.counts, []
        if counts["exif"]:
            parts.append(f"{counts['exif']} turned upright as their EXIF orientation says")
        if counts["16-bit"]:
            parts.append(f"{counts['16-bit']} 16-bit scaled to 8 bits (x / 257, rounded)")
        modes = [f"{count} {MODE_NAMES.get(kind[5:], kind[5:])}" for kind, count in sorted(counts.items())
                 if kind.startswith("mode ")]
        if modes:
            parts.append(f"{', '.join(modes)} converted to RGB")
        if counts["alpha"]:
            parts.append(f"{counts['alpha']} with transparency composited on {alpha} (--alpha white, black or "
                         "refuse)")
        if counts["gray to rgb"]:
            parts.append(f"{counts['gray to rgb']} grayscale repeated to 3 channels for this RGB model "
                         "(--channels 1 trains on gray)")
        if counts["rgb to gray"]:
            parts.append(f"{counts['rgb to gray']} in colour turned gray (L = 0.299 R + 0.587 G + 0.114 B) for this "
                         "1-channel model (--channels 3 keeps the colour)")
        if counts["far from square"]:
            how = {"stretch": f"stretched to {image_size}x{image_size}",
                   "crop": "centre-cropped to a square", "pad": "padded with black to a square"}[fit]
            other_fits = " or ".join(f"--fit {name}" for name in FITS if name != fit)
            parts.append(f"{counts['far from square']} far from square (up to {self.widest[0]:.3g}:1, "
                         f"{self.widest[1]}) {how} ({other_fits} to change)")
        return f"{total} images: " + "; ".join(parts) if parts else ""


def to_pixels(image: Image.Image, image_size: int, channels: int, alpha: str = "white", fit: str = "stretch",
              conversions: Conversions | None = None, name: str = "") -> np.ndarray:
    """A picture as uint8 (S, S, C) training pixels (the steps of the module docstring); PictureError when refused.
    `conversions` counts what was changed; `name` names the picture there."""
    seen = conversions if conversions is not None else Conversions()
    image = upright(image, seen)
    image = eight_bit(image, seen)
    image = opaque(image, alpha, seen)
    image = with_channels(image, channels, seen)
    image = fitted(image, fit, seen, name)
    image = image.resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8).reshape(image_size, image_size, channels)


def upright(image: Image.Image, seen: Conversions) -> Image.Image:
    """Turned and mirrored as its EXIF orientation says (what a phone photo's viewer shows)."""
    try:
        orientation = image.getexif().get(ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):  # a damaged EXIF block: the pixels as stored
        return image
    if orientation not in range(2, 9):
        return image
    seen.add("exif")
    return ImageOps.exif_transpose(image)


def eight_bit(image: Image.Image, seen: Conversions) -> Image.Image:
    """16-bit gray scaled to 8 bits as round(x / 257), so 65535 is 255; floating-point pixels are refused."""
    if image.mode == "F":
        raise PictureError("floating-point pixels (PIL mode F): save it with 8 or 16 bits per channel")
    if image.mode not in SIXTEEN_BIT:
        return image
    pixels = np.asarray(image).astype(np.int64)
    if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
        raise PictureError(f"32-bit pixels from {pixels.min()} to {pixels.max()}: save it with 8 or 16 bits")
    seen.add("16-bit")
    return Image.fromarray(((2 * pixels + 257) // 514).astype(np.uint8), "L")  # round half up of x / 257


def opaque(image: Image.Image, alpha: str, seen: Conversions) -> Image.Image:
    """'L' or 'RGB': palette and colour spaces converted, transparent pixels composited on `alpha`'s colour."""
    has_alpha = image.mode in WITH_ALPHA or "transparency" in image.info  # a channel, or a colour key
    if image.mode in ("L", "RGB") and not has_alpha:
        return image
    if image.mode == "1":
        return image.convert("L")
    if image.mode not in ("L", "RGB", *WITH_ALPHA) or image.mode == "PA":
        seen.add(f"mode {image.mode.removesuffix('A')}")  # palette, CMYK, YCbCr, LAB, HSV, ...
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    if rgba.getextrema()[3][0] == 255:  # an alpha channel that is opaque everywhere: nothing to composite
        return rgba.convert("RGB")
    if alpha == "refuse":
        raise PictureError("it has transparent pixels; choose what they become with --alpha white or --alpha black")
    seen.add("alpha")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255) if alpha == "white" else (0, 0, 0, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def with_channels(image: Image.Image, channels: int, seen: Conversions) -> Image.Image:
    """'L' for 1 channel, 'RGB' for 3; counts gray repeated to RGB and colour lost to gray."""
    if channels == 3 and image.mode == "L":
        seen.add("gray to rgb")
        return image.convert("RGB")
    if channels == 1 and image.mode == "RGB":
        red, green, blue = image.split()
        if red.tobytes() != green.tobytes() or red.tobytes() != blue.tobytes():
            seen.add("rgb to gray")
        return image.convert("L")
    return image


def fitted(image: Image.Image, fit: str, seen: Conversions, name: str) -> Image.Image:
    """Square: unchanged for "stretch" (the resize stretches it), the centre square for "crop", black bars for
    "pad"; a picture far from square is counted, the widest remembered."""
    width, height = image.size
    aspect = max(width, height) / max(min(width, height), 1)
    if aspect > FAR_FROM_SQUARE:
        seen.add("far from square")
        if aspect > seen.widest[0]:
            seen.widest = (aspect, f"{name} {width}x{height}".strip())
    if fit == "stretch" or width == height:
        return image
    side = min(width, height) if fit == "crop" else max(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    if fit == "crop":
        return image.crop((left, top, left + side, top + side))
    square = Image.new(image.mode, (side, side), 0)
    square.paste(image, (-left, -top))
    return square


TEMP_SUFFIX = ".tmp"  # write_atomically's temp files are `.<target name>.<random>.tmp`, beside the target


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call write(handle) on a temp file in the target's folder, then os.replace it onto the target.

    On any error (or Ctrl-C) the temp file is removed and an existing target is left untouched; an OSError with
    an errno names the target (error.filename), not the temp file. A process killed
    mid-write (SIGKILL, power loss) leaves the target whole, old or new, and at most a stale temp file
    `.<name>.<random>.tmp` (TEMP_SUFFIX) beside it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."  # hidden, and named after its target
    name = None
    try:
        with tempfile.NamedTemporaryFile(prefix=prefix, suffix=TEMP_SUFFIX, dir=path.parent, delete=False) as handle:
            name = handle.name
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(name, 0o666 & ~current_umask())  # temp files are 0600; give the usual permissions
        os.replace(name, path)
    except BaseException as error:
        if name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
        if isinstance(error, OSError) and error.errno is not None and names_temp(error, prefix, name):
            error.filename, error.filename2 = str(path), None  # the target, not the temp file (or os.replace's two)
        raise
    sync_folder(path.parent)


def names_temp(error: OSError, prefix: str, name: str | None) -> bool:
    """Whether an error names no file or a temp file of ours (whose creation may fail before its name is known)."""
    filename = error.filename if isinstance(error.filename, str) else None
    return filename is None or filename == name or (Path(filename).name.startswith(prefix) and
                                                    filename.endswith(TEMP_SUFFIX))


def save_atomically(path: str | Path, save: Callable[[Path], object]) -> None:
    """Call save(file) on a file of the target's name in a temp folder beside the target, `.<name>.<random>.tmp/`,
    then os.replace the file onto the target; the folder is removed. The guarantees of write_atomically: on any
    error the target is untouched and the error names it; a killed process leaves at most the temp folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = None
    try:
        folder = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        written = Path(folder) / path.name
        save(written)
        descriptor = os.open(written, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.chmod(written, 0o666 & ~current_umask())
        os.replace(written, path)
    except BaseException as error:
        if isinstance(error, OSError) and error.errno is not None:
            error.filename = str(path)  # name the target, not the file in the temp folder
        raise
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename in it survives a power loss (where the platform allows it)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def grid(images_u8: np.ndarray, rows: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile uint8 (N, H, W, C) into one uint8 (rows*(H+p)+p, columns*(W+p)+p, C) picture, black between tiles.

    Row-major: image i sits in row i // columns. rows=None gives a near-square grid.
    """
    if images_u8.dtype != np.uint8 or images_u8.ndim != 4 or images_u8.shape[-1] not in (1, 3):
        raise ValueError(f"expected uint8 (N, H, W, 1 or 3) images, got {images_u8.dtype} {images_u8.shape}")
    count, height, width, channels = images_u8.shape
    columns = math.ceil(count / rows) if rows else math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    canvas_shape = (rows * (height + padding) + padding, columns * (width + padding) + padding, channels)
    canvas = np.zeros(canvas_shape, dtype=np.uint8)
    for index, image in enumerate(images_u8):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        canvas[top : top + height, left : left + width] = image
    return canvas


def picture_format(path: str | Path) -> str | None:
    """PIL's name of the format a path's extension names (PNG, JPEG, WEBP), or None: unknown, or WebP where this
    Pillow was built without it."""
    format = PICTURE_FORMATS.get(Path(path).suffix.lower())
    return None if format == "WEBP" and not features.check("webp") else format


def save_grid(images_u8: np.ndarray, path: str | Path, rows: int | None = None) -> Path:
    """Write uint8 (N, H, W, C) images as one grid, atomically, in the format of the path's extension (PNG, JPEG
    at quality 95, lossless WebP); returns the path written. ValueError for an extension of no known format."""
    format = picture_format(path)
    if format is None:
        raise ValueError(f"{path}: no picture format is known for {Path(path).suffix!r} ({', '.join(PICTURE_FORMATS)})")
    canvas = grid(images_u8, rows)
    picture = Image.fromarray(canvas[..., 0] if canvas.shape[-1] == 1 else canvas)
    buffer = io.BytesIO()
    picture.save(buffer, format=format, **PICTURE_OPTIONS.get(format, {}))
    write_atomically(path, lambda handle: handle.write(buffer.getvalue()))
    return Path(path)
