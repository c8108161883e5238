"""A training run's folder, framework-free: what every run writes, in the same form for both backends.

  <out>/samples/epoch_0001.png   a grid from the same fixed noise after every epoch
  <out>/losses.csv, losses.png   one row per epoch: epoch, step, and the trainer's metrics (means over the epoch)
  <out>/tensorboard/             event files, written by each backend's own writer
  <out>/checkpoint.pt | .npz     the training checkpoint: networks, optimisers, epoch, step and RNG state
  <out>/generator.pt, ...        each network in its framework's own format (torch_impl/checkpoint.py,
  <out>/generator.keras, ...     keras_impl/checkpoint.py), rewritten with every checkpoint
  <out>/checkpoints/epoch_0007.pt | .npz   with --keep-checkpoints N > 1: the training checkpoints of the last N
                                 epochs
A run refuses to start where it would overwrite another run's checkpoint (unless resuming it), checks that it
can write its folder before it reads any data (creating nothing), and that the disk has room for what it will write
before training starts. Every file but TensorBoard's is written atomically: a run killed at any moment leaves
whole files (and at most stale temp files, which the next run in the folder removes), and a failed write keeps the
last checkpoint. TensorBoard's event files are appended to; its reader skips a record cut short by a kill.
Ctrl-C (SIGINT) waits for an epoch's files to be written, then stops the run with `Interrupted`: where it stopped,
the last checkpoint and the command that continues it (exit status 130). A run that stops before its first
checkpoint (a NaN, Ctrl-C) leaves no folder behind, so the next run there starts clean.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import io
import logging
import math
import os
import shutil
import signal
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specs.datasets import Cached, DatasetSpec, to_uint8
from specs.images import PICTURE_FORMATS, TEMP_SUFFIX, picture_format, save_grid, write_atomically
from specs.models import ConfigError, config_from_dict

CHECKPOINT_BACKENDS = {"checkpoint.pt": "torch", "checkpoint.npz": "keras"}  # which backend writes which file
BACKEND_CHECKPOINTS = {backend: name for name, backend in CHECKPOINT_BACKENDS.items()}
SPACE_SAFETY = 1.5  # free space asked for, as a multiple of the estimate of what a run writes
log = logging.getLogger(__name__)


class RunError(Exception):
    """A run cannot start or continue as asked; the message says what to do (CLIs print it and exit 2)."""


class Interrupted(Exception):
    """Ctrl-C stopped training: where, and which epoch the last checkpoint holds (0: none). The command line adds
    the command that continues the run and exits with status 130."""

    def __init__(self, epoch: int, step: int, checkpoint_epoch: int):
        self.epoch, self.step, self.checkpoint_epoch = epoch, step, checkpoint_epoch
        kept = (f"the last checkpoint is epoch {checkpoint_epoch}" if checkpoint_epoch else
                "no epoch finished, so no checkpoint was written")
        super().__init__(f"interrupted at epoch {epoch}, step {step}; {kept}")


def all_finite(logs: dict) -> bool:
    """True when no logged value is NaN or infinite: the runs' stop condition, the same in both backends."""
    return all(math.isfinite(float(value)) for value in logs.values())


def fixed_noise(seed: int, count: int, latent_dim: int, distribution: str = "normal") -> np.ndarray:
    """The z behind every sample grid: float32 (count, latent_dim) from numpy, so both backends draw the same; N(0, 1),
    or U(-1, 1) for a model whose z is uniform."""
    rng = np.random.default_rng([seed, latent_dim])
    if distribution == "uniform":
        return rng.uniform(-1.0, 1.0, (count, latent_dim)).astype(np.float32)
    return rng.standard_normal((count, latent_dim)).astype(np.float32)


@dataclass(frozen=True)
class SampleInputs:
    """What a sample grid is generated from: the same numbers in both backends."""

    z: np.ndarray  # float32 (N, latent_dim)
    one_hot: np.ndarray | None  # float32 (N, K) for a conditional model, else None
    rows: int | None  # grid rows: one per class for a conditional model's grid of every class


def sample_inputs(config, seed: int, count: int = 64, label: int | None = None, columns: int = 8) -> SampleInputs:
    """Fixed noise; for a conditional model, one row per class (the same z in every row) or `count` of one class."""
    if not config.conditional:
        distribution = getattr(config, "latent_distribution", "normal")
        return SampleInputs(fixed_noise(seed, count, config.latent_dim, distribution), None, None)
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


def sample_request(meta: dict, config, num: int, seed: int, label: str | None) -> SampleInputs:
    """The inputs of the grid that `sample` asks for, from a checkpoint's meta and configuration."""
    if label is not None and not config.conditional:
        raise RunError(f"--label needs a conditional model (cgan); {meta['model']} draws no chosen class")
    if label is not None:
        label = resolve_label(label, meta["data"]["class_names"])
    return sample_inputs(config, seed, num, label)


@contextlib.contextmanager
def building(config):
    """Around building a trainer from a valid configuration: what fails there is the networks' size (an allocation
    the machine cannot make, a shape the framework cannot hold), which becomes a RunError saying so."""
    try:
        yield
    except (MemoryError, RuntimeError, ValueError, TypeError, OverflowError) as error:
        raise too_big(config, error) from None
    except Exception as error:
        if type(error).__name__ not in ("ResourceExhaustedError", "OutOfMemoryError"):  # TensorFlow's, torch's
            raise
        raise too_big(config, error) from None


def too_big(config, error: Exception) -> RunError:
    sizes = f"width {config.width}, latent_dim {config.latent_dim}, image_size {config.image_size}"
    return RunError(f"cannot build networks of this size ({sizes}): {short(str(error).splitlines()[0], 120)}; "
                    "lower --width, --latent-dim or --image-size")


def check_picture_out(out: Path) -> None:
    """Before `sample` generates anything: RunError unless `out` names a file it can write in a format it knows
    (by its extension) and that is a plain file or nothing yet (never a folder, a device or a pipe)."""
    if out.is_dir():
        raise RunError(f"--out {out} is a folder; name a file in it, e.g. {out / 'samples.png'}")
    if picture_format(out) is None:
        known = ", ".join(PICTURE_FORMATS)
        raise RunError(f"--out {out}: the extension names the format, and {out.suffix or 'none'} is not one this "
                       f"can write; use one of {known}")
    if out.exists() and not out.is_file():
        raise RunError(f"--out {out} exists and is not a regular file (a device, pipe or socket); name a file")
    try:
        check_writable(out.parent)
    except RunError:
        raise RunError(f"cannot write --out {out}: its folder {out.parent} cannot be written; choose another --out"
                       ) from None


def checkpoint_model(meta: dict, model: str):
    """The configuration of a checkpoint that must hold `model`; RunError naming the model it holds otherwise."""
    if meta.get("model") != model:
        found = meta.get("model")
        raise RunError(f"the checkpoint holds a {found} model, not {model}; name it as {found}: "
                       f"`sample {found} --checkpoint ...`, `eval {found} --checkpoint ...`")
    return checkpoint_config(meta, model)


def checkpoint_meta(backend: str, model: str, config, epoch: int, step: int, data: dict,
                    precision: str = "float32") -> dict:
    """What a checkpoint says about itself besides its tensors; `data`: `data_record`'s; `precision`: what the
    layers computed in (the tensors are float32 in every precision, so a run may resume in another)."""
    meta = {"backend": backend, "model": model, "config": dataclasses.asdict(config), "epoch": epoch, "step": step}
    return meta | {"data": data, "precision": precision}


# ---------------------------------------------------------------------------------------------- A run's data


DATA_CHOICES = ("dataset", "seed", "class_names", "attribute", "alpha", "fit")  # resuming needs the same
DATA_IDENTITY = ("images", "digest", "classes")  # Cached.identity: resuming needs the same pixels and labels


def data_record(spec: DatasetSpec, data: Cached) -> dict:
    """What a checkpoint remembers of its data: the choices that read it (and its path, so that `eval` finds it
    again) and its identity (image count, digests of pixels and labels per class)."""
    path = str(Path(spec.path).expanduser().resolve()) if spec.path else None
    record = {"dataset": spec.name, "seed": spec.seed, "class_names": list(data.class_names), "path": path,
              "attribute": spec.attribute if spec.name == "celeba" else None, "alpha": spec.alpha, "fit": spec.fit}
    return record | dict(data.identity)


def report_data(spec: DatasetSpec, data: Cached) -> None:
    """The lines a run starts with: what data it found, and what decoding changed (when anything was)."""
    log.info("data: %s", spec.describe(data))
    if data.note:
        log.warning("note: %s, %s", spec.name, data.note)


def data_changes(old: dict, new: dict) -> str:
    """How the data differ from what a checkpoint remembers: '' when they are the same (or the checkpoint
    predates the identity), else e.g. 'images: 30 -> 71; class cat: 10 -> 51 images; class dog: other pixels'."""
    if "digest" not in old or old.get("digest") == new.get("digest"):
        return ""
    parts = [f"images: {old.get('images')} -> {new.get('images')}"] if old.get("images") != new.get("images") else []
    old_classes, new_classes = old.get("classes") or {}, new.get("classes") or {}
    for name in dict.fromkeys([*old_classes, *new_classes]):
        before, after = old_classes.get(name), new_classes.get(name)
        if before is None or after is None:
            parts.append(f"class {name}: {'new' if before is None else 'gone'}")
        elif before[0] != after[0]:
            parts.append(f"class {name}: {before[0]} -> {after[0]} images")
        elif before[1] != after[1]:
            parts.append(f"class {name}: {after[0]} images, other pixels")
    return "; ".join(parts) or "the order of the images changed"


def check_resumable(meta: dict, backend: str, model: str, config, data: dict) -> None:
    """Refuse a checkpoint of another backend, model, configuration or data set (the number of epochs may grow)."""
    if meta.get("backend") != backend:
        found = meta.get("backend")
        raise RunError(f"the checkpoint was written by the {found} backend, not {backend}; resume it with "
                       f"gan-{found}, or {convert_advice('CHECKPOINT', backend, 'PATH')}")
    if meta.get("model") != model:
        raise RunError(f"the checkpoint holds a {meta.get('model')} model, not {model}; resume it with "
                       f"gan-{backend} train {meta.get('model')} --resume, or start a new run in another --out")
    recorded = dataclasses.asdict(checkpoint_config(meta, model))  # fields added since read their defaults
    changed = differences(recorded, dataclasses.asdict(config), ignore=("epochs",))
    if changed:
        raise RunError(f"the checkpoint was trained with another configuration ({changed}); "
                       "pass the flags it was trained with, or start a new run in another --out")
    old = meta.get("data") or {}
    changed = differences(old, data, keys=[key for key in DATA_CHOICES if key in old or key in ("dataset", "seed")])
    if changed:
        raise RunError(f"the checkpoint was trained on other data ({changed}); pass the flags it was trained with "
                       "(--dataset, --seed, --attribute, --alpha, --fit), or start a new run in another --out")
    changed = data_changes(old, data)
    if changed:
        where = f" in {data['path']}" if data.get("path") else ""
        raise RunError(f"the images{where} changed since the checkpoint was written ({changed}); resume only on the "
                       "data it was trained on, or start a new run in another --out")


def differences(old: dict, new: dict, ignore: tuple[str, ...] = (), keys: list[str] | None = None) -> str:
    """'key: old -> new, ...' for every key (of both, or of `keys`) whose value differs (a key missing on one side
    reads None)."""
    keys = [key for key in (keys if keys is not None else {**old, **new}) if key not in ignore and
            old.get(key) != new.get(key)]
    return ", ".join(f"{key}: {short(old.get(key))} -> {short(new.get(key))}" for key in keys)


def short(value: object, limit: int = 60) -> str:
    """A value on one line of at most `limit` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def checkpoint_config(meta: dict, model: str):
    """The configuration a checkpoint records, rebuilt; RunError when this version cannot build it."""
    try:
        return config_from_dict(model, meta["config"])
    except (TypeError, KeyError, ConfigError) as error:
        raise RunError(f"the checkpoint's {model} configuration does not fit this version ({short(error, 160)}); "
                       "use the version that wrote it, or train again") from None


# ------------------------------------------------------------------------------------ Checkpoints of a backend


def checkpoint_backend(path: Path) -> str | None:
    """Which backend wrote a checkpoint file, from its contents (both are zip archives); None when neither."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    if "meta.npy" in names:
        return "keras"
    if any(name.endswith("/data.pkl") for name in names):
        return "torch"
    return None


def convert_advice(checkpoint: Path | str, backend: str, out: Path | str) -> str:
    """What turns another backend's checkpoint into one of `backend`: the parity layer's converter."""
    return f"convert it with `gan-parity convert {checkpoint} --to {backend} --out {out}`"


def foreign_checkpoint(path: Path, found: str, backend: str, command: str) -> RunError:
    """The error for a checkpoint of the `found` backend handed to gan-`backend` `command` (train, sample)."""
    converted = path.with_name(BACKEND_CHECKPOINTS[backend])
    return RunError(f"{path} is a checkpoint of the {found} backend, not {backend}; use gan-{found} {command}, "
                    f"or {convert_advice(path, backend, converted)}")


def unreadable_checkpoint(path: Path, backend: str, error: Exception) -> RunError:
    """The error for a checkpoint file that gan-`backend` cannot read: another backend's, or a damaged one."""
    found = checkpoint_backend(path)
    if found is not None and found != backend:
        return foreign_checkpoint(path, found, backend, "train or sample")
    return RunError(f"cannot read the checkpoint {path} ({short(error, 160)}); it is damaged or not a checkpoint "
                    f"of gan-{backend}: point to another one, or start a new run in another --out")


def find_checkpoint(checkpoint: Path, backend: str) -> Path:
    """The checkpoint file that `sample --checkpoint` names (a run folder or the file); RunError saying what is
    there instead, e.g. a run folder of the other backend."""
    name = BACKEND_CHECKPOINTS[backend]
    path = checkpoint / name if checkpoint.is_dir() else checkpoint
    if path.is_file():
        return path
    for other_name, other in CHECKPOINT_BACKENDS.items():
        if other != backend and checkpoint.is_dir() and (checkpoint / other_name).is_file():
            raise foreign_checkpoint(checkpoint / other_name, other, backend, "sample")
    raise RunError(f"no checkpoint at {path}; pass a run folder of gan-{backend} or its {name}")


# ---------------------------------------------------------------------------------------------- Disk, folders


def existing_ancestor(path: Path) -> Path:
    """The path itself when it exists, else its nearest existing parent (a file where a folder should be, too)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(folder: Path) -> None:
    """Prove that `folder` can be created and written, leaving nothing behind: write, fsync and remove a probe
    file in it, or, when it does not exist yet, in a temporary folder made where its first missing part would go."""
    base = existing_ancestor(folder)
    probe_folder = None
    try:
        if not base.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{base} is a file, not a folder")
        if base != Path(os.path.abspath(folder)):
            probe_folder = tempfile.mkdtemp(prefix=".gan-parity-probe-", dir=base)
        descriptor, probe = tempfile.mkstemp(prefix=".gan-parity-probe-", suffix=TEMP_SUFFIX,
                                             dir=probe_folder or base)
        try:
            os.write(descriptor, b"\0" * 4096)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
            os.unlink(probe)
    except OSError as error:
        reason = error.strerror or str(error)
        if probe_folder is None and base.is_dir() and base != Path(os.path.abspath(folder)):
            reason = f"cannot create it in {base} ({reason})"
        raise RunError(f"cannot write to the output folder {folder}: {reason}; "
                       "choose another --out, or make it writable") from None
    finally:
        if probe_folder is not None:
            with contextlib.suppress(OSError):
                os.rmdir(probe_folder)


def space_needed(config, parameter_bytes: int, epochs: int, kept: int = 1) -> int:
    """Bytes a run of `epochs` more epochs may write, estimated from above (before SPACE_SAFETY): the training
    checkpoint, with --keep-checkpoints `kept` > 1 its copies of the last `kept` epochs, and one atomic
    replacement in progress, each the networks' bytes three times (weights, and Adam's two moments per weight);
    the networks in their framework's own files (at most their bytes twice: every network, and the generator once
    more as a whole model); an uncompressed sample grid per epoch, the plot and the logs."""
    checkpoint = 3 * parameter_bytes
    checkpoints = 1 + (kept if kept > 1 else 0) + 1
    grid = len(sample_inputs(config, 0).z) * (config.image_size + 2) ** 2 * config.channels
    networks = 2 * parameter_bytes
    return checkpoints * checkpoint + networks + max(epochs, 0) * (grid + 16 * 1024) + 2 * 1024 * 1024


def size(count: float) -> str:
    """Bytes for people: 512 B, 3.2 MB, 1.5 GB."""
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


@dataclass(frozen=True)
class Run:
    out: Path  # the run's folder
    checkpoint_name: str  # "checkpoint.pt" (torch) or "checkpoint.npz" (Keras)
    keep: int = 1  # training checkpoints kept: the last one, and with keep > 1 those of the last `keep` epochs

    @property
    def checkpoint(self) -> Path:
        return self.out / self.checkpoint_name

    @property
    def kept_checkpoints(self) -> Path:
        return self.out / "checkpoints"

    def kept_checkpoint(self, epoch: int) -> Path:
        """Where --keep-checkpoints keeps the training checkpoint of `epoch` (counted from 0)."""
        return self.kept_checkpoints / f"epoch_{epoch + 1:04d}{Path(self.checkpoint_name).suffix}"

    @property
    def losses_csv(self) -> Path:
        return self.out / "losses.csv"

    @property
    def tensorboard(self) -> Path:
        return self.out / "tensorboard"

    def prepare(self, resume: bool) -> None:
        """Before any data is read: prove the folder writable, refuse to overwrite a checkpoint unless resuming it.
        Creates nothing (the first write creates the folder); removes the temp files of a run killed mid-write."""
        check_writable(self.out)
        foreign = [name for name in CHECKPOINT_BACKENDS if name != self.checkpoint_name and (self.out / name).exists()]
        if foreign and not self.checkpoint.exists():  # never resume, nor overwrite, another backend's run
            backend = CHECKPOINT_BACKENDS[foreign[0]]
            convert = convert_advice(self.out / foreign[0], CHECKPOINT_BACKENDS[self.checkpoint_name], self.checkpoint)
            raise RunError(f"{self.out} holds a run of the {backend} backend ({foreign[0]}); continue it with "
                           f"gan-{backend} train --resume, {convert}, or choose another --out")
        if resume and not self.checkpoint.exists():
            raise RunError(f"nothing to resume: {self.checkpoint} does not exist; run without --resume")
        if not resume and self.checkpoint.exists():
            raise RunError(f"{self.out} already holds a run ({self.checkpoint.name}); pass --resume to continue it, "
                           "or choose another --out")
        self.remove_temp_files()
        if not resume and self.tensorboard.is_dir():  # left by a run that stopped before its first checkpoint
            shutil.rmtree(self.tensorboard, ignore_errors=True)

    def epochs_left(self, first_epoch: int, epochs: int) -> bool:
        """Whether a resumed run has epochs to train: False (said in a line) when the checkpoint is at --epochs
        already; RunError when it is beyond them."""
        if first_epoch > epochs:
            raise RunError(f"the checkpoint is at epoch {first_epoch}, beyond --epochs {epochs}; pass --epochs "
                           f"{first_epoch + 1} or more to train on (sample, eval and export read it as it is)")
        if first_epoch == epochs:
            log.info("nothing to train: the checkpoint in %s is at epoch %d already; pass --epochs %d or more to "
                     "train on", self.out, epochs, epochs + 1)
        return first_epoch < epochs

    def discard_unfinished(self) -> None:
        """After a run that stopped before its first checkpoint: remove what it began (its TensorBoard folder,
        and the run folder when that is left empty), so that nothing half-made stays and the next run starts
        clean."""
        if self.checkpoint.exists():
            return
        shutil.rmtree(self.tensorboard, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.out.rmdir()  # only when empty

    def remove_temp_files(self) -> None:
        """Delete the temp files that a run killed in the middle of an atomic write left behind (never a target)."""
        for folder in (self.out, self.out / "samples", self.kept_checkpoints):
            for path in folder.glob(f".*{TEMP_SUFFIX}"):
                if path.is_dir() and not path.is_symlink():  # save_atomically's temp folder
                    shutil.rmtree(path, ignore_errors=True)
                    continue
                with contextlib.suppress(OSError):
                    path.unlink()

    def keep_checkpoint(self, epoch: int) -> None:
        """With keep > 1: a copy of the checkpoint just written as checkpoints/epoch_XXXX (written atomically; a copy,
        not a link, so that nothing written to checkpoint.pt later can change it), and the kept ones of epochs
        before the last `keep` removed."""
        if self.keep <= 1:
            return

        def copy(handle):
            with open(self.checkpoint, "rb") as source:
                shutil.copyfileobj(source, handle)

        write_atomically(self.kept_checkpoint(epoch), copy)
        for path in self.kept_checkpoints.glob(f"epoch_*{Path(self.checkpoint_name).suffix}"):
            number = path.stem.removeprefix("epoch_")
            if number.isdigit() and int(number) <= epoch + 1 - self.keep:
                path.unlink()

    def check_space(self, config, parameter_bytes: int, epochs: int) -> None:
        """Refuse to start training when the disk lacks room for what `epochs` more epochs write (space_needed)."""
        needed = int(SPACE_SAFETY * space_needed(config, parameter_bytes, epochs, self.keep))
        where = existing_ancestor(self.out)
        free = shutil.disk_usage(where).free
        if free < needed:
            epochs_text = f"{epochs} epoch{'s' * (epochs != 1)}"
            raise RunError(f"not enough free space for the run in {self.out}: it needs about {size(needed)} "
                           f"({epochs_text} of samples and checkpoints), {size(free)} is free there; free some "
                           "space, or choose an --out on another disk")

    @contextlib.contextmanager
    def saving(self):
        """Around an epoch's writes: a failed write (disk full, folder gone) becomes a RunError that says which
        file failed and that the last checkpoint is intact (every write is atomic: a failed one changes nothing);
        Ctrl-C waits until the epoch's files are all written (`sigint_deferred`)."""
        try:
            with sigint_deferred():
                yield
        except OSError as error:
            target = error.filename2 or error.filename or self.out
            kept = (f"the last checkpoint {self.checkpoint} is intact: free some space, then continue with --resume"
                    if self.checkpoint.exists() else "no checkpoint was written yet: free some space and start again")
            raise RunError(f"cannot write {target}: {error.strerror or error}; {kept}") from None

    def diverged_message(self, what: str) -> str:
        """The line a run prints when it stops at a value that is not finite: what, and what is kept."""
        if self.checkpoint.exists():  # resuming it with another learning rate is refused: a new run is needed
            kept = (f"the last good checkpoint is kept in {self.checkpoint}; a lower --learning-rate may help, "
                    "in a new run (another --out)")
        else:
            kept = "no epoch finished, so no checkpoint was written; a lower --learning-rate may help"
        return f"training stopped, {what}; {kept}"

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


@contextlib.contextmanager
def sigint_deferred():
    """Within: Ctrl-C (SIGINT) is remembered instead of raised, and raised as KeyboardInterrupt on leaving, so that
    what is written inside (an epoch's checkpoint, samples and network files) is written whole and together. Only
    in the main thread, where Python handles signals; elsewhere a plain block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


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
