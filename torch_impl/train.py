"""Command line of the PyTorch backend (`gan-torch`, `python -m torch_impl`): train and sample.

Flags and the run folder are shared with keras_impl/train.py (specs/cli.py, specs/runs.py). This file holds what
is PyTorch's own: the checkpoint (torch.save, written atomically), the per-epoch outputs as a callback of the
explicit loop, and TensorBoard through torch.utils.tensorboard.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

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
from torch_impl.data import batches
from torch_impl.distributed import is_chief, on_chief, setup, synchronize
from torch_impl.loop import Callback
from torch_impl.trainers import build_trainer

BACKEND = "torch"
CHECKPOINT = "checkpoint.pt"

# ------------------------------------------------------------------------------------------------- Checkpoints


def optimizers(trainer) -> list[tuple[str, torch.optim.Optimizer]]:
    return [(name, value) for name, value in vars(trainer).items() if isinstance(value, torch.optim.Optimizer)]


def save_checkpoint(trainer, path: Path, meta: dict) -> None:
    """Networks (with BatchNorm statistics), optimisers and both RNG states, in one atomically written file."""
    state = {
        "meta": meta,
        "networks": trainer.state_dict(),
        "optimizers": {name: optimizer.state_dict() for name, optimizer in optimizers(trainer)},
        "rng": {"trainer": trainer.rng.get_state(), "torch": torch.get_rng_state()},
    }
    write_atomically(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, weights_only=True)
    except Exception as error:  # a truncated, foreign or corrupt file
        raise unreadable_checkpoint(path, BACKEND, error) from None


def _load_networks(trainer, networks: dict) -> None:
    try:
        trainer.load_state_dict(networks)
    except RuntimeError as error:  # names or shapes that its configuration does not give
        detail = " ".join(str(error).split())[:160]
        raise RunError(f"the checkpoint's networks do not match this model ({detail})") from None


def restore(trainer, state: dict) -> None:
    _load_networks(trainer, state["networks"])
    for name, optimizer in optimizers(trainer):
        optimizer.load_state_dict(state["optimizers"][name])
    trainer.rng.set_state(state["rng"]["trainer"])
    torch.set_rng_state(state["rng"]["torch"])


def state_finite(trainer) -> bool:
    """Whether every weight, BatchNorm statistic and Adam moment is finite (a checkpoint is written only then)."""
    tensors = list(trainer.state_dict().values())
    for _, optimizer in optimizers(trainer):
        tensors += [value for state in optimizer.state.values() for value in state.values() if torch.is_tensor(value)]
    return all(bool(torch.isfinite(tensor).all()) for tensor in tensors)


def parameter_bytes(trainer) -> int:
    """Bytes of the networks' weights and statistics, from which the disk-space check sizes a checkpoint."""
    return sum(tensor.numel() * tensor.element_size() for tensor in trainer.state_dict().values())


# ------------------------------------------------------------------------------------------------- Run outputs


def generate(trainer, inputs: SampleInputs) -> np.ndarray:
    """Images in [-1, 1] from the generator in inference mode, as numpy (N, H, W, C)."""
    dtype = next(trainer.parameters()).dtype
    arrays = (inputs.z,) if inputs.one_hot is None else (inputs.z, inputs.one_hot)
    trainer.generator.eval()
    with torch.no_grad():
        images = trainer(*(torch.from_numpy(array).to(dtype) for array in arrays))
    trainer.generator.train()
    return images.permute(0, 2, 3, 1).cpu().numpy()


class RunOutputs(Callback):
    """After every epoch: a sample grid from fixed noise, a row of losses.csv, TensorBoard scalars, a checkpoint.
    After every batch: stop at a NaN or infinite loss, keeping the last good checkpoint."""

    def __init__(self, run: Run, model: str, inputs: SampleInputs, steps_per_epoch: int, data: dict):
        self.run, self.model_name, self.inputs, self.data = run, model, inputs, data
        self.steps_per_epoch = steps_per_epoch
        self.diverged: str | None = None
        self.writer = SummaryWriter(str(run.tensorboard)) if is_chief() else None

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
            for name, value in logs.items():
                self.writer.add_scalar(f"epoch_{name}", value, epoch)
            meta = checkpoint_meta(BACKEND, self.model_name, self.model.config, epoch, step, self.data)
            save_checkpoint(self.model, self.run.checkpoint, meta)

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()


# ---------------------------------------------------------------------------------------------------- Commands


def train(model: str, config, spec: DatasetSpec, out: Path, seed: int, resume: bool, verbose: bool) -> int:
    setup()  # one process, or one of the processes that torchrun started
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
    trainer.fit(lambda epoch: batches(data, spec, config.batch_size, epoch, config.conditional), epochs=config.epochs,
                initial_epoch=first_epoch, callbacks=[outputs], verbose=int(verbose and is_chief()),
                steps_per_epoch=steps_per_epoch)
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
    _load_networks(trainer, state["networks"])
    return trainer, state["meta"], path


def sample(model: str, checkpoint: Path, out: Path, num: int, seed: int, label: str | None = None) -> int:
    trainer, meta, path = load_trained(model, checkpoint)
    inputs = sample_request(meta, trainer.config, num, seed, label)
    save_grid(to_uint8(generate(trainer, inputs)), out, inputs.rows)
    print(f"gan-{BACKEND}: {len(inputs.z)} samples from {path} written to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from torch_impl.evaluate import evaluate  # evaluate.py reads checkpoints with this module's functions

    return cli.main(argv, BACKEND, train, sample, evaluate)


if __name__ == "__main__":
    sys.exit(main())
