"""Checkpoints and network files of the PyTorch backend (mirror: keras_impl/checkpoint.py).

What a run folder holds, written by `save_run` after every epoch (each file atomically):
  checkpoint.pt     the training checkpoint, `torch.save` of {"meta", "networks": the trainer's state_dict,
                    "optimizers": each Adam's state_dict (with its loss scale under float16), "rng": the trainer's
                    generator, torch's global state and, on a GPU, its CUDA generator's}; float32 in every precision,
                    read onto the CPU (map_location) and copied to the trainer's device, so it resumes on any device;
                    `--resume`, `sample`, `eval`, `export` and `gan-parity convert` read it
  generator.pt      each network's own plain state_dict (keys as the network names them: no prefix), which
  discriminator.pt  `torch.load(path, weights_only=True)` reads and `Generator(config).load_state_dict` accepts
  (critic.pt)       as it is, for WGAN-GP and CGAN (a published run's networks: torch_impl.published
                    NETWORKS[config.architecture], generator and discriminator)
`export_generator` writes the generator as a standalone program: `torch.export` (a .pt2 that
`torch.export.load(path).module()` runs without this project), or ONNX where onnx and onnxscript are installed.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from torch import nn

from specs.images import save_atomically, write_atomically
from specs.runs import Run, RunError, SampleInputs, checkpoint_model, find_checkpoint, unreadable_checkpoint
from torch_impl.cgan import generator_input
from torch_impl.devices import select_device
from torch_impl.trainers import build_trainer

BACKEND = "torch"
CHECKPOINT = "checkpoint.pt"
NETWORKS = ("generator", "discriminator", "critic")  # the trainers' network attributes, as the files are named
NETWORK_SUFFIX = ".pt"

# ------------------------------------------------------------------------------------------ Training checkpoint


def optimizers(trainer) -> list[tuple[str, torch.optim.Optimizer]]:
    return [(name, value) for name, value in vars(trainer).items() if isinstance(value, torch.optim.Optimizer)]


def save_checkpoint(trainer, path: Path, meta: dict) -> None:
    """Networks (with BatchNorm statistics), optimisers and both RNG states, in one atomically written file."""
    rng = {"trainer": trainer.rng.get_state(), "torch": torch.get_rng_state()}
    device = next(trainer.parameters()).device
    if device.type == "cuda":  # dropout masks on a GPU come from its own generator
        rng["cuda"] = torch.cuda.get_rng_state(device)
    state = {
        "meta": meta,
        "networks": trainer.state_dict(),
        "optimizers": {name: optimizer.state_dict() for name, optimizer in optimizers(trainer)},
        "rng": rng,
    }
    write_atomically(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, weights_only=True, map_location="cpu")  # a GPU run's checkpoint on any machine
    except Exception as error:  # a truncated, foreign or corrupt file
        raise unreadable_checkpoint(path, BACKEND, error) from None


def load_networks(trainer, state: dict) -> None:
    """The checkpoint's networks (weights and BatchNorm statistics) into the trainer; RunError when they do not fit."""
    try:
        trainer.load_state_dict(state["networks"])
    except RuntimeError as error:  # names or shapes that its configuration does not give
        detail = " ".join(str(error).split())[:160]
        raise RunError(f"the checkpoint's networks do not match this model ({detail})") from None


def restore(trainer, state: dict) -> None:
    """Everything a checkpoint holds into the trainer: networks, optimisers, RNG states (what --resume needs)."""
    load_networks(trainer, state)
    for name, optimizer in optimizers(trainer):
        optimizer.load_state_dict(state["optimizers"][name])
    trainer.rng.set_state(state["rng"]["trainer"])
    torch.set_rng_state(state["rng"]["torch"])
    device = next(trainer.parameters()).device
    if device.type == "cuda" and "cuda" in state["rng"]:
        torch.cuda.set_rng_state(state["rng"]["cuda"], device)


def state_finite(trainer) -> bool:
    """Whether every weight, BatchNorm statistic and Adam moment is finite (a checkpoint is written only then)."""
    tensors = list(trainer.state_dict().values())
    for _, optimizer in optimizers(trainer):
        tensors += [value for state in optimizer.state.values() for value in state.values() if torch.is_tensor(value)]
    return all(bool(torch.isfinite(tensor).all()) for tensor in tensors)


def parameter_bytes(trainer) -> int:
    """Bytes of the networks' weights and statistics, from which the disk-space check sizes a checkpoint."""
    return sum(tensor.numel() * tensor.element_size() for tensor in trainer.state_dict().values())


# ------------------------------------------------------------------------------------------------ Network files


def networks(trainer) -> list[tuple[str, nn.Module]]:
    """(name, network) of each of the trainer's networks: the generator, then the discriminator or critic."""
    return [(name, getattr(trainer, name)) for name in NETWORKS if hasattr(trainer, name)]


def save_networks(trainer, folder: Path) -> list[Path]:
    """Each network's plain state_dict as <folder>/<name>.pt, written atomically; the paths written."""
    paths = []
    for name, network in networks(trainer):
        paths.append(folder / f"{name}{NETWORK_SUFFIX}")
        state = network.state_dict()
        write_atomically(paths[-1], lambda handle, state=state: torch.save(state, handle))  # float32, any device
    return paths


def save_run(trainer, run: Run, meta: dict) -> None:
    """After an epoch: the training checkpoint, the one kept for that epoch (--keep-checkpoints), the networks."""
    save_checkpoint(trainer, run.checkpoint, meta)
    run.keep_checkpoint(meta["epoch"])
    save_networks(trainer, run.out)


def generate(trainer, inputs: SampleInputs) -> np.ndarray:
    """Images in [-1, 1] from the generator in inference mode (float32 in every precision: loop.Network), computed
    on the trainer's device, as numpy (N, H, W, C)."""
    weight = next(trainer.parameters())
    arrays = (inputs.z,) if inputs.one_hot is None else (inputs.z, inputs.one_hot)
    trainer.generator.eval()
    with torch.no_grad():
        images = trainer(*(torch.from_numpy(array).to(weight.device, weight.dtype) for array in arrays))
    trainer.generator.train()
    return images.permute(0, 2, 3, 1).cpu().numpy()


def load_trained(model: str, checkpoint: Path, device: str = "cpu"):
    """The trainer of a run folder or checkpoint file on `device` (a --device word), its networks restored (no
    optimisers), and the checkpoint's meta and file: what `sample`, `eval` and `export` draw from."""
    device = select_device(device)
    path = find_checkpoint(checkpoint, BACKEND)
    state = load_checkpoint(path)
    trainer = build_trainer(model, checkpoint_model(state["meta"], model), state["meta"]["data"]["seed"], device)
    load_networks(trainer, state)
    return trainer, state["meta"], path


# ------------------------------------------------------------------------------------------------------- Export


class _Sampler(nn.Module):
    def __init__(self, generator: nn.Module, conditional: bool):
        super().__init__()
        self.generator, self.conditional = generator, conditional

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(generator_input(z, labels) if self.conditional else z)


def sampler(trainer) -> nn.Module:
    """The generator as a user calls it, in inference mode: z (N, latent_dim), and for a conditional model one-hot
    labels (N, K) -> images (N, C, S, S) in [-1, 1]. A module around the generator itself (the same weights)."""
    return _Sampler(trainer.generator, trainer.config.conditional).eval()


def export_generator(trainer, path: Path, format: str) -> None:
    """The generator as a standalone file: "torch" (torch.export, a .pt2 with a dynamic batch dimension) or
    "onnx" (torch.onnx's exporter; needs onnx and onnxscript). RunError when the format's tools are missing."""
    module = sampler(trainer)
    config = trainer.config
    dtype = next(trainer.parameters()).dtype
    example = (torch.zeros(2, config.latent_dim, dtype=dtype),)
    if config.conditional:
        example += (torch.eye(config.num_classes, dtype=dtype)[:2],)
    batch = torch.export.Dim("batch")
    dynamic = tuple({0: batch} for _ in example)
    if format == "torch":
        program = torch.export.export(module, example, dynamic_shapes=dynamic)
        archive = io.BytesIO()  # torch.export.save names a file .pt2 or writes to a buffer
        torch.export.save(program, archive)
        write_atomically(path, lambda handle: handle.write(archive.getvalue()))
        return
    try:
        program = torch.onnx.export(module, example, dynamo=True, dynamic_shapes=dynamic, verbose=False)
    except (ImportError, ModuleNotFoundError) as error:
        raise RunError(f"--format onnx needs {error.name or 'onnx'}: pip install onnx onnxscript") from None
    save_atomically(path, lambda file: program.save(str(file)))
