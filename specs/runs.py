"""A training run's folder, framework-free: what every run writes, in the same form for both backends.

  <out>/samples/epoch_0001.png   a grid from the same fixed noise after every epoch
  <out>/losses.csv, losses.png   one row per epoch: epoch, step, and the trainer's metrics (means over the epoch)
  <out>/tensorboard/             event files, written by each backend's own writer
  <out>/checkpoint.pt | .npz     networks, optimisers, epoch, step and RNG state, written atomically
A run refuses to start where it would overwrite another run's checkpoint (unless resuming it), and checks that
it can write its folder before any training starts.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specs.datasets import to_uint8
from specs.images import save_grid, write_atomically
from specs.models import config_from_dict

CHECKPOINT_BACKENDS = {"checkpoint.pt": "torch", "checkpoint.npz": "keras"}  # which backend writes which file


class RunError(Exception):
    """A run cannot start or continue as asked; the message says what to do (CLIs print it and exit 2)."""


def all_finite(logs: dict) -> bool:
    """True when no logged value is NaN or infinite: the runs' stop condition, the same in both backends."""
    return all(math.isfinite(float(value)) for value in logs.values())


def fixed_noise(seed: int, count: int, latent_dim: int) -> np.ndarray:
    """The z behind every sample grid: float32 (count, latent_dim) from numpy, so both backends draw the same."""
    return np.random.default_rng([seed, latent_dim]).standard_normal((count, latent_dim)).astype(np.float32)


@dataclass(frozen=True)
class SampleInputs:
    """What a sample grid is generated from: the same numbers in both backends."""

    z: np.ndarray  # float32 (N, latent_dim)
    one_hot: np.ndarray | None  # float32 (N, K) for a conditional model, else None
    rows: int | None  # grid rows: one per class for a conditional model's grid of every class


def sample_inputs(config, seed: int, count: int = 64, label: int | None = None, columns: int = 8) -> SampleInputs:
    """Fixed noise; for a conditional model, one row per class (the same z in every row) or `count` of one class."""
    if not config.conditional:
        return SampleInputs(fixed_noise(seed, count, config.latent_dim), None, None)
    classes, columns = (list(range(config.num_classes)), columns) if label is None else ([label], count)
    z = np.tile(fixed_noise(seed, columns, config.latent_dim), (len(classes), 1))
    one_hot = np.eye(config.num_classes, dtype=np.float32)[np.repeat(classes, columns)]
    return SampleInputs(z, one_hot, len(classes) if label is None else None)


def resolve_label(label: str, class_names: list[str]) -> int:
    """A class given by index or by name; RunError listing the classes otherwise."""
    if label in class_names:
        return class_names.index(label)
    if label.lstrip("-").isdigit() and 0 <= int(label) < len(class_names):
        return int(label)
    listing = ", ".join(f"{i} ({name})" for i, name in enumerate(class_names))
    raise RunError(f"no class {label!r}: this model knows {len(class_names)} classes: {listing}")


def sample_request(meta: dict, model: str, num: int, seed: int, label: str | None):
    """The configuration a checkpoint was trained with, and the inputs of the grid that `sample` asks for."""
    if meta["model"] != model:
        raise RunError(f"the checkpoint holds a {meta['model']} model, not {model}")
    config = config_from_dict(model, meta["config"])
    if label is not None and not config.conditional:
        raise RunError(f"--label needs a conditional model (cgan); {model} draws no chosen class")
    if label is not None:
        label = resolve_label(label, meta["data"]["class_names"])
    return config, sample_inputs(config, seed, num, label)


def checkpoint_meta(backend: str, model: str, config, epoch: int, step: int, data: dict) -> dict:
    """What a checkpoint says about itself besides its tensors; `data`: dataset, seed and class names."""
    meta = {"backend": backend, "model": model, "config": dataclasses.asdict(config), "epoch": epoch, "step": step}
    return meta | {"data": data}


def check_resumable(meta: dict, backend: str, model: str, config, data: dict) -> None:
    """Refuse a checkpoint of another backend, model, configuration or data set (the number of epochs may grow)."""
    if meta["backend"] != backend:
        raise RunError(f"the checkpoint was written by the {meta['backend']} backend, not {backend}; "
                       f"convert it with `gan-parity convert` or resume with gan-{meta['backend']}")
    if meta["model"] != model:
        raise RunError(f"the checkpoint holds a {meta['model']} model, not {model}")
    ours = {key: value for key, value in dataclasses.asdict(config).items() if key != "epochs"}
    theirs = {key: value for key, value in meta["config"].items() if key != "epochs"}
    if ours != theirs:
        changed = [f"{key}: {theirs.get(key)} -> {value}" for key, value in ours.items() if value != theirs.get(key)]
        raise RunError(f"the checkpoint was trained with another configuration ({', '.join(changed)}); "
                       "pass the flags it was trained with, or start a new run in another --out")
    if meta.get("data") != data:
        raise RunError(f"the checkpoint was trained on {meta.get('data')}, not {data}; pass the --dataset and "
                       "--seed it was trained with, or start a new run in another --out")


@dataclass(frozen=True)
class Run:
    out: Path  # the run's folder
    checkpoint_name: str  # "checkpoint.pt" (torch) or "checkpoint.npz" (Keras)

    @property
    def checkpoint(self) -> Path:
        return self.out / self.checkpoint_name

    @property
    def losses_csv(self) -> Path:
        return self.out / "losses.csv"

    @property
    def tensorboard(self) -> Path:
        return self.out / "tensorboard"

    def prepare(self, resume: bool) -> None:
        """Create the folder, prove it writable, and refuse to overwrite a checkpoint unless resuming it."""
        try:
            (self.out / "samples").mkdir(parents=True, exist_ok=True)
            write_atomically(self.out / ".write-test", lambda handle: handle.write(b"ok"))
            os.unlink(self.out / ".write-test")
        except OSError as error:
            raise RunError(f"cannot write to the output folder {self.out}: {error.strerror or error}; "
                           "choose another --out or free some space") from None
        foreign = [name for name in CHECKPOINT_BACKENDS if name != self.checkpoint_name and (self.out / name).exists()]
        if foreign and not self.checkpoint.exists():  # never resume, nor overwrite, another backend's run
            backend = CHECKPOINT_BACKENDS[foreign[0]]
            raise RunError(f"{self.out} holds a run of the {backend} backend ({foreign[0]}); continue it with "
                           f"gan-{backend} train --resume, or choose another --out")
        if resume and not self.checkpoint.exists():
            raise RunError(f"nothing to resume: {self.checkpoint} does not exist; run without --resume")
        if not resume and self.checkpoint.exists():
            raise RunError(f"{self.out} already holds a run ({self.checkpoint.name}); pass --resume to continue it, "
                           "or choose another --out")

    def save_samples(self, epoch: int, images: np.ndarray, rows: int | None = None) -> Path:
        """Write generated images in [-1, 1], (N, H, W, C), as samples/epoch_XXXX.png (epoch counted from 1)."""
        return save_grid(to_uint8(images), self.out / "samples" / f"epoch_{epoch + 1:04d}.png", rows)

    def read_log(self) -> list[dict]:
        if not self.losses_csv.exists():
            return []
        with open(self.losses_csv, newline="") as handle:
            return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]

    def log_epoch(self, epoch: int, step: int, logs: dict) -> None:
        """Append one epoch's row (dropping rows of later epochs left by an interrupted run); redraw the plot."""
        rows = [row for row in self.read_log() if row["epoch"] < epoch + 1]
        rows.append({"epoch": epoch + 1, "step": step} | {key: float(logs[key]) for key in sorted(logs)})
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[-1]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: int(v) if key in ("epoch", "step") else repr(v) for key, v in row.items()})
        write_atomically(self.losses_csv, lambda handle: handle.write(text.getvalue().encode()))
        plot_losses(rows, self.out / "losses.png")


def plot_losses(rows: list[dict], path: Path) -> None:
    """Each metric against the epoch, one panel per metric, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    metrics = [key for key in rows[0] if key not in ("epoch", "step")]
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 2.8), squeeze=False)
    epochs = [row["epoch"] for row in rows]
    for axis, metric in zip(axes[0], metrics):
        values = [row[metric] if math.isfinite(row[metric]) else float("nan") for row in rows]
        axis.plot(epochs, values, marker="o" if len(rows) < 30 else None)
        axis.set_title(metric)
        axis.set_xlabel("epoch")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    write_atomically(path, lambda handle: handle.write(buffer.getvalue()))
