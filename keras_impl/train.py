"""Command line of the Keras backend (`gan-keras`, `python -m keras_impl`): train and sample.

Flags and the run folder are shared with torch_impl/train.py (specs/cli.py, specs/runs.py). This file holds what
is Keras's own: the checkpoint (every variable as a numpy array in one .npz, written atomically), the per-epoch
outputs as a `keras.callbacks.Callback` of `fit`, and TensorBoard through Keras's own callback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np

from keras_impl.data import batches
from keras_impl.distributed import is_chief, on_chief, setup, synchronize
from keras_impl.trainers import build_trainer
from specs import cli
from specs.datasets import DatasetSpec, to_uint8
from specs.images import save_grid, write_atomically
from specs.models import conditioned_on
from specs.runs import (
    Run,
    RunError,
    SampleInputs,
    all_finite,
    check_resumable,
    checkpoint_meta,
    checkpoint_model,
    find_checkpoint,
    sample_inputs,
    sample_request,
    unreadable_checkpoint,
)

BACKEND = "keras"
CHECKPOINT = "checkpoint.npz"

# ------------------------------------------------------------------------------------------------- Checkpoints


def optimizers(trainer) -> list[tuple[str, keras.optimizers.Optimizer]]:
    return [(name, value) for name, value in vars(trainer).items() if isinstance(value, keras.optimizers.Optimizer)]


def save_checkpoint(trainer, path: Path, meta: dict) -> None:
    """Networks (with BatchNorm statistics), optimisers and RNG states (seed generators), in one atomic file."""
    arrays = {"meta": np.array(json.dumps(meta))}
    arrays |= {f"networks/{i:04d}": variable.numpy() for i, variable in enumerate(trainer.variables)}
    for name, optimizer in optimizers(trainer):
        arrays |= {f"optimizers/{name}/{i:04d}": variable.numpy() for i, variable in enumerate(optimizer.variables)}
    write_atomically(path, lambda handle: np.savez(handle, **arrays))


def load_checkpoint(path: Path) -> dict:
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as error:  # a truncated, foreign or corrupt file
        raise unreadable_checkpoint(path, BACKEND, error) from None
    return {"meta": meta, "arrays": arrays}


def _assign(variables, arrays: dict, prefix: str) -> None:
    keys = sorted(key for key in arrays if key.startswith(prefix))
    if len(keys) != len(variables) or any(arrays[k].shape != tuple(v.shape) for k, v in zip(keys, variables)):
        raise RunError(f"the checkpoint's {prefix.rstrip('/')} do not match this model")
    for key, variable in zip(keys, variables):
        variable.assign(arrays[key])


def restore(trainer, state: dict) -> None:
    _assign(trainer.variables, state["arrays"], "networks/")
    for name, optimizer in optimizers(trainer):
        _assign(optimizer.variables, state["arrays"], f"optimizers/{name}/")


def state_finite(trainer) -> bool:
    """Whether every weight, BatchNorm statistic and Adam moment is finite (a checkpoint is written only then)."""
    variables = list(trainer.variables)
    for _, optimizer in optimizers(trainer):
        variables += list(optimizer.variables)
    return all(bool(np.isfinite(variable.numpy()).all()) for variable in variables)


def parameter_bytes(trainer) -> int:
    """Bytes of the networks' weights and statistics, from which the disk-space check sizes a checkpoint."""
    return sum(int(np.prod(variable.shape)) * np.dtype(variable.dtype).itemsize for variable in trainer.variables)


# ------------------------------------------------------------------------------------------------- Run outputs


def generate(trainer, inputs: SampleInputs) -> np.ndarray:
    """Images in [-1, 1] from the generator in inference mode, as numpy (N, H, W, C)."""
    arrays = (inputs.z,) if inputs.one_hot is None else (inputs.z, inputs.one_hot)
    return keras.ops.convert_to_numpy(trainer(*arrays, training=False))


class RunOutputs(keras.callbacks.Callback):
    """After every epoch: a sample grid from fixed noise, a row of losses.csv, TensorBoard scalars, a checkpoint.
    After every batch: stop at a NaN or infinite loss, keeping the last good checkpoint."""

    def __init__(self, run: Run, model: str, inputs: SampleInputs, steps_per_epoch: int, data: dict):
        super().__init__()
        self.run, self.model_name, self.inputs, self.data = run, model, inputs, data
        self.steps_per_epoch = steps_per_epoch
        self.diverged: str | None = None

    def on_train_batch_end(self, batch, logs=None):
        if not all_finite(logs):
            values = ", ".join(f"{k}={float(v):.4g}" for k, v in logs.items())
            self.diverged = f"a loss is not finite at batch {batch + 1}: {values}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged is None and not state_finite(self.model):  # a last update can break weights silently
            self.diverged = f"a weight or optimiser moment is not finite after epoch {epoch + 1}"
            self.model.stop_training = True
        if self.diverged is not None or not is_chief():  # the chief alone writes the run folder
            return
        step = (epoch + 1) * self.steps_per_epoch
        with self.run.saving():  # a failed write (disk full) ends the run with the last checkpoint intact
            self.run.save_samples(epoch, generate(self.model, self.inputs), self.inputs.rows)
            self.run.log_epoch(epoch, step, logs)
            meta = checkpoint_meta(BACKEND, self.model_name, self.model.config, epoch, step, self.data)
            save_checkpoint(self.model, self.run.checkpoint, meta)


# ---------------------------------------------------------------------------------------------------- Commands


def train(model: str, config, spec: DatasetSpec, out: Path, seed: int, resume: bool, verbose: bool,
          strategy: str | None = None) -> int:
    setup(strategy)  # one device, or the replicas of a tf.distribute strategy
    run = Run(out, CHECKPOINT)
    on_chief(run.prepare, resume)
    data = spec.load()
    config = conditioned_on(config, data.num_classes)
    data_info = {"dataset": spec.name, "seed": seed, "class_names": list(data.class_names)}
    steps_per_epoch = len(spec.batch_order(0, len(data.labels), config.batch_size))
    trainer = build_trainer(model, config, seed)
    synchronize(trainer)
    first_epoch = 0
    if resume:
        state = on_chief(load_checkpoint, run.checkpoint)
        check_resumable(state["meta"], BACKEND, model, config, data_info)
        restore(trainer, state)
        first_epoch = state["meta"]["epoch"] + 1
    on_chief(run.check_space, config, parameter_bytes(trainer), config.epochs - first_epoch)
    outputs = RunOutputs(run, model, sample_inputs(config, seed), steps_per_epoch, data_info)
    tensorboard = [keras.callbacks.TensorBoard(str(run.tensorboard), write_graph=False)] if is_chief() else []
    dataset = batches(data, spec, config.batch_size, first_epoch, config.epochs - first_epoch, config.conditional)
    trainer.fit(dataset, epochs=config.epochs,
                initial_epoch=first_epoch, callbacks=[outputs, *tensorboard], verbose=int(verbose and is_chief()),
                steps_per_epoch=steps_per_epoch, shuffle=False)
    if outputs.diverged is not None:
        if is_chief():  # the others stop alike, with nothing of their own to report
            print(f"gan-{BACKEND}: {run.diverged_message(outputs.diverged)}", file=sys.stderr)
        return 1
    if is_chief():
        print(f"gan-{BACKEND}: trained to epoch {config.epochs}; samples, losses.csv and {CHECKPOINT} in {out}")
    return 0


def load_trained(model: str, checkpoint: Path):
    """The trainer of a run folder or checkpoint file, its networks restored (no optimisers), and the checkpoint's
    meta and file: what `sample` and `eval` draw from."""
    path = find_checkpoint(checkpoint, BACKEND)
    state = load_checkpoint(path)
    trainer = build_trainer(model, checkpoint_model(state["meta"], model), state["meta"]["data"]["seed"])
    _assign(trainer.variables, state["arrays"], "networks/")
    return trainer, state["meta"], path


def sample(model: str, checkpoint: Path, out: Path, num: int, seed: int, label: str | None = None) -> int:
    trainer, meta, path = load_trained(model, checkpoint)
    inputs = sample_request(meta, trainer.config, num, seed, label)
    save_grid(to_uint8(generate(trainer, inputs)), out, inputs.rows)
    print(f"gan-{BACKEND}: {len(inputs.z)} samples from {path} written to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from keras_impl.evaluate import evaluate  # evaluate.py reads checkpoints with this module's functions

    return cli.main(argv, BACKEND, train, sample, evaluate)


if __name__ == "__main__":
    sys.exit(main())
