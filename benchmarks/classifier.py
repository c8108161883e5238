"""eval's classifier on two classes of real photographs, against a plain scikit-learn MLP on the same pixels.

Usage: python benchmarks/classifier.py [--crops 100] [--side 64] [--image-size 32] [--channels 3] [--seeds 0 1 2]
The data set: `--crops` seeded square crops of `--side` pixels from each of scikit-learn's two sample photographs
(china.jpg, flower.jpg), written as PNG files into one folder per photograph and read as gan-torch reads a
`--dataset folder` (specs/datasets.py: one cache, resized to `--image-size`). On the same seeded 80/20 split of the
cached pixels: specs/quality.py's classifier (what `eval` uses) and scikit-learn's MLPClassifier with its defaults
on pixels / 255. Prints each one's held-out accuracy, the commonest class's share (chance), and whether eval trusts
its classifier enough to report class accuracy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image


def photo_folder(root: Path, crops: int = 100, side: int = 64, seed: int = 0) -> Path:
    """`crops` random side x side crops of each sample photograph, root/china/NNN.png and root/flower/NNN.png."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    generator = np.random.default_rng(seed)
    for path, photo in zip(photos.filenames, photos.images):
        folder = root / Path(path).stem
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(crops):
            top = generator.integers(0, photo.shape[0] - side + 1)
            left = generator.integers(0, photo.shape[1] - side + 1)
            Image.fromarray(photo[top : top + side, left : left + side]).save(folder / f"{index:03d}.png")
    return root


def split(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The split specs/quality.py makes: a permutation from the classifier's random_state, 80% to train."""
    from specs.quality import CLASSIFIER

    order = np.random.default_rng(CLASSIFIER["random_state"]).permutation(count)
    cut = int(round(count * (1 - CLASSIFIER["held_out"])))
    return order[:cut], order[cut:]


def plain_mlp(images: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """scikit-learn's MLPClassifier with its defaults on pixels / 255: held-out accuracy on `split`'s 20%."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    train, held_out = split(len(labels))
    pixels = images.reshape(len(images), -1) / 255.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        network = MLPClassifier(random_state=seed).fit(pixels[train], labels[train])
    return float(network.score(pixels[held_out], labels[held_out]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=100, help="crops per photograph (default 100)")
    parser.add_argument("--side", type=int, default=64, help="side of a crop in the photograph (default 64)")
    parser.add_argument("--image-size", type=int, default=32, help="side after resizing (default 32)")
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the crops (default 0)")
    args = parser.parse_args(argv)

    from specs import quality
    from specs.datasets import get_spec

    print(f"{args.crops} crops of {args.side}x{args.side} per photograph, read at {args.image_size}x{args.image_size}"
          f"x{args.channels}; held-out accuracy on 20% of the images\n")
    print("| crop seed | eval's classifier | chance (commonest class) | eval trusts it | plain MLPClassifier | "
          "seconds (ours) |")
    print("|---:|---:|---:|---|---:|---:|")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as folder:
            root = photo_folder(Path(folder) / "photos", args.crops, args.side, seed)
            spec = get_spec("folder", path=str(root), image_size=args.image_size, channels=args.channels,
                            cache_dir=str(Path(folder) / "cache"))
            data = spec.load()
            start = time.perf_counter()
            classifier = quality.train_classifier(data)
            seconds = time.perf_counter() - start
            trusted = getattr(classifier, "trusted", "—")  # absent before eval reported it
            chance = np.bincount(data.labels[split(len(data.labels))[1]]).max() / len(split(len(data.labels))[1])
            print(f"| {seed} | {100 * classifier.accuracy:.1f}% | {100 * chance:.1f}% | {trusted} | "
                  f"{100 * plain_mlp(data.images, data.labels, 0):.1f}% | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
