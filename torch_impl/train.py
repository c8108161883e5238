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
    sample_inputs,
    sample_request,
)
from torch_impl import cgan, dcgan, wgan_gp
from torch_impl.data import batches
from torch_impl.loop import Callback

BACKEND = "torch"
CHECKPOINT = "checkpoint.pt"
TRAINERS = {"dcgan": dcgan.DCGAN, "wgan_gp": wgan_gp.WGANGP, "cgan": cgan.CGAN}

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
        raise RunError(f"cannot read the checkpoint {path}: {error}") from None


def restore(trainer, state: dict) -> None:
    trainer.load_state_dict(state["networks"])
    for name, optimizer in optimizers(trainer):
        optimizer.load_state_dict(state["optimizers"][name])
    trainer.rng.set_state(state["rng"]["trainer"])
    torch.set_rng_state(state["rng"]["torch"])


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
        self.writer = SummaryWriter(str(run.tensorboard))

    def on_train_batch_end(self, batch, logs=None):
        if not all_finite(logs):
            self.diverged = f"batch {batch + 1}: " + ", ".join(f"{k}={float(v):.4g}" for k, v in logs.items())
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged is not None:
            return
        step = (epoch + 1) * self.steps_per_epoch
        self.run.save_samples(epoch, generate(self.model, self.inputs), self.inputs.rows)
        self.run.log_epoch(epoch, step, logs)
        for name, value in logs.items():
            self.writer.add_scalar(f"epoch_{name}", value, epoch)
        meta = checkpoint_meta(BACKEND, self.model_name, self.model.config, epoch, step, self.data)
        save_checkpoint(self.model, self.run.checkpoint, meta)

    def on_train_end(self, logs=None):
        self.writer.close()


# ---------------------------------------------------------------------------------------------------- Commands


def train(model: str, config, spec: DatasetSpec, out: Path, seed: int, resume: bool, verbose: bool) -> int:
    run = Run(out, CHECKPOINT)
    run.prepare(resume)
    data = spec.load()
    config = conditioned_on(config, data.num_classes)
    data_info = {"dataset": spec.name, "seed": seed, "class_names": list(data.class_names)}
    steps_per_epoch = len(spec.batch_order(0, len(data.labels), config.batch_size))
    torch.manual_seed(seed)
    trainer = TRAINERS[model](config, seed=seed)
    first_epoch = 0
    if resume:
        state = load_checkpoint(run.checkpoint)
        check_resumable(state["meta"], BACKEND, model, config, data_info)
        restore(trainer, state)
        first_epoch = state["meta"]["epoch"] + 1
    outputs = RunOutputs(run, model, sample_inputs(config, seed), steps_per_epoch, data_info)
    trainer.fit(lambda epoch: batches(data, spec, config.batch_size, epoch, config.conditional), epochs=config.epochs,
                initial_epoch=first_epoch, callbacks=[outputs], verbose=int(verbose), steps_per_epoch=steps_per_epoch)
    if outputs.diverged is not None:
        print(f"gan-{BACKEND}: training stopped, a loss is not finite at {outputs.diverged}; the last good "
              f"checkpoint is kept in {run.checkpoint}", file=sys.stderr)
        return 1
    print(f"gan-{BACKEND}: trained to epoch {config.epochs}; samples, losses.csv and {CHECKPOINT} in {out}")
    return 0


def sample(model: str, checkpoint: Path, out: Path, num: int, seed: int, label: str | None = None) -> int:
    path = checkpoint / CHECKPOINT if checkpoint.is_dir() else checkpoint
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}; pass a run folder of gan-{BACKEND} or its {CHECKPOINT}")
    state = load_checkpoint(path)
    config, inputs = sample_request(state["meta"], model, num, seed, label)
    trainer = TRAINERS[model](config)
    trainer.load_state_dict(state["networks"])
    save_grid(to_uint8(generate(trainer, inputs)), out, inputs.rows)
    print(f"gan-{BACKEND}: {len(inputs.z)} samples from {path} written to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, BACKEND, train, sample)


if __name__ == "__main__":
    sys.exit(main())
