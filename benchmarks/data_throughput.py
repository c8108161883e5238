"""Data loader throughput: images per second of each backend's `batches`, read from the uint8 cache.

Usage: python benchmarks/data_throughput.py [--epochs 10] [--batch-size 128] [--fake-size 10000]
Data: digits at 64x64x1 (the offline default's cache) and a random 64x64x3 array shaped like CelebA at 64 px.
Each loader runs in its own process, as in training: a torch run hosts no TensorFlow threads, and the reverse.
One warm-up epoch (tf.data builds its pipeline), then the median rate of the timed epochs is shown.
torch_impl: one `batches(...)` call per epoch, as the training loop does. keras_impl: one dataset over all the
timed epochs, as `fit` walks it. Every batch is a materialised float32 tensor when the clock reads it.
The numpy row is the floor both loaders stand on: the fancy-index gather of each batch from the cache.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable

from specs.datasets import Cached, DatasetSpec, get_spec

LOADERS = ("numpy gather (floor)", "torch_impl", "keras_impl")
RunEpochs = Callable[[int, int], Iterable]  # run_epochs(first_epoch, epochs) yields those epochs' batches


def images_per_second(run_epochs: RunEpochs, epochs: int, batches_per_epoch: int) -> float:
    """Median over `epochs` timed epochs after one warm-up; run_epochs(first_epoch, epochs) yields batches.

    The median, not the mean: on a shared 2-core machine one descheduled epoch should not decide the row.
    """
    for _ in run_epochs(0, 1):
        pass
    rates, count = [], 0
    start = time.perf_counter()
    for index, batch in enumerate(run_epochs(1, epochs), start=1):
        count += int(batch.shape[0])
        if index % batches_per_epoch == 0:
            now = time.perf_counter()
            rates.append(count / (now - start))
            count, start = 0, now
    return statistics.median(rates)


def make_loader(name: str, data: Cached, spec: DatasetSpec, batch_size: int) -> RunEpochs:
    """run_epochs(first_epoch, epochs) for one loader; imports only that loader's framework."""
    if name == "torch_impl":
        from torch_impl.data import batches

        def torch_loader(first_epoch: int, epochs: int) -> Iterable:
            for epoch in range(first_epoch, first_epoch + epochs):
                yield from batches(data, spec, batch_size, epoch)

        return torch_loader
    if name == "keras_impl":
        from keras_impl.data import batches  # imports torch first when installed (see keras_impl/__init__.py)

        def keras_loader(first_epoch: int, epochs: int) -> Iterable:
            return batches(data, spec, batch_size, first_epoch=first_epoch, epochs=epochs)

        return keras_loader

    def numpy_gather(first_epoch: int, epochs: int) -> Iterable:
        for epoch in range(first_epoch, first_epoch + epochs):
            for indices in spec.batch_order(epoch, len(data.labels), batch_size):
                yield data.images[indices]

    return numpy_gather


def data_specs(args: argparse.Namespace, cache_dir: str) -> dict[str, DatasetSpec]:
    return {
        "digits 64x64x1": get_spec("digits", image_size=64, channels=1, cache_dir=cache_dir),
        "celeba-like 64x64x3": get_spec("fake", image_size=64, channels=3, fake_size=args.fake_size),
    }


def measure(args: argparse.Namespace) -> None:
    """The child process: one loader over every data set, one JSON line per row."""
    for data_name, spec in data_specs(args, args.cache_dir).items():
        data = spec.load()
        run_epochs = make_loader(args.loader, data, spec, args.batch_size)
        rate = images_per_second(run_epochs, args.epochs, len(data.labels) // args.batch_size)
        print(json.dumps({"data": data_name, "examples": len(data.labels), "rate": rate}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs per loader, after one warm-up")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--fake-size", type=int, default=10_000, help="examples in the 64x64x3 array")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: a temporary one)")
    parser.add_argument("--loader", choices=LOADERS, help=argparse.SUPPRESS)  # set in the child processes
    args = parser.parse_args()
    if args.loader:
        return measure(args)

    with tempfile.TemporaryDirectory() as temporary:
        cache_dir = args.cache_dir or temporary
        for spec in data_specs(args, cache_dir).values():
            spec.load()  # build the caches once, outside the timed children
        rows = []
        for loader in LOADERS:
            child = [sys.executable, __file__, "--loader", loader, "--cache-dir", cache_dir]
            child += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
            child += ["--fake-size", str(args.fake_size)]
            output = subprocess.run(child, check=True, capture_output=True, text=True).stdout
            rows += [(loader, json.loads(line)) for line in output.splitlines() if line.startswith("{")]
    print(f"batches of {args.batch_size}; median of {args.epochs} timed epochs after 1 warm-up epoch\n")
    print(f"| {'data':<20} | {'examples':>8} | {'loader':<20} | {'images/s':>10} |")
    print(f"|{'-' * 22}|{'-' * 10}|{'-' * 22}|{'-' * 12}|")
    for loader, row in sorted(rows, key=lambda item: item[1]["data"], reverse=True):
        print(f"| {row['data']:<20} | {row['examples']:>8} | {loader:<20} | {row['rate']:>10,.0f} |")


if __name__ == "__main__":
    main()
