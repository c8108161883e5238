"""Checkpoints and network files of the Keras backend (mirror: torch_impl/checkpoint.py).

What a run folder holds, written by `save_run` after every epoch (each file atomically):
  checkpoint.npz    the training checkpoint: one numpy archive of every variable under a stable name
                    (`networks/generator/conv1/kernel`, `networks/discriminator/drop2/seed_generator_state`,
                    `networks/seed_generator/seed_generator_state`, `optimizers/d_optimizer/iteration`,
                    `optimizers/d_optimizer/discriminator_conv1_kernel_momentum`, ...) and the run's meta as JSON;
                    `--resume`, `sample`, `eval`, `export` and `gan-parity convert` read it; float32 in every
                    precision (mixed policies keep float32 variables); under mixed_float16 each optimiser also has
                    its loss scale (`.../dynamic_scale`, `.../step_counter`), optional when resuming
  generator.weights.h5       each network's weights in Keras's own format (`network.save_weights`), which
  discriminator.weights.h5   `Generator(config).load_weights(path)` reads (a published run's networks:
  (critic.weights.h5)        keras_impl.published NETWORKS[config.architecture], generator and discriminator)
  generator.keras   the generator as a whole model (`generator.save`): `keras.models.load_model(path)` opens it
                    once keras_impl.dcgan is imported (keras_impl.published for a published run; the networks are
                    registered as serializable, "gan_parity>")
Why the training checkpoint is not Keras's own file: `save_weights` and `save` store layers and optimisers but
not the SeedGenerator states (the trainer's noise and the Dropout masks), without which --resume would draw other
noise; the archive holds them all, so a resumed run continues bit for bit. Keras numbers the paths of seed
generators and optimisers per process (seed_generator_3, adam_2), so the names are built from the networks'
and layers' own names instead.
`export_generator` writes the generator as a standalone model of Keras's built-in layers only (a .keras file
that `keras.models.load_model` opens without this project), or ONNX where tf2onnx and onnx are installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from keras_impl.cgan import generator_input
from keras_impl.devices import select_device
from keras_impl.trainers import build_trainer
from specs.images import save_atomically, write_atomically
from specs.runs import Run, RunError, SampleInputs, checkpoint_model, find_checkpoint, unreadable_checkpoint

BACKEND = "keras"
CHECKPOINT = "checkpoint.npz"
NETWORKS = ("generator", "discriminator", "critic")  # the trainers' network attributes, as the files are named
NETWORK_SUFFIX = ".weights.h5"
LOSS_SCALE = ("dynamic_scale", "step_counter")  # a LossScaleOptimizer's own variables (mixed_float16)

# ------------------------------------------------------------------------------------------ Training checkpoint


def optimizers(trainer) -> list[tuple[str, keras.optimizers.Optimizer]]:
    return [(name, value) for name, value in vars(trainer).items() if isinstance(value, keras.optimizers.Optimizer)]


def _named_variables(trainer) -> dict[str, keras.Variable]:
    """Every variable of the trainer and its optimisers under its name in checkpoint.npz (see above)."""
    named = {f"networks/seed_generator/{trainer.seed_generator.state.name}": trainer.seed_generator.state}
    for name, network in networks(trainer):
        for layer in network.layers:
            named |= {f"networks/{name}/{layer.name}/{variable.name}": variable for variable in layer.variables}
    unnamed = {id(variable) for variable in trainer.variables} - {id(variable) for variable in named.values()}
    if unnamed or len(named) != len(trainer.variables):
        raise AssertionError(f"{len(unnamed)} variables of {type(trainer).__name__} have no checkpoint name")
    for name, optimizer in optimizers(trainer):
        named |= {f"optimizers/{name}/{variable.name}": variable for variable in optimizer.variables}
    return named


def save_checkpoint(trainer, path: Path, meta: dict) -> None:
    """Networks (with BatchNorm statistics), optimisers and RNG states (seed generators), in one atomic file."""
    arrays = {"meta": np.array(json.dumps(meta))}
    arrays |= {name: keras.ops.convert_to_numpy(variable) for name, variable in _named_variables(trainer).items()}
    write_atomically(path, lambda handle: np.savez(handle, **arrays))


def load_checkpoint(path: Path) -> dict:
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as error:  # a truncated, foreign or corrupt file
        raise unreadable_checkpoint(path, BACKEND, error) from None
    return {"meta": meta, "arrays": arrays}


def _assign(variables: dict[str, keras.Variable], arrays: dict, what: str) -> None:
    """Each variable from the array of its name; RunError naming the first one missing, extra or misshapen."""
    missing = sorted(set(variables) - set(arrays))
    extra = sorted(key for key in set(arrays) - set(variables) if key.startswith(what))
    misshapen = [key for key, variable in variables.items() if key in arrays and
                 arrays[key].shape != tuple(variable.shape)]
    if missing or extra or misshapen:
        detail = (f"missing {missing[0]}" if missing else f"unknown {extra[0]}" if extra else
                  f"{misshapen[0]}: {arrays[misshapen[0]].shape} for {tuple(variables[misshapen[0]].shape)}")
        raise RunError(f"the checkpoint's {what.rstrip('/')} do not match this model ({detail})")
    for key, variable in variables.items():
        variable.assign(arrays[key])


def load_networks(trainer, state: dict) -> None:
    """The checkpoint's networks (weights, BatchNorm statistics, seed states) into the trainer; RunError when they
    do not fit."""
    named = {key: value for key, value in _named_variables(trainer).items() if key.startswith("networks/")}
    _assign(named, state["arrays"], "networks/")


def restore(trainer, state: dict) -> None:
    """Everything a checkpoint holds into the trainer: networks, optimisers, RNG states (what --resume needs)."""
    load_networks(trainer, state)
    named = {key: value for key, value in _named_variables(trainer).items() if key.startswith("optimizers/")}
    arrays = state["arrays"]
    scales = {key for key in {*named, *arrays} if key.startswith("optimizers/") and key.rsplit("/")[-1] in LOSS_SCALE}
    named = {key: value for key, value in named.items() if key not in scales or key in arrays}  # else: start afresh
    arrays = {key: value for key, value in arrays.items() if key not in scales or key in named}  # else: drop it
    _assign(named, arrays, "optimizers/")  # a run may resume in another precision: its loss scale starts or ends


def state_finite(trainer) -> bool:
    """Whether every weight, BatchNorm statistic and Adam moment is finite (a checkpoint is written only then)."""
    variables = list(trainer.variables)
    for _, optimizer in optimizers(trainer):
        variables += list(optimizer.variables)
    return all(bool(np.isfinite(variable.numpy()).all()) for variable in variables)


def parameter_bytes(trainer) -> int:
    """Bytes of the networks' weights and statistics, from which the disk-space check sizes a checkpoint."""
    return sum(int(np.prod(variable.shape)) * np.dtype(variable.dtype).itemsize for variable in trainer.variables)


# ------------------------------------------------------------------------------------------------ Network files


def networks(trainer) -> list[tuple[str, keras.Model]]:
    """(name, network) of each of the trainer's networks: the generator, then the discriminator or critic."""
    return [(name, getattr(trainer, name)) for name in NETWORKS if hasattr(trainer, name)]


def save_networks(trainer, folder: Path) -> list[Path]:
    """Each network's weights as <folder>/<name>.weights.h5 and the generator as <folder>/generator.keras, written
    atomically; the paths written."""
    paths = []
    for name, network in networks(trainer):
        paths.append(folder / f"{name}{NETWORK_SUFFIX}")
        save_atomically(paths[-1], network.save_weights)
    paths.append(folder / "generator.keras")
    save_atomically(paths[-1], trainer.generator.save)
    return paths


def save_run(trainer, run: Run, meta: dict) -> None:
    """After an epoch: the training checkpoint, the one kept for that epoch (--keep-checkpoints), the networks."""
    save_checkpoint(trainer, run.checkpoint, meta)
    run.keep_checkpoint(meta["epoch"])
    save_networks(trainer, run.out)


def generate(trainer, inputs: SampleInputs) -> np.ndarray:
    """Images in [-1, 1] from the generator in inference mode, computed in float32 in every precision (a
    mixed-precision trainer lends its weights to a float32 copy of its generator), as numpy (N, H, W, C)."""
    arrays = (inputs.z,) if inputs.one_hot is None else (inputs.z, inputs.one_hot)
    generator = trainer.generator
    if generator.compute_dtype == generator.variable_dtype:
        return keras.ops.convert_to_numpy(trainer(*arrays, training=False))
    copy = type(generator)(generator.config)  # its class (the book's or a published one), under float32
    copy.set_weights(generator.get_weights())
    z = inputs.z if inputs.one_hot is None else generator_input(inputs.z, inputs.one_hot)
    return keras.ops.convert_to_numpy(copy(z, training=False))


def load_trained(model: str, checkpoint: Path, device: str = "auto"):
    """The trainer of a run folder or checkpoint file on `device` (a --device word), its networks restored (no
    optimisers), and the checkpoint's meta and file: what `sample`, `eval` and `export` draw from."""
    select_device(device)
    path = find_checkpoint(checkpoint, BACKEND)
    state = load_checkpoint(path)
    trainer = build_trainer(model, checkpoint_model(state["meta"], model), state["meta"]["data"]["seed"])
    load_networks(trainer, state)
    return trainer, state["meta"], path


# ------------------------------------------------------------------------------------------------------- Export


def sampler(trainer) -> keras.Model:
    """The generator as a user calls it, in inference mode: z (N, latent_dim), and for a conditional model one-hot
    labels (N, K) -> images (N, S, S, C) in [-1, 1]. A functional model of the generator's own layers (the same
    weights) and Keras's built-in layers only, so that it loads without this project."""
    config = trainer.config
    inputs = [keras.Input((config.latent_dim,), name="z")]
    if config.conditional:
        inputs.append(keras.Input((config.num_classes,), name="labels"))
    x = keras.layers.Concatenate(name="generator_input")(inputs) if config.conditional else inputs[0]
    for layer in trainer.generator.layers:
        x = layer(x)
    return keras.Model(inputs if config.conditional else inputs[0], x, name="generator")


def export_generator(trainer, path: Path, format: str) -> None:
    """The generator as a standalone file: "keras" (a .keras file of built-in layers) or "onnx" (Keras's
    `export(format="onnx")`; needs tf2onnx and onnx). RunError when the format's tools are missing."""
    model = sampler(trainer)
    if format == "keras":
        save_atomically(path, model.save)
        return
    probe = [np.zeros((1, *keras_input.shape[1:]), keras_input.dtype) for keras_input in model.inputs]
    model(probe if len(probe) > 1 else probe[0])  # Keras exports only a model that has been called
    try:
        save_atomically(path, lambda file: model.export(str(file), format="onnx", verbose=False))
    except (ImportError, ModuleNotFoundError) as error:
        raise RunError(f"--format onnx needs {error.name or 'tf2onnx'}: pip install tf2onnx onnx") from None
