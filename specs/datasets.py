"""Data sets: every source read once into one uint8 cache, and the seeded order of its batches.

- One format for every source: images uint8 (N, H, W, C) and labels int64 (N,), held in a `Cached`.
- One decoding and resampling routine (`specs.images.to_pixels`) makes every picture S x S, once: EXIF
  orientation, 16-bit, palette, CMYK and transparency handled (`alpha`), fitted to a square (`fit`); what it
  changed is reported in one line per data set (`Cached.note`), and how the labels were derived in `labels_from`.
- Sources: digits (scikit-learn's 1,797 8x8 digits, offline), folder (any tree of images), celeba (labels
  joined by image_id), mnist and fashion_mnist (IDX files, downloaded only on request), fake (for dry runs).
- The cache is one .npz per source, size, channels (and attribute, alpha, fit) and sha256 fingerprint of the raw
  files (every file's relative path, size and mtime), written atomically: a changed source gets a new cache, an
  interrupted build leaves nothing behind.
- `Cached.identity`: the image count and a sha256 of the pixels and labels, per class: what a checkpoint remembers
  of its data, so that a resume on changed data is refused with what changed.
- Batch order is `default_rng([seed, epoch]).permutation(N)` cut into full batches: same seed, same batches.
- Scaling to [-1, 1] is `(x - 127.5) / 127.5` in float32: the same two IEEE operations in numpy, torch and TF.
- A user mistake raises `DataError` with a message that says what to do; CLIs print it and exit with status 2.
"""

from __future__ import annotations

import csv
import errno
import gzip
import hashlib
import http.client
import json
import logging
import os
import struct
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import PIL
from PIL import Image
from tqdm import tqdm

from specs.images import ALPHA, FITS, Conversions, PictureError, to_pixels, write_atomically

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
LEGO_URL = "https://www.kaggle.com/datasets/joosthazelzet/lego-brick-images"
CELEBA_URL = "https://www.kaggle.com/datasets/jessicali9530/celeba-dataset"
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")  # the training split: 60,000 examples
IDX_MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion_mnist": (
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
}
IDX_MD5 = {  # md5 of the .gz files, as published by torchvision
    "mnist": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432"),
    "fashion_mnist": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe"),
}
IDX_CLASS_NAMES = {
    "mnist": tuple("0123456789"),
    "fashion_mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
        "Ankle boot",
    ),
}
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CACHE_FORMAT = 2  # bump when the cache layout or the reading of a source changes
PROGRESS_FROM = 1000  # show a progress bar when building a cache of more images than this (not with --quiet)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # the errors that freeing space cures
log = logging.getLogger(__name__)


class DataError(Exception):
    """A mistake in the user's data or options; the message says what to do (CLIs print it and exit 2)."""


@dataclass(frozen=True, eq=False)
class Cached:
    """A whole data set in memory, exactly as both backends read it."""

    images: np.ndarray  # uint8 (N, H, W, C), pixels 0..255
    labels: np.ndarray  # int64 (N,), class index 0..num_classes-1
    num_classes: int  # number of classes (1 for a folder without class subfolders)
    class_names: tuple[str, ...]  # name of each class, indexed by label
    labels_from: str = ""  # how the labels were derived, e.g. "the names of the top-level folders"
    note: str = ""  # what decoding changed (specs.images.Conversions.note), "" when nothing worth a word
    identity: dict | None = None  # image count and digests of pixels and labels (data_identity); computed if None

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, H, W, C): {self.images.dtype} {self.images.shape}")
        if self.labels.dtype != np.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"labels must be int64 (N,): {self.labels.dtype} {self.labels.shape}")
        if self.num_classes != len(self.class_names):
            raise ValueError(f"{self.num_classes} classes but {len(self.class_names)} class names")
        if self.identity is None:
            object.__setattr__(self, "identity", data_identity(self.images, self.labels, self.class_names))

    def class_counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=self.num_classes).tolist()


def data_identity(images: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]) -> dict:
    """{"images": N, "digest": sha256 of it all, "classes": {name: [count, sha256 of its images in order]}}:
    what a checkpoint remembers of its data (digests cut to 16 hex digits)."""
    hashers = [hashlib.sha256() for _ in class_names]
    for image, label in zip(images, labels):
        hashers[label].update(np.ascontiguousarray(image).data)
    counts = np.bincount(labels, minlength=len(class_names)).tolist()
    classes = {name: [count, hasher.hexdigest()[:16]] for name, count, hasher in zip(class_names, counts, hashers)}
    digest = hashlib.sha256(json.dumps([list(images.shape[1:]), classes]).encode())
    digest.update(np.ascontiguousarray(labels).data)  # the order of the classes among the images
    return {"images": int(len(images)), "digest": digest.hexdigest()[:16], "classes": classes}


@dataclass(frozen=True)
class DatasetSpec:
    """Which data, at what size, in which order: everything that decides the pixels and the batches."""

    name: str  # registry key: digits, folder, celeba, mnist, fashion_mnist, fake
    path: str | None = None  # root of the raw data (digits, fake: unused; mnist: default <cache>/raw/mnist)
    image_size: int = 32  # side S of the square images after resizing
    channels: int = 1  # 1: grayscale ('L'), 3: colour ('RGB')
    attribute: str = "Blond_Hair"  # celeba only: the binary attribute used as label
    seed: int = 0  # seeds the batch order (and the fake images)
    cache_dir: str | None = None  # where caches live (None: $GAN_PARITY_CACHE, else the user cache folder)
    download: bool = False  # mnist / fashion_mnist only: fetch the IDX files when they are missing
    fake_size: int = 256  # fake only: number of random examples
    alpha: str = "white"  # transparent pixels composited on "white" or "black", or "refuse"d (specs/images.py)
    fit: str = "stretch"  # pictures that are not square: "stretch", "crop" (the centre square) or "pad" (black)

    def __post_init__(self) -> None:
        if self.name not in DATASETS:
            raise DataError(f"unknown data set {self.name!r}; known data sets: {', '.join(DATASETS)}")
        if self.channels not in (1, 3):
            raise DataError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if self.image_size < 1 or self.fake_size < 1 or self.seed < 0:
            raise DataError("image size and fake size must be positive and the seed must not be negative")
        if self.alpha not in ALPHA or self.fit not in FITS:
            raise DataError(f"alpha must be one of {', '.join(ALPHA)} and fit one of {', '.join(FITS)}, "
                            f"got {self.alpha!r} and {self.fit!r}")

    def load(self) -> Cached:
        """The data set as uint8 arrays: from its cache, or read from the raw data once and then cached."""
        source = DATASETS[self.name]
        raw = source.locate(self)
        if not source.cached:
            return source.read(self, raw)
        cache_file = self.cache_root() / f"{self.cache_key()}-{fingerprint(raw)[:16]}.npz"
        cached = read_cache(cache_file)
        if cached is None:
            cached = source.read(self, raw)
            try:
                write_atomically(cache_file, lambda handle: write_cache(handle, cached))
            except OSError as error:
                raise cache_error(cache_file, error) from None
        return cached

    def describe(self, data: Cached) -> str:
        """One line: where the data came from, how many images, the classes (names and counts) and how the
        labels were derived, e.g. `folder /data/bricks: 40 images, 2 classes from the names of the top-level
        folders: brick 16, plate 24`."""
        where = f" {Path(self.path).expanduser().resolve()}" if self.path and self.name in ("folder", "celeba") else ""
        counts = [f"{name} {count}" for name, count in zip(data.class_names, data.class_counts())]
        shown = ", ".join(counts[:CLASSES_SHOWN]) + (f", ... ({len(counts) - CLASSES_SHOWN} more)"
                                                      if len(counts) > CLASSES_SHOWN else "")
        classes = f"{data.num_classes} class{'es' * (data.num_classes != 1)}"
        return f"{self.name}{where}: {len(data.labels)} images, {classes} from {data.labels_from}: {shown}"

    def cache_root(self) -> Path:
        """cache_dir, else $GAN_PARITY_CACHE, else $XDG_CACHE_HOME/gan-parity (~/.cache/gan-parity)."""
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        if os.environ.get("GAN_PARITY_CACHE"):
            return Path(os.environ["GAN_PARITY_CACHE"]).expanduser()
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gan-parity"

    def cache_key(self) -> str:
        """The readable part of the cache file name: what decides the pixels besides the raw files."""
        attribute = f"-{self.attribute}" if self.name == "celeba" else ""
        choices = "".join(f"-{value}" for value, default in ((self.alpha, "white"), (self.fit, "stretch"))
                          if value != default)
        return f"{self.name}-{self.image_size}px-{self.channels}ch{attribute}{choices}"

    def batch_order(self, epoch: int, num_examples: int, batch_size: int) -> np.ndarray:
        """Example indices of each batch of one epoch, int64 (num_batches, batch_size), for both backends.

        Full batches only: the last num_examples % batch_size examples of this epoch's permutation are dropped
        (a different few each epoch), so every batch has the one static shape both backends compile for.
        """
        if batch_size < 1:
            raise DataError(f"batch size must be positive, got {batch_size}")
        if num_examples < batch_size:
            message = f"data set has {num_examples} examples, fewer than one batch of {batch_size}"
            raise DataError(f"{message}; lower --batch-size")
        order = np.random.default_rng([self.seed, epoch]).permutation(num_examples).astype(np.int64)
        num_batches = num_examples // batch_size
        return order[: num_batches * batch_size].reshape(num_batches, batch_size)


CLASSES_SHOWN = 12  # classes named in the line a run prints about its data; the rest are counted


def cache_error(cache_file: Path, error: OSError) -> DataError:
    """The message for a cache that cannot be written: free space for a full disk, another folder otherwise."""
    where = "choose another --cache-dir (or $GAN_PARITY_CACHE)"
    advice = f"free some space, or {where}" if error.errno in NO_SPACE else f"make it writable, or {where}"
    return DataError(f"cannot write the cache {cache_file}: {error.strerror or error}; {advice}")


def get_spec(name: str, **fields: object) -> DatasetSpec:
    """The spec of a registered data set; DataError listing the known names for an unknown one."""
    return DatasetSpec(name=name, **fields)  # type: ignore[arg-type]


# ------------------------------------------------------------ Scaling between stored bytes and network inputs


def to_unit(u8: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 -1..1 as (x - 127.5) / 127.5; torch_impl and keras_impl give the same bits."""
    return (u8.astype(np.float32) - np.float32(127.5)) / np.float32(127.5)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float -1..1 -> uint8, rounded and clipped (NaN: mid-grey): the inverse of `to_unit`, for grids."""
    unit = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(np.rint(unit * 127.5 + 127.5), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- Pictures through the one resampling routine


def read_image_file(path: Path, spec: DatasetSpec, conversions: Conversions | None = None) -> np.ndarray:
    """One image file through `to_pixels`; DataError naming the file when it cannot be decoded or is refused."""
    try:
        with Image.open(path) as image:
            return to_pixels(image, spec.image_size, spec.channels, spec.alpha, spec.fit, conversions, path.name)
    except PictureError as error:
        raise DataError(f"image {path}: {error}") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError) as error:
        raise DataError(f"cannot read image {path}: {error}; remove or replace that file") from None


def resize_all(items: list, to_image: Callable[[object], np.ndarray], spec: DatasetSpec) -> np.ndarray:
    """Apply `to_image` to every item into one preallocated uint8 (N, S, S, C) array, with a progress bar (not
    when the command line is --quiet)."""
    shape = (len(items), spec.image_size, spec.image_size, spec.channels)
    try:
        images = np.empty(shape, dtype=np.uint8)
    except (MemoryError, ValueError):
        raise DataError(f"{len(items)} images of {spec.image_size}x{spec.image_size}x{spec.channels} need "
                        f"{np.prod(shape, dtype=np.float64) / 1e9:.3g} GB of memory, more than there is; "
                        "lower --image-size") from None
    quiet = len(items) <= PROGRESS_FROM or not log.isEnabledFor(logging.INFO)
    progress = tqdm(items, desc=f"caching {spec.name}", unit="img", disable=quiet)
    for index, item in enumerate(progress):
        images[index] = to_image(item)
    return images


def read_image_files(files: tuple[Path, ...], spec: DatasetSpec, conversions: Conversions | None = None
                     ) -> np.ndarray:
    return resize_all(list(files), lambda file: read_image_file(file, spec, conversions), spec)


def resize_arrays(pixels: np.ndarray, spec: DatasetSpec, conversions: Conversions | None = None) -> np.ndarray:
    """Grayscale uint8 (N, h, w) in memory through the same `to_pixels` as the image files."""
    size, channels = spec.image_size, spec.channels
    return resize_all(list(pixels), lambda one: to_pixels(Image.fromarray(one), size, channels,
                                                          spec.alpha, spec.fit, conversions), spec)


def noted(spec: DatasetSpec, conversions: Conversions, total: int) -> str:
    return conversions.note(total, spec.image_size, spec.channels, spec.alpha, spec.fit)


# ----------------------------------------------- Sources: locate the raw data (DataError if missing), read it


@dataclass(frozen=True)
class RawData:
    """Where a source's raw data lies: what the cache fingerprint is computed from."""

    root: Path | None  # resolved folder of the raw data (None: shipped inside a package)
    files: tuple[Path, ...]  # every raw file that is read, in reading order
    version: str = ""  # version of what ships the data (digits: scikit-learn)


@dataclass(frozen=True)
class Source:
    """How one kind of raw data is found and read."""

    locate: Callable[[DatasetSpec], RawData]  # find the raw data; DataError saying what is missing
    read: Callable[[DatasetSpec, RawData], Cached]  # raw data -> uint8 images at the spec's size and channels
    cached: bool = True  # False: cheaper to make than to cache (fake)


def require_folder(spec: DatasetSpec, expected: str, where: str) -> Path:
    """The spec's path, resolved; DataError saying what was expected there and where to get it."""
    if spec.path is None:
        raise DataError(f"data set {spec.name!r} needs a path (--data-dir) to {expected}; {where}")
    root = Path(spec.path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; data set {spec.name!r} expects {expected} there; {where}")
    return root.resolve()


def locate_digits(spec: DatasetSpec) -> RawData:
    import sklearn

    return RawData(None, (), f"scikit-learn {sklearn.__version__}")


def read_digits(spec: DatasetSpec, raw: RawData) -> Cached:
    """scikit-learn's 8x8 digits (values 0..16) -> uint8 as round(x * 255 / 16), then the common resize."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * 255 / 16).astype(np.uint8)
    conversions = Conversions()
    images = resize_arrays(pixels, spec, conversions)
    return Cached(images, digits.target.astype(np.int64), 10, IDX_CLASS_NAMES["mnist"],
                  "scikit-learn's digit labels", noted(spec, conversions, len(images)))


def is_image_file(path: Path, root: Path) -> bool:
    hidden = any(part.startswith(".") for part in path.relative_to(root).parts)  # e.g. macOS ._ files
    return path.suffix.lower() in IMAGE_SUFFIXES and not hidden and path.is_file()


def locate_folder(spec: DatasetSpec) -> RawData:
    """Every image under the path, recursively, sorted by relative path."""
    expected = f"a folder of images ({' '.join(IMAGE_SUFFIXES)}), flat or in one subfolder per class"
    root = require_folder(spec, expected, f"for example the LEGO bricks: {LEGO_URL} (its dataset/ folder)")
    files = sorted((path for path in root.rglob("*") if is_image_file(path, root)),
                   key=lambda path: path.relative_to(root).as_posix())
    if not files:
        raise DataError(f"no images found under {root}; expected {expected}")
    return RawData(root, tuple(files))


def read_folder(spec: DatasetSpec, raw: RawData) -> Cached:
    """Label = index of the top-level subfolder (sorted), or 0 for all when the images lie flat."""
    assert raw.root is not None
    parts = [file.relative_to(raw.root).parts for file in raw.files]
    if all(len(part) == 1 for part in parts):
        class_names: tuple[str, ...] = (raw.root.name,)
        labels = np.zeros(len(parts), dtype=np.int64)
        labels_from = "the folder's name (the images lie in it directly, without class subfolders)"
    elif all(len(part) > 1 for part in parts):
        class_names = tuple(sorted({part[0] for part in parts}))
        labels = np.array([class_names.index(part[0]) for part in parts], dtype=np.int64)
        labels_from = "the names of the top-level folders"
        if any(len(part) > 2 for part in parts):
            labels_from += " (nested folders: each image belongs to the top-level folder it lies under)"
    else:
        raise DataError(f"{raw.root} holds images both directly and in subfolders; put all of them in one "
                        "subfolder per class, or point the path at a folder of images only")
    conversions = Conversions()
    images = read_image_files(raw.files, spec, conversions)
    return Cached(images, labels, len(class_names), class_names, labels_from, noted(spec, conversions, len(images)))


def locate_celeba(spec: DatasetSpec) -> RawData:
    """img_align_celeba/*.jpg (or Kaggle's img_align_celeba/img_align_celeba/) and list_attr_celeba.csv."""
    expected = "img_align_celeba/ (the .jpg faces) and list_attr_celeba.csv"
    root = require_folder(spec, expected, f"get CelebA from {CELEBA_URL}")
    images = root / "img_align_celeba"
    if (images / "img_align_celeba").is_dir():
        images = images / "img_align_celeba"
    attributes = [root / f"list_attr_celeba.{suffix}" for suffix in ("csv", "txt")]
    attributes = [file for file in attributes if file.is_file()]
    files = sorted(file for file in images.glob("*") if file.suffix.lower() == ".jpg")
    if not files or not attributes:
        raise DataError(f"{root} does not hold {expected}; get CelebA from {CELEBA_URL}")
    return RawData(root, (attributes[0], *files))


def read_celeba_attribute(file: Path, attribute: str) -> dict[str, int]:
    """image_id -> 0/1 (attribute -1/1) from the CSV, or from the original whitespace-separated .txt."""
    with open(file, newline="") as handle:
        if file.suffix == ".csv":
            rows = csv.reader(handle)
            header = next(rows, [])
        else:  # first line: the number of images; second: the 40 attribute names
            next(handle, "")
            header = ["image_id", *next(handle, "").split()]
            rows = (line.split() for line in handle)
        if attribute not in header[1:]:
            available = ", ".join(header[1:])
            raise DataError(f"attribute {attribute!r} is not a column of {file}; available: {available}")
        column = header.index(attribute)
        values = {"-1": 0, "0": 0, "1": 1}
        labels = {}
        for line, row in enumerate(rows, start=2 if file.suffix == ".csv" else 3):
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{file}, line {line}: {len(row)} columns where the header has {len(header)} "
                                f"(row {short_row(row)}); repair or remove that row")
            if row[column].strip() not in values:
                raise DataError(f"{file}: {attribute} of {row[0]} is {row[column]!r}, expected -1 or 1")
            labels[row[0].strip()] = values[row[column].strip()]
    return labels


def short_row(row: list[str], limit: int = 60) -> str:
    text = " ".join(row)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def read_celeba(spec: DatasetSpec, raw: RawData) -> Cached:
    """Labels are joined by image_id, never by listing order; every image needs a row."""
    attribute_file, images = raw.files[0], raw.files[1:]
    labels_by_id = read_celeba_attribute(attribute_file, spec.attribute)
    for image in images:
        if image.name not in labels_by_id:
            raise DataError(f"image {image} has no row in {attribute_file}; remove it or add its attributes")
    labels = np.array([labels_by_id[image.name] for image in images], dtype=np.int64)
    class_names = (f"not {spec.attribute}", spec.attribute)
    conversions = Conversions()
    pixels = read_image_files(images, spec, conversions)
    labels_from = f"the {spec.attribute} column of {attribute_file.name}, joined by image_id"
    return Cached(pixels, labels, 2, class_names, labels_from, noted(spec, conversions, len(pixels)))


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (plain or .gz): magic 0 0 <type> <ndim>, ndim big-endian uint32 sizes, big-endian data."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as handle:
            content = handle.read()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read IDX file {path}: {error}; delete it and get it again") from None
    if len(content) < 4 or content[:2] != b"\0\0" or content[2] not in IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number); delete it and get it again")
    header_size = 4 + 4 * content[3]
    shape = struct.unpack(f">{content[3]}I", content[4:header_size]) if len(content) >= header_size else ()
    dtype = np.dtype(IDX_DTYPES[content[2]])
    if len(content) < header_size or len(content) != header_size + int(np.prod(shape)) * dtype.itemsize:
        raise DataError(f"{path} is truncated or has trailing bytes; delete it and get it again")
    return np.frombuffer(content, dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx_files(root: Path) -> list[Path | None]:
    """Each training IDX file, named as on the original site or with '.idx', plain or .gz; None if absent."""
    found = []
    for name in IDX_FILES:
        names = [name, name + ".gz", name.replace("-idx", ".idx"), name.replace("-idx", ".idx") + ".gz"]
        found.append(next((root / other for other in names if (root / other).is_file()), None))
    return found


def download_idx(name: str, root: Path) -> None:
    """Fetch the training IDX files from the standard mirrors, checked against their published md5."""
    for file_name, md5 in zip(IDX_FILES, IDX_MD5[name], strict=True):
        errors = []
        for mirror in IDX_MIRRORS[name]:
            try:
                with urllib.request.urlopen(mirror + file_name + ".gz", timeout=30) as response:
                    content = response.read()
            except (OSError, ValueError, http.client.HTTPException) as error:
                errors.append(f"{mirror}: {error}")
                continue
            if hashlib.md5(content).hexdigest() != md5:
                errors.append(f"{mirror}: checksum mismatch")
                continue
            write_atomically(root / f"{file_name}.gz", lambda handle, content=content: handle.write(content))
            break
        else:
            raise DataError(f"could not download {file_name}.gz ({'; '.join(errors)}); put the IDX files in "
                            f"{root} by hand")


def locate_idx(spec: DatasetSpec) -> RawData:
    """train-images-idx3-ubyte and train-labels-idx1-ubyte (or .gz) in the path; fetched if download=True."""
    root = Path(spec.path).expanduser() if spec.path else spec.cache_root() / "raw" / spec.name
    files = find_idx_files(root)
    if None in files and spec.download:
        download_idx(spec.name, root)
        files = find_idx_files(root)
    if None in files:
        raise DataError(f"{root} does not hold {' and '.join(IDX_FILES)} (or .gz); get them from "
                        f"{IDX_MIRRORS[spec.name][0]}, or pass --download")
    return RawData(root.resolve(), tuple(file for file in files if file is not None))


def read_idx_source(spec: DatasetSpec, raw: RawData) -> Cached:
    pixels, labels = (read_idx(file) for file in raw.files)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or labels.shape != pixels.shape[:1]:
        raise DataError(f"{raw.files[0]} and {raw.files[1]} are not IDX images (N, h, w) and labels (N,)")
    class_names = IDX_CLASS_NAMES[spec.name]
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise DataError(f"{raw.files[1]} holds labels outside 0..{len(class_names) - 1}; delete it and get it again")
    conversions = Conversions()
    images = resize_arrays(pixels, spec, conversions)
    return Cached(images, labels.astype(np.int64), len(class_names), class_names, raw.files[1].name,
                  noted(spec, conversions, len(images)))


def read_fake(spec: DatasetSpec, raw: RawData) -> Cached:
    """fake_size random images and labels in 10 classes, from default_rng(seed)."""
    generator = np.random.default_rng(spec.seed)
    shape = (spec.fake_size, spec.image_size, spec.image_size, spec.channels)
    try:
        images = generator.integers(0, 256, size=shape, dtype=np.uint8)
    except (MemoryError, ValueError):
        raise DataError(f"{spec.fake_size} random images of {spec.image_size}x{spec.image_size}x{spec.channels} "
                        "do not fit in memory; lower --image-size") from None
    labels = generator.integers(0, 10, size=spec.fake_size, dtype=np.int64)
    return Cached(images, labels, 10, tuple(str(label) for label in range(10)), "random labels")


DATASETS: dict[str, Source] = {
    "digits": Source(locate_digits, read_digits),
    "folder": Source(locate_folder, read_folder),
    "celeba": Source(locate_celeba, read_celeba),
    "mnist": Source(locate_idx, read_idx_source),
    "fashion_mnist": Source(locate_idx, read_idx_source),
    "fake": Source(lambda spec: RawData(None, ()), read_fake, cached=False),
}


# ------------------------------------------------------------------------ The cache: fingerprint, write, read


def fingerprint(raw: RawData) -> str:
    """sha256 of the resolved root, every raw file's relative path, size and mtime_ns, and the versions."""
    listing = []
    for file in raw.files:
        status = file.stat()
        name = file.relative_to(raw.root).as_posix() if raw.root else str(file)
        listing.append((name, status.st_size, status.st_mtime_ns))
    text = json.dumps([CACHE_FORMAT, f"pillow {PIL.__version__}", raw.version, str(raw.root), listing])
    return hashlib.sha256(text.encode()).hexdigest()


def write_cache(handle: BinaryIO, cached: Cached) -> None:
    class_names = np.array(cached.class_names, dtype=str)
    about = json.dumps({"labels_from": cached.labels_from, "note": cached.note, "identity": cached.identity})
    np.savez(handle, images=cached.images, labels=cached.labels, class_names=class_names, about=np.array(about))


def read_cache(file: Path) -> Cached | None:
    """The cached arrays (no image is decoded), or None when absent or unreadable (then it is rebuilt)."""
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as arrays:
            class_names = tuple(str(name) for name in arrays["class_names"])
            about = json.loads(str(arrays["about"]))
            return Cached(arrays["images"], arrays["labels"], len(class_names), class_names, about["labels_from"],
                          about["note"], about["identity"])
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None
