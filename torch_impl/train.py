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
from specs.models import config_from_dict
from specs.runs import Run, RunError, check_resumable, checkpoint_meta, fixed_noise
from torch_impl import dcgan, wgan_gp
from torch_impl.data import batches
from torch_impl.loop import Callback, all_finite

BACKEND = "torch"
CHECKPOINT = "checkpoint.pt"
TRAINERS = {"dcgan": dcgan.DCGAN, "wgan_gp": wgan_gp.WGANGP}

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


def generate(trainer, z: np.ndarray) -> np.ndarray:
    """Images in [-1, 1] from the generator in inference mode, as numpy (N, H, W, C)."""
    trainer.generator.eval()
    with torch.no_grad():
        images = trainer.generator(torch.from_numpy(z).to(next(trainer.parameters()).dtype))
    trainer.generator.train()
    return images.permute(0, 2, 3, 1).cpu().numpy()


class RunOutputs(Callback):
    """After every epoch: a sample grid from fixed noise, a row of losses.csv, TensorBoard scalars, a checkpoint.
    After every batch: stop at a NaN or infinite loss, keeping the last good checkpoint."""

    def __init__(self, run: Run, model: str, fixed_z: np.ndarray, steps_per_epoch: int):
        self.run, self.model_name, self.fixed_z, self.steps_per_epoch = run, model, fixed_z, steps_per_epoch
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
        self.run.save_samples(epoch, generate(self.model, self.fixed_z))
        self.run.log_epoch(epoch, step, logs)
        for name, value in logs.items():
            self.writer.add_scalar(f"epoch_{name}", value, epoch)
        meta = checkpoint_meta(BACKEND, self.model_name, self.model.config, epoch, step)
        save_checkpoint(self.model, self.run.checkpoint, meta)

    def on_train_end(self, logs=None):
        self.writer.close()


# ---------------------------------------------------------------------------------------------------- Commands


def train(model: str, config, spec: DatasetSpec, out: Path, seed: int, resume: bool, verbose: bool) -> int:
    run = Run(out, CHECKPOINT)
    run.prepare(resume)
    data = spec.load()
    steps_per_epoch = len(spec.batch_order(0, len(data.labels), config.batch_size))
    torch.manual_seed(seed)
    trainer = TRAINERS[model](config, seed=seed)
    first_epoch = 0
    if resume:
        state = load_checkpoint(run.checkpoint)
        check_resumable(state["meta"], BACKEND, model, config)
        restore(trainer, state)
        first_epoch = state["meta"]["epoch"] + 1
    outputs = RunOutputs(run, model, fixed_noise(seed, 64, config.latent_dim), steps_per_epoch)
    trainer.fit(lambda epoch: batches(data, spec, config.batch_size, epoch), epochs=config.epochs,
                initial_epoch=first_epoch, callbacks=[outputs], verbose=int(verbose), steps_per_epoch=steps_per_epoch)
    if outputs.diverged is not None:
        print(f"gan-{BACKEND}: training stopped, a loss is not finite at {outputs.diverged}; the last good "
              f"checkpoint is kept in {run.checkpoint}", file=sys.stderr)
        return 1
    print(f"gan-{BACKEND}: trained to epoch {config.epochs}; samples, losses.csv and {CHECKPOINT} in {out}")
    return 0


def sample(model: str, checkpoint: Path, out: Path, num: int, seed: int) -> int:
    path = checkpoint / CHECKPOINT if checkpoint.is_dir() else checkpoint
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}; pass a run folder of gan-{BACKEND} or its {CHECKPOINT}")
    state = load_checkpoint(path)
    if state["meta"]["model"] != model:
        raise RunError(f"{path} holds a {state['meta']['model']} model, not {model}")
    config = config_from_dict(model, state["meta"]["config"])
    trainer = TRAINERS[model](config)
    trainer.load_state_dict(state["networks"])
    save_grid(to_uint8(generate(trainer, fixed_noise(seed, num, config.latent_dim))), out)
    print(f"gan-{BACKEND}: {num} samples from {path} written to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, BACKEND, train, sample)


if __name__ == "__main__":
    sys.exit(main())
