"""Data parity: the batches each backend trains on, compared byte for byte (and shown as two PNG grids).

Both backends read one uint8 cache in one seeded order and scale it with the same float32 operations, so
their batches must be byte-identical once torch's (N, C, H, W) is moved to Keras's (N, H, W, C). Keras has two
pipelines: tf.data on its TensorFlow backend, and a keras.utils.PyDataset of numpy batches on JAX and PyTorch;
both are compared as `fit` hands them to the train step, converted to the backend's arrays.
- `gan-parity data`: the first batch of a data set as each pipeline gives it, as grids (torch_first_batch.png,
  keras_first_batch.png for tf.data, keras_pydataset_first_batch.png) that let a reader see it, and the bytes that
  prove it. tf.data needs TensorFlow: on JAX or PyTorch (KERAS_BACKEND) the PyDataset alone is compared.
- the `data` check of `gan-parity check`: for the model's configuration, the first batches each loader hands the
  trainer (images and, for a conditional model, its one-hot labels) on the process's Keras backend, on the digits
  and on a folder fixture with three classes, compared with each other and with the shared cache scaled by
  `specs.datasets.to_unit`.
- `check_labels_follow_image_id` proves the other half of what a batch holds: a CelebA label belongs to its image.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from parity.results import CheckResult, compare, nchw_to_nhwc
from specs.datasets import DATASETS, Cached, DataError, DatasetSpec, RawData, get_spec, to_uint8, to_unit
from specs.images import save_grid
from torch_impl.data import batches as torch_batches

# isort: split
from keras_impl.data import batches as keras_batches  # after torch_impl: torch before TensorFlow

PIPELINES = {  # Keras's pipelines in this process: the grid each is drawn to
    "tf.data": "keras_first_batch.png", "PyDataset": "keras_pydataset_first_batch.png",
}
KERAS_PIPELINES = tuple(kind for kind in PIPELINES if kind != "tf.data" or keras.backend.backend() == "tensorflow")


def as_fit_hands_it(value) -> np.ndarray:
    """A Keras pipeline's array as `fit` hands it to the train step (the backend's array), back as numpy."""
    return keras.ops.convert_to_numpy(keras.ops.convert_to_tensor(value))


@dataclass(frozen=True)
class FirstBatchComparison:
    """What `compare_first_batch` found."""

    identical: bool  # every Keras pipeline's float32 batch has exactly the bytes of torch's (moved to NHWC)
    max_abs_diff: float  # largest |torch - keras| over the batches (0.0 when identical)
    torch_grid: Path  # torch_first_batch.png
    keras_grids: dict[str, Path]  # per Keras pipeline: keras_first_batch.png (tf.data), ...

    def summary(self) -> str:
        verdict = "byte-identical" if self.identical else "DIFFERENT"
        pipelines = ", ".join(f"keras_impl {kind}" for kind in self.keras_grids)
        batches = f"torch_impl and {pipelines} first batches: {verdict} (max abs diff {self.max_abs_diff:.3g})"
        return f"{batches}; grids: {', '.join(str(path) for path in (self.torch_grid, *self.keras_grids.values()))}"


def compare_first_batch(
    dataset: str = "digits",
    out: str | Path = "runs/demo/data",
    seed: int = 0,
    batch_size: int = 64,
    image_size: int = 32,
    channels: int = 1,
    path: str | None = None,
    cache_dir: str | None = None,
) -> FirstBatchComparison:
    """Build (or read) the cache, take batch 0 of epoch 0 from each backend, write both grids, compare."""
    spec = get_spec(dataset, path=path, image_size=image_size, channels=channels, seed=seed,
                    cache_dir=cache_dir)
    data = spec.load()
    torch_images = next(torch_batches(data, spec, batch_size, epoch=0)).numpy()  # (N, C, H, W)
    torch_images = np.ascontiguousarray(torch_images.transpose(0, 2, 3, 1))  # (N, H, W, C)
    out, identical, difference, grids = Path(out), True, 0.0, {}
    for kind in KERAS_PIPELINES:
        keras_images = as_fit_hands_it(next(iter(keras_batches(data, spec, batch_size, kind=kind))))  # (N, H, W, C)
        same_shape = torch_images.shape == keras_images.shape
        identical = identical and same_shape and torch_images.tobytes() == keras_images.tobytes()
        if same_shape:
            difference = max(difference, float(np.abs(torch_images.astype(np.float64) - keras_images).max()))
        else:
            difference = float("inf")
        grids[kind] = save_grid(to_uint8(keras_images), out / PIPELINES[kind])
    return FirstBatchComparison(identical, difference, save_grid(to_uint8(torch_images), out / "torch_first_batch.png"),
                                grids)


DATA_BATCHES = 2  # batches of epoch 0 that the data check compares
FIXTURE_CLASSES = ("circle", "square", "stripes")  # class subfolders of the data check's folder fixture


def write_folder_fixture(root: Path, per_class: int, seed: int = 0) -> Path:
    """A folder data set of RGB PNGs in one subfolder per class, of sizes that the cache resizes (and one not
    square), drawn from default_rng(seed); returns its path."""
    rng = np.random.default_rng(seed)
    for number, name in enumerate(FIXTURE_CLASSES):
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            height, width = (20, 20) if k % 4 else (18, 26)
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8) // (number + 1)
            Image.fromarray(pixels, "RGB").save(root / name / f"{k:03d}.png")
    return root


def loader_rows(label: str, data: Cached, spec: DatasetSpec, batch_size: int, one_hot: bool) -> list[tuple]:
    """(label, torch, Keras) and (label, torch, cache) rows for the first DATA_BATCHES batches of epoch 0."""
    order = spec.batch_order(0, len(data.labels), batch_size)[:DATA_BATCHES]
    torch_loader = torch_batches(data, spec, batch_size, epoch=0, one_hot=one_hot)
    keras_loader = iter(keras_batches(data, spec, batch_size, 0, 1, one_hot))  # this Keras backend's pipeline
    rows = []
    for number, indices in enumerate(order):
        torch_batch, keras_batch = next(torch_loader), next(keras_loader)
        torch_parts = torch_batch if isinstance(torch_batch, tuple) else (torch_batch,)
        keras_parts = keras_batch if isinstance(keras_batch, tuple) else (keras_batch,)
        expected = [to_unit(data.images[indices])]
        if one_hot:
            expected.append(np.eye(data.num_classes, dtype=np.float32)[data.labels[indices]])
        if len(torch_parts) != len(expected) or len(keras_parts) != len(expected):
            rows.append((f"{label} batch {number}: parts (torch {len(torch_parts)}, Keras {len(keras_parts)}, "
                         f"expected {len(expected)})", np.zeros(1), np.full(1, np.nan)))
            continue
        for part, torch_part, keras_part, reference in zip(("images", "labels"), torch_parts, keras_parts, expected):
            torch_part = nchw_to_nhwc(torch_part.numpy())
            keras_part = as_fit_hands_it(keras_part)
            if torch_part.dtype != keras_part.dtype:
                rows.append((f"{label} batch {number} {part}: dtype torch {torch_part.dtype}, Keras "
                             f"{keras_part.dtype}", np.zeros(1), np.full(1, np.nan)))
            rows.append((f"{label} batch {number} {part}: torch against Keras", torch_part, keras_part))
            rows.append((f"{label} batch {number} {part}: torch against the cache", torch_part, reference))
            rows.append((f"{label} batch {number} {part}: Keras against the cache", keras_part, reference))
    return rows


def check_data(h) -> CheckResult:
    """What each backend's loader hands the trainer of `h.config` (a parity Harness): on the digits, and on a folder
    fixture with classes (written to a temporary folder, cached there)."""
    config, one_hot = h.config, h.config.conditional
    size, channels, batch_size = config.image_size, config.channels, h.batch_size
    spec = get_spec("digits", image_size=size, channels=channels, seed=h.seed)
    rows = loader_rows("digits", spec.load(), spec, batch_size, one_hot)
    with tempfile.TemporaryDirectory() as root:
        folder = write_folder_fixture(Path(root) / "images", per_class=batch_size, seed=h.seed)
        spec = get_spec("folder", path=str(folder), image_size=size, channels=channels, seed=h.seed,
                        cache_dir=str(Path(root) / "cache"))
        rows += loader_rows("folder", spec.load(), spec, batch_size, one_hot)
    return compare("data", 0.0, rows)


LEVEL_STEP = 12  # gray level of image k is LEVEL_STEP * (k + 1): the pixels say which image_id an image is


def check_labels_follow_image_id(read: Callable[[DatasetSpec, RawData], Cached] | None = None,
                                 num_images: int = 16, seed: int = 0) -> CheckResult:
    """Read a small CelebA-like folder whose attribute rows are shuffled, and compare every image's label with the
    row of its own image_id (each image's gray level names it). The result is the fraction of wrong labels."""
    read = read or DATASETS["celeba"].read
    rng = np.random.default_rng(seed)
    ids = [f"{k + 1:06d}.jpg" for k in range(num_images)]
    attribute = rng.permutation(np.arange(num_images) % 2)  # balanced 0/1, not in image order
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "img_align_celeba"
        folder.mkdir()
        for k, image_id in enumerate(ids):
            Image.new("L", (8, 8), LEVEL_STEP * (k + 1)).save(folder / image_id)
        with open(Path(root) / "list_attr_celeba.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image_id", "Blond_Hair"])
            for k in rng.permutation(num_images):  # rows in another order than the images
                writer.writerow([ids[k], 2 * int(attribute[k]) - 1])
        spec = get_spec("celeba", path=root, image_size=8, channels=1)
        cached = read(spec, DATASETS["celeba"].locate(spec))
    which = np.rint(cached.images.reshape(len(cached.images), -1).mean(axis=1) / LEVEL_STEP).astype(int) - 1
    wrong = float(np.mean(cached.labels != attribute[which]))
    return CheckResult("labels_follow_image_id", wrong, wrong, 0.0, "labels of the images, by image_id", num_images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--out", default="runs/demo/data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--data-dir", default=None, help="root of the raw data (folder, celeba, mnist)")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: the user cache)")
    parser.add_argument("--keras-backend", choices=("tensorflow", "jax", "torch", "all"), default=None,
                        help="the Keras backend (all: one process each); tf.data needs tensorflow, the PyDataset "
                             "runs on all three; default: $KERAS_BACKEND, else tensorflow")
    args = parser.parse_args(argv)
    try:
        comparison = compare_first_batch(args.dataset, args.out, args.seed, args.batch_size, args.image_size,
                                         args.channels, args.data_dir, args.cache_dir)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(comparison.summary())
    return 0 if comparison.identical else 1


if __name__ == "__main__":
    sys.exit(main())
