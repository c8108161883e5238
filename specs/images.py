"""Pictures and files, framework-free: the one resampling routine, atomic writes, and PNG grids.

- `to_pixels` is the only way a picture becomes training pixels (PIL convert, then bilinear resize to S x S).
- `write_atomically` writes a temp file beside the target and renames it: readers never see half a file.
  `save_atomically` does the same for writers that insist on naming the file themselves (Keras's `save_weights`
  and `save` want a name ending in `.weights.h5` or `.keras`).
- `save_grid` tiles uint8 (N, H, W, C) images into one PNG, e.g. the sample grid written after every epoch.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image


def to_pixels(image: Image.Image, image_size: int, channels: int) -> np.ndarray:
    """Convert to 'L' (1 channel) or 'RGB' (3), then PIL's bilinear resize to S x S: uint8 (S, S, C)."""
    image = image.convert("L" if channels == 1 else "RGB").resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8).reshape(image_size, image_size, channels)


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
        if isinstance(error, OSError) and error.errno is not None and error.filename in (None, name):
            error.filename = str(path)  # name the target, not the temp file (os.replace's error names both)
        raise
    sync_folder(path.parent)


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


def save_grid(images_u8: np.ndarray, path: str | Path, rows: int | None = None) -> Path:
    """Write uint8 (N, H, W, C) images as one PNG grid, atomically; returns the path written."""
    canvas = grid(images_u8, rows)
    picture = Image.fromarray(canvas[..., 0] if canvas.shape[-1] == 1 else canvas)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    write_atomically(path, lambda handle: handle.write(buffer.getvalue()))
    return Path(path)
