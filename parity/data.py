"""Data parity: the first batch each backend trains on, compared byte for byte and saved as two PNG grids.

Both backends read one uint8 cache in one seeded order and scale it with the same float32 operations, so
their first batches must be byte-identical once torch's (N, C, H, W) is moved to Keras's (N, H, W, C).
The grids (torch_first_batch.png, keras_first_batch.png) let a reader see it; the bytes prove it.
`check_labels_follow_image_id` proves the other half of what a batch holds: a CelebA label belongs to its image.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from parity.checks import CheckResult
from specs.datasets import DATASETS, Cached, DataError, DatasetSpec, RawData, get_spec, to_uint8
from specs.images import save_grid
from torch_impl.data import batches as torch_batches

# isort: split
from keras_impl.data import batches as keras_batches  # after torch_impl: torch before TensorFlow


@dataclass(frozen=True)
class FirstBatchComparison:
    """What `compare_first_batch` found."""

    identical: bool  # the two float32 batches (torch moved to NHWC) have exactly the same bytes
    max_abs_diff: float  # largest |torch - keras| over the batch (0.0 when identical)
    torch_grid: Path  # torch_first_batch.png
    keras_grid: Path  # keras_first_batch.png

    def summary(self) -> str:
        verdict = "byte-identical" if self.identical else "DIFFERENT"
        batches = f"torch_impl and keras_impl first batches: {verdict} (max abs diff {self.max_abs_diff:.3g})"
        return f"{batches}; grids: {self.torch_grid}, {self.keras_grid}"


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
    keras_images = next(iter(keras_batches(data, spec, batch_size))).numpy()  # (N, H, W, C)
    difference = np.abs(torch_images.astype(np.float64) - keras_images.astype(np.float64))
    out = Path(out)
    same_shape = torch_images.shape == keras_images.shape
    return FirstBatchComparison(
        identical=same_shape and torch_images.tobytes() == keras_images.tobytes(),
        max_abs_diff=float(difference.max()),
        torch_grid=save_grid(to_uint8(torch_images), out / "torch_first_batch.png"),
        keras_grid=save_grid(to_uint8(keras_images), out / "keras_first_batch.png"),
    )


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
