"""`gan-parity drift MODEL...`: how far the two backends' weights part over a long run from one start.

The trajectory check proves a few train steps equal to round-off; users train thousands, and training amplifies
every rounding difference. This report measures by how much: it builds the checks' pair (parity/checks.py Harness:
the trainers the command lines build, the torch weights copied into Keras), trains both for N steps on the same
digits batches (the shared cache in the seeded order of both loaders), with the same injected noise and dropout 0
(masks never agree), and after 1, 2, 5, 10, 20, 50, ... steps records the max and the median, over every weight and
running statistic, of the scaled difference (parity/results.py). float64 shows the mathematics; float32 what a user's
run gives. Measured, not asserted: a table on stdout and a PNG plot (log-log) in --out.

  gan-parity drift dcgan [--steps 200] [--dtype float32 float64] [--preset digits] [--batch-size B] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from parity import checks
from parity.results import diffs
from specs.cli import positive_int
from specs.datasets import DataError, get_spec, to_unit
from specs.images import write_atomically
from specs.models import PRESETS, get_config


def recorded_steps(total: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... up to `total`, and `total` itself."""
    marks = [m * 10**k for k in range(len(str(total))) for m in (1, 2, 5)]
    return sorted({mark for mark in marks if mark < total} | {total})


def digits_batches(config, batch_size: int, seed: int, dtype: str) -> Iterator:
    """The digits batches both loaders give, epoch after epoch, in torch layout: images (N, C, H, W) in [-1, 1]
    (specs.datasets.to_unit of the cache), with one-hot labels for a conditional model."""
    spec = get_spec("digits", image_size=config.image_size, channels=config.channels, seed=seed)
    data = spec.load()
    for epoch in itertools.count():
        for indices in spec.batch_order(epoch, len(data.labels), batch_size):
            images = to_unit(data.images[indices]).transpose(0, 3, 1, 2).astype(dtype)
            if not config.conditional:
                yield images
            else:
                yield images, np.eye(data.num_classes, dtype=dtype)[data.labels[indices]]


def drift(model: str, config, dtype: str, steps: int, batch_size: int, seed: int = 0) -> list[dict]:
    """One row per recorded step: the max and median scaled difference of the weights and where the max is."""
    config = dataclasses.replace(config, dropout=0.0)
    record = set(recorded_steps(steps))
    rows = []
    with checks.keras_dtype(dtype):
        h = checks.Harness(model, config, dtype, batch_size, seed)
        weight_rows = checks.WeightRows(h)
        batches = digits_batches(config, batch_size, seed, dtype)
        start = time.perf_counter()
        for step in range(1, steps + 1):
            checks.train_both(h, next(batches), h.step_inputs())
            if step in record:
                scaled = [(diffs(torch_value, keras_value)[1], name) for name, torch_value, keras_value
                          in weight_rows()]
                worst, name = max(scaled)
                rows.append({"model": model, "dtype": dtype, "step": step, "max_scaled_diff": worst,
                             "median_scaled_diff": float(np.median([value for value, _ in scaled])), "worst": name,
                             "seconds": time.perf_counter() - start})
    return rows


def format_table(rows: list[dict]) -> str:
    header = f"{'model':<8} {'dtype':<8} {'step':>6} {'max scaled diff':>16} {'median':>10}  worst"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row['model']:<8} {row['dtype']:<8} {row['step']:>6} {row['max_scaled_diff']:>16.3g} "
                     f"{row['median_scaled_diff']:>10.3g}  {row['worst']}")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> Path:
    """The max (solid) and median (dashed) scaled difference against the step, log-log, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    runs = sorted({(row["model"], row["dtype"]) for row in rows})
    for (model, dtype), colour in zip(runs, itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])):
        mine = [row for row in rows if (row["model"], row["dtype"]) == (model, dtype)]
        steps = [row["step"] for row in mine]
        axis.plot(steps, [max(row["max_scaled_diff"], 1e-17) for row in mine], "-o", color=colour,
                  label=f"{model} {dtype} max")
        axis.plot(steps, [max(row["median_scaled_diff"], 1e-17) for row in mine], "--", color=colour,
                  label=f"{model} {dtype} median")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("train steps from one converted start")
    axis.set_ylabel("scaled weight difference torch - Keras")
    axis.grid(True, which="major", alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    write_atomically(path, lambda handle: handle.write(buffer.getvalue()))
    return path


def run(args: argparse.Namespace) -> int:
    rows = []
    for model in args.models:
        if args.preset not in PRESETS[model]:
            print(f"gan-parity: unknown preset {args.preset!r} for {model}; known: {', '.join(PRESETS[model])}",
                  file=sys.stderr)
            return 2
        config = get_config(model, args.preset)
        for dtype in args.dtype:
            try:
                rows += drift(model, config, dtype, args.steps, args.batch_size or config.batch_size, args.seed)
            except DataError as error:
                print(f"gan-parity: error: {error}", file=sys.stderr)
                return 2
    figure = plot(rows, Path(args.out) / f"drift_{'_'.join(args.models)}.png")
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    if not args.json:
        print(f"\nplot: {figure}")
    return 0


def register(commands) -> None:
    parser = commands.add_parser("drift", help="how far the backends' weights part over a long run from one start",
                                 description=__doc__.split("\n\n")[1].replace("\n", " "))
    parser.add_argument("models", nargs="+", choices=list(checks.MODELS), metavar="MODEL",
                        help=f"one or more of: {', '.join(checks.MODELS)}")
    parser.add_argument("--steps", type=positive_int, default=200, help="train steps (default 200)")
    parser.add_argument("--dtype", nargs="+", choices=("float32", "float64"), default=["float32", "float64"])
    parser.add_argument("--preset", default="digits", help="the models' preset (default digits)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="default: the preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/drift", help="folder of the plot (default runs/drift)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.set_defaults(func=run)
