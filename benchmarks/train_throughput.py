"""Train-step throughput: images per second of each backend's GAN train step, for one model at one preset.

Usage: python benchmarks/train_throughput.py [--model dcgan] [--preset book] [--batch-size B] [--steps N]
                                             [--warmup W] [--update-order simultaneous|alternating]
Each backend runs in its own process (the script calls itself with `--backend`), as in training: TensorFlow's and
torch's thread pools do not share the cores with each other. Both train on one fixed random batch in [-1, 1], so
the numbers are compute only (benchmarks/data_throughput.py measures the loaders).
torch_impl: `trainer.train_step(batch)` on an NCHW float32 tensor, W warm-up steps, then N steps timed together.
keras_impl: the real training path, `trainer.fit(dataset, epochs=1, steps_per_epoch=N, verbose=0)` on
`tf.data.Dataset.from_tensors(batch).repeat()` (NHWC), after a warm-up `fit` of W steps that traces and compiles
the train function; the timed `fit` reuses it. Both rows: images/s = batch * N / seconds of the timed part; the
median step (robust to one descheduled step); CPU % = the process's CPU time / wall time of the timed part (200 =
both of 2 cores busy all along). Other work on a shared machine shows as a lower CPU % and slower steps than an idle
run gives: compare rows only between runs on an equally quiet machine (the load average is printed too).
Defaults: W = 2; N = 5 at the book's DCGAN and more for smaller work (see `default_steps`): under a minute when idle.
To add a model: one line in TRAINERS (its trainers are built as `Trainer(config, seed=0)`, Keras ones compiled).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

import numpy as np

from specs.models import PRESETS, UPDATE_ORDERS, get_config

BACKENDS = ("torch", "keras")


# model -> (torch trainer, keras trainer), each "module:Class", imported only in that backend's own process.
TRAINERS = {
    "dcgan": ("torch_impl.dcgan:DCGAN", "keras_impl.dcgan:DCGAN"),
    "wgan_gp": ("torch_impl.wgan_gp:WGANGP", "keras_impl.wgan_gp:WGANGP"),
    "cgan": ("torch_impl.cgan:CGAN", "keras_impl.cgan:CGAN"),  # its configuration is conditional: see example_batch
}


def trainer_class(model: str, backend: str) -> type:
    module, name = TRAINERS[model][BACKENDS.index(backend)].split(":")
    return getattr(importlib.import_module(module), name)


def example_batch(config, channels_first: bool, seed: int = 0):
    """One fixed float32 batch: images uniform in [-1, 1], NCHW for torch and NHWC for Keras.

    For a conditional model (`config.conditional`, as CGAN's) the batch is (images, one_hot_labels), the labels
    float32 of shape (N, num_classes), as its train step takes it.
    """
    rng = np.random.default_rng(seed)
    size = (config.batch_size, config.image_size, config.image_size, config.channels)
    images = rng.uniform(-1, 1, size).astype(np.float32)
    if channels_first:
        images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    if not getattr(config, "conditional", False):
        return images
    labels = rng.integers(0, config.num_classes, config.batch_size)
    return images, np.eye(config.num_classes, dtype=np.float32)[labels]


def default_steps(config) -> int:
    """5 steps at the book's DCGAN (batch 128 at 64x64, about 1-4 s a step on 2 cores); smaller runs get more steps,
    in proportion to batch * pixels, so every default run times about the same work (at most 200 steps)."""
    work = config.batch_size * config.image_size**2
    return min(200, max(5, round(5 * 128 * 64**2 / work)))


# ------------------------------------------------------------------------------------------- Child processes


def measure_torch(args: argparse.Namespace, config) -> dict:
    import torch

    trainer_cls = trainer_class(args.model, "torch")  # imports torch_impl first (the import order)
    torch.manual_seed(0)
    trainer = trainer_cls(config, seed=0)
    trainer.train()  # dropout and batch statistics on, as Trainer.fit does
    batch = example_batch(config, channels_first=True)
    batch = tuple(map(torch.from_numpy, batch)) if isinstance(batch, tuple) else torch.from_numpy(batch)
    start = time.perf_counter()
    for _ in range(args.warmup):
        trainer.train_step(batch)
    warmup = time.perf_counter() - start
    step_seconds = []
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        begin = time.perf_counter()
        logs = trainer.train_step(batch)
        step_seconds.append(time.perf_counter() - begin)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    threads = f"intra {torch.get_num_threads()}, inter {torch.get_num_interop_threads()}"
    finite = all(bool(torch.isfinite(value)) for value in logs.values())
    return {"version": torch.__version__, "threads": threads, "warmup": warmup, "seconds": seconds,
            "median_step": statistics.median(step_seconds), "cpu": cpu, "finite": finite}


def measure_keras(args: argparse.Namespace, config) -> dict:
    trainer_cls = trainer_class(args.model, "keras")  # imports torch before TensorFlow (the import order)
    import keras
    import tensorflow as tf

    class StepClock(keras.callbacks.Callback):
        """Times each step from one `on_train_batch_begin` to the next (the last one ends at `on_epoch_end`).

        Only the begin hooks are overridden: an `on_train_batch_end` would switch off fit's asynchronous dispatch of
        batch-end callbacks and so change the path being measured."""

        def __init__(self):
            super().__init__()
            self.stamps: list[float] = []

        def on_train_batch_begin(self, batch, logs=None):
            self.stamps.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            self.stamps.append(time.perf_counter())

        def step_seconds(self) -> list[float]:
            return [later - earlier for earlier, later in zip(self.stamps, self.stamps[1:])]

    keras.utils.set_random_seed(0)
    trainer = trainer_cls(config, seed=0)
    trainer.compile()
    batch = example_batch(config, channels_first=False)
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    start = time.perf_counter()
    if args.warmup:
        trainer.fit(dataset, epochs=1, steps_per_epoch=args.warmup, verbose=0)  # traces and compiles train_step
    warmup = time.perf_counter() - start
    clock = StepClock()
    start, cpu = time.perf_counter(), time.process_time()
    history = trainer.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0, callbacks=[clock])
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    threads = f"intra {intra or 'auto'}, inter {inter or 'auto'}; jit_compile={trainer.jit_compile}"
    finite = all(np.isfinite(values[-1]) for values in history.history.values())
    version = f"{tf.__version__} (Keras {keras.__version__})"
    return {"version": version, "threads": threads, "warmup": warmup, "seconds": seconds,
            "median_step": statistics.median(clock.step_seconds()), "cpu": cpu, "finite": finite}


def measure(args: argparse.Namespace) -> None:
    """The child process: one backend, one JSON line."""
    config = get_config(args.model, args.preset, batch_size=args.batch_size, update_order=args.update_order)
    result = (measure_torch if args.backend == "torch" else measure_keras)(args, config)
    result["update_order"] = getattr(config, "update_order", "-")
    result |= {"batch": config.batch_size, "image": f"{config.image_size}x{config.image_size}x{config.channels}"}
    print(json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------------ The parent


def run_child(args: argparse.Namespace, backend: str) -> dict:
    child = [sys.executable, os.path.abspath(__file__), "--backend", backend, "--model", args.model]
    child += ["--preset", args.preset, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if args.batch_size is not None:
        child += ["--batch-size", str(args.batch_size)]
    if args.update_order is not None:
        child += ["--update-order", args.update_order]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    done = subprocess.run(child, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"train_throughput: the {backend} process failed (exit status {done.returncode})")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(TRAINERS), default="dcgan")
    parser.add_argument("--preset", default="book", help="a preset of specs/models.py, e.g. book or digits")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (default: the preset's)")
    parser.add_argument("--steps", type=int, default=None, help="timed train steps per backend (default: see above)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (Keras: traces and compiles)")
    parser.add_argument("--update-order", choices=UPDATE_ORDERS, default=None, help="default: the preset's")
    parser.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)  # set in the child processes
    args = parser.parse_args()
    if args.preset not in PRESETS[args.model]:
        parser.error(f"unknown preset {args.preset!r} for {args.model}; known: {', '.join(PRESETS[args.model])}")
    if args.update_order is not None and not hasattr(PRESETS[args.model][args.preset], "update_order"):
        parser.error(f"{args.model} has no --update-order")
    if args.steps is None:
        args.steps = default_steps(get_config(args.model, args.preset, batch_size=args.batch_size))
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    if args.backend:
        return measure(args)

    load = os.getloadavg()[0]  # other work on the machine skews every row: the table says how busy it was
    rows = {backend: run_child(args, backend) for backend in BACKENDS}
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    print(f"command: {shlex.join(['python', os.path.relpath(__file__)] + sys.argv[1:])}")
    print(f"machine: {platform.machine()}, {cpus} CPUs ({usable} usable), Python {platform.python_version()}, "
          f"torch {rows['torch']['version']}, TensorFlow {rows['keras']['version']}; "
          f"1-minute load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"threads: torch {rows['torch']['threads']}; TensorFlow {rows['keras']['threads']}")
    print(f"update order: {rows['torch']['update_order']}; steps: {args.warmup} warm-up, then {args.steps} timed\n")
    header = ("backend", "model", "preset", "batch", "image", "steps", "warm-up s", "seconds", "images/s",
              "median step s", "CPU %")
    print("| " + " | ".join(header) + " |")
    numeric = set(header[5:]) | {"batch"}  # right-aligned
    print("|" + "|".join("-" * (len(name) + 1) + (":" if name in numeric else "-") for name in header) + "|")
    for backend, row in rows.items():
        rate = row["batch"] * args.steps / row["seconds"]
        cells = (backend, args.model, args.preset, row["batch"], row["image"], args.steps,
                 f"{row['warmup']:.2f}", f"{row['seconds']:.2f}", f"{rate:,.1f}", f"{row['median_step']:.3f}",
                 f"{100 * row['cpu'] / row['seconds']:.0f}")
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    ratio = rows["torch"]["seconds"] / rows["keras"]["seconds"]
    median_ratio = rows["torch"]["median_step"] / rows["keras"]["median_step"]
    print(f"\nkeras/torch images/s: {ratio:.2f} (from the median step: {median_ratio:.2f})")
    for backend, row in rows.items():
        if not row["finite"]:
            print(f"warning: a {backend} loss is not finite after the timed steps", file=sys.stderr)


if __name__ == "__main__":
    main()
