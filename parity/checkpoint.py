"""Checkpoints across frameworks: `gan-parity convert CHECKPOINT --to torch|keras --out PATH`.

Train in one backend, sample or train on in the other. The command reads a checkpoint of one backend (torch's
`checkpoint.pt`, Keras's `checkpoint.npz`, or a run folder holding one) into that backend's trainer with the
backend's own loader (torch_impl/checkpoint.py, keras_impl/checkpoint.py), copies every tensor into a trainer of
the other backend through the weight table of parity/convert.py, and writes it with the other backend's own
`save_checkpoint` (atomically). What travels:

| state                            | torch                  | Keras                      | converted as             |
|----------------------------------|------------------------|----------------------------|--------------------------|
| weights, BatchNorm statistics    | state_dict             | trainer.variables          | the weight table (exact) |
| BatchNorm update count           | num_batches_tracked    | (none)                     | to torch: see below      |
| Adam moments, per parameter      | exp_avg, exp_avg_sq    | momentums, velocities      | the weight table's maps  |
| Adam step count                  | `step` per parameter   | `iterations` per optimiser | the same number          |
| model, config, epoch, step, data | meta                   | meta                       | copied (see below)       |
| RNG state                        | torch.Generator states | SeedGenerator variables    | NOT carried              |

The written meta says `backend`: the target, and `converted_from`: the source's backend and path.

The RNG state cannot be carried: the two backends draw noise and dropout masks with different generators, and no
state of one makes the other draw the same numbers. The target's generators start as a fresh run of the target
backend with the checkpoint's seed would start them. A converted checkpoint therefore resumes the same training (same
weights, moments, step, epoch and batch order) with other noise than the source backend would have drawn; resuming
in the source backend stays exact.

num_batches_tracked counts a torch BatchNorm's training-mode passes; torch reads it only when momentum is None (a
cumulative average), which these models never use. It is set to what torch itself would hold after the same
training: the checkpoint's step count times the passes that one train step makes, measured on a throwaway trainer
(3 for the alternating DCGAN's discriminator: real, fake for D, fake again for G; critic_steps + 1 for the WGAN-GP
generator).

Two rules differ when a converted run goes on, each measured by the parity checks: Adam's epsilon sits at another
place in the two updates, and torch's running variance accumulates the unbiased batch variance where Keras's
accumulates the biased one. Each backend goes on by its own rule from the copied values. Keras's Adam keeps its
moments in `_momentums` and `_velocities`, indexed by `_get_variable_index` (keras/src/optimizers/adam.py): the
converter finds them the way Adam's own update does, not by position in `optimizer.variables`.

`--out` is a file with the target's suffix (.pt, .npz), or a folder (an existing one, or a path without a suffix)
that receives the standard name (checkpoint.pt, checkpoint.npz), which `train --resume` needs. An existing file is
never overwritten, the source included.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras
import torch

import keras_impl.checkpoint as keras_checkpoint
import torch_impl.checkpoint as torch_checkpoint
from keras_impl.trainers import build_trainer as build_keras_trainer
from parity import backends, convert
from parity.checks import MODELS
from specs.models import ConfigError, config_from_dict
from specs.runs import RunError
from torch_impl.trainers import build_trainer as build_torch_trainer

BACKENDS = {"torch": torch_checkpoint, "keras": keras_checkpoint}
META_FIELDS = ("backend", "model", "config", "epoch", "step", "data")


def other(backend: str) -> str:
    return "keras" if backend == "torch" else "torch"


# --------------------------------------------------------------------------------------------- Reading, writing


def source_file(path: Path, target: str) -> Path:
    """The checkpoint file that CHECKPOINT names: the file itself, or the checkpoint inside a run folder."""
    if path.is_dir():
        for backend in (other(target), target):
            if (path / BACKENDS[backend].CHECKPOINT).is_file():
                return path / BACKENDS[backend].CHECKPOINT
        raise RunError(f"no checkpoint in {path}; pass a run folder of gan-torch or gan-keras, or its checkpoint file")
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}; pass a checkpoint file or a run folder holding one")
    return path


def output_file(path: Path, target: str) -> Path:
    """Where the converted checkpoint goes: a file with the target's suffix, or the standard name in a folder."""
    name = BACKENDS[target].CHECKPOINT
    if path.is_dir() or not path.suffix:
        path = path / name
    elif path.suffix != Path(name).suffix:
        raise RunError(f"--out {path}: a {target} checkpoint is a {Path(name).suffix} file; name it so, or give a "
                       f"folder to receive {name}")
    if path.exists():
        raise RunError(f"{path} already exists and is never overwritten; remove it or choose another --out")
    return path


def is_run_meta(meta) -> bool:
    """Whether `meta` is what specs.runs.checkpoint_meta writes: its fields, a known model, the run's seed."""
    return (isinstance(meta, dict) and all(field in meta for field in META_FIELDS) and meta["model"] in MODELS
            and isinstance(meta["data"], dict) and "seed" in meta["data"])


def read(path: Path, target: str) -> tuple[str, dict]:
    """(source backend, state) of a checkpoint file, read by the loader of the backend whose format it has."""
    for backend in BACKENDS:
        try:
            state = BACKENDS[backend].load_checkpoint(path)
        except RunError:
            continue
        if not is_run_meta(state.get("meta") if isinstance(state, dict) else None):
            raise RunError(f"{path} is a {backend} file but not a checkpoint of gan-{backend} (no run metadata)")
        if backend == target:
            raise RunError(f"{path} already is a {target} checkpoint; nothing to convert")
        return backend, state
    raise RunError(f"{path} is not a checkpoint: neither gan-torch (torch.load) nor gan-keras (numpy.load) reads it")


# ------------------------------------------------------------------------------------------------ Adam state


def adam_pairs(torch_trainer, keras_trainer, table: list[convert.Port]):
    """(torch Adam, Keras Adam, the ports of its parameters) for each optimiser, paired by attribute name."""
    keras_optimizers = dict(keras_checkpoint.optimizers(keras_trainer))
    ports = {id(port.torch_tensor): port for port in table if port.trainable}
    for name, torch_adam in torch_checkpoint.optimizers(torch_trainer):
        parameters = [parameter for group in torch_adam.param_groups for parameter in group["params"]]
        yield torch_adam, keras_optimizers[name], [ports[id(parameter)] for parameter in parameters]


def keras_moments(keras_adam, port: convert.Port):
    """A variable's first and second moments, found as Keras's Adam.update_step finds them."""
    index = keras_adam._get_variable_index(port.keras_variable)
    return keras_adam._momentums[index], keras_adam._velocities[index]


def adam_to_keras(torch_adam, keras_adam, ports: list[convert.Port]) -> None:
    states = [torch_adam.state.get(port.torch_tensor, {}) for port in ports]  # empty before torch's first step
    steps = {int(state.get("step", 0)) for state in states}
    if len(steps) != 1:
        raise convert.ConversionError(f"torch parameters at different Adam steps {sorted(steps)}; Keras keeps one")
    keras_adam.iterations.assign(steps.pop())
    for port, state in zip(ports, states):
        for name, variable in zip(("exp_avg", "exp_avg_sq"), keras_moments(keras_adam, port)):
            if name in state:
                variable.assign(port.to_keras(state[name].detach().cpu().numpy()).astype(variable.dtype))


def adam_to_torch(keras_adam, torch_adam, ports: list[convert.Port]) -> None:
    step = int(keras_adam.iterations)
    for port in ports:
        torch_adam.state.pop(port.torch_tensor, None)
        if step == 0:
            continue  # torch creates the state at its first step
        momentum, velocity = (torch.from_numpy(port.to_torch(keras.ops.convert_to_numpy(variable)))
                              .to(port.torch_tensor.dtype) for variable in keras_moments(keras_adam, port))
        torch_adam.state[port.torch_tensor] = {"step": torch.tensor(float(step)), "exp_avg": momentum,
                                               "exp_avg_sq": velocity}


def set_batch_norm_counts(torch_trainer, model: str, config, steps: int) -> None:
    """num_batches_tracked = steps x the training-mode passes of one train step, counted on a throwaway trainer."""
    throwaway = build_torch_trainer(model, config)
    images = torch.zeros(2, config.channels, config.image_size, config.image_size)  # a batch of 2
    throwaway.train_step((images, torch.eye(config.num_classes)[:2]) if config.conditional else images)
    passes = dict(throwaway.named_buffers())
    with torch.no_grad():
        for name, count in torch_trainer.named_buffers():
            if name.endswith("num_batches_tracked"):
                count.fill_(int(passes[name]) * steps)


# ------------------------------------------------------------------------------------------------- Converting


def convert_checkpoint(source_path: Path, target: str, out_path: Path) -> dict:
    """Write the checkpoint at `source_path` as a checkpoint of `target` at `out_path`; return its meta."""
    source, state = read(source_path, target)
    model, seed = state["meta"]["model"], state["meta"]["data"]["seed"]
    try:
        config = config_from_dict(model, state["meta"]["config"])
    except TypeError as error:
        raise RunError(f"{source_path}: its configuration does not describe a {model}: {error}") from None
    trainers = {"torch": build_torch_trainer(model, config, seed), "keras": build_keras_trainer(model, config, seed)}
    table = convert.trainer_table(trainers["torch"], trainers["keras"], MODELS[model].networks)
    try:
        BACKENDS[source].restore(trainers[source], state)
    except (KeyError, RuntimeError, ValueError) as error:
        raise RunError(f"{source_path} does not hold the {model} its metadata describes: "
                       f"{str(error).splitlines()[0]}") from None
    origin = {"backend": source, "path": str(source_path.resolve())}
    meta = state["meta"] | {"backend": target, "converted_from": origin}
    if target == "keras":
        convert.torch_to_keras(table)
        for torch_adam, keras_adam, ports in adam_pairs(trainers["torch"], trainers["keras"], table):
            adam_to_keras(torch_adam, keras_adam, ports)
    else:
        convert.keras_to_torch(table)
        for torch_adam, keras_adam, ports in adam_pairs(trainers["torch"], trainers["keras"], table):
            adam_to_torch(keras_adam, torch_adam, ports)
        set_batch_norm_counts(trainers["torch"], model, config, meta["step"])
    try:
        with torch.random.fork_rng(devices=[]):  # torch saves its global RNG: as torch.manual_seed(seed) leaves it
            torch.manual_seed(seed)
            BACKENDS[target].save_checkpoint(trainers[target], out_path, meta)
    except OSError as error:
        raise RunError(f"cannot write {out_path}: {error.strerror or error}; choose another --out") from None
    return meta


# ------------------------------------------------------------------------------------------------ The command


def run(args: argparse.Namespace) -> int:
    try:
        source_path = source_file(Path(args.checkpoint), args.to)
        out_path = output_file(Path(args.out), args.to)
        meta = convert_checkpoint(source_path, args.to, out_path)
    except (RunError, ConfigError, convert.ConversionError) as error:
        print(f"gan-parity: error: {error}", file=sys.stderr)
        return 2
    source, model = meta["converted_from"]["backend"], meta["model"]
    print(f"gan-parity: {source_path} ({source} {model}, epoch {meta['epoch'] + 1}, step {meta['step']}) converted "
          f"to {out_path} ({args.to}): networks, BatchNorm statistics, Adam moments and steps")
    print(f"gan-parity: the RNG state cannot be converted: gan-{args.to} draws noise afresh from seed "
          f"{meta['data']['seed']}, so a resumed run goes on with other noise than gan-{source} would have drawn")
    if out_path.name == BACKENDS[args.to].CHECKPOINT:
        print(f"gan-parity: resume with `gan-{args.to} train {model} --out {out_path.parent} --resume` and the flags "
              f"it was trained with; sample with `gan-{args.to} sample {model} --checkpoint {out_path}`")
    return 0


def register(commands) -> None:
    parser = commands.add_parser(
        "convert", help="a checkpoint of one backend as a checkpoint of the other",
        description="Convert a checkpoint of gan-torch to gan-keras or back: networks, BatchNorm statistics and "
                    "Adam state (moments and step). The RNG state cannot be converted; the target draws afresh.")
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint file (.pt or .npz) or a run folder")
    parser.add_argument("--to", required=True, choices=tuple(BACKENDS), help="the backend to convert to")
    parser.add_argument("--out", required=True, metavar="PATH", help="a .pt (torch) or .npz (keras) file, or a "
                        "folder that receives checkpoint.pt or checkpoint.npz; never overwritten")
    parser.add_argument("--keras-backend", choices=backends.KERAS_BACKENDS, default=None,
                        help="the Keras backend that reads or writes the Keras checkpoint (one format for all); "
                             "default: $KERAS_BACKEND, else tensorflow")
    parser.set_defaults(func=run, elsewhere=lambda args, argv, keras_backends: backends.passthrough(argv,
                                                                                                      keras_backends))
