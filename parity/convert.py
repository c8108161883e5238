"""Weights torch <-> Keras, by layer name, strict: every tensor mapped exactly once, every shape asserted.

A torch `nn.Sequential` and a `keras.Sequential` correspond when their layers carry the same names (the torch
attribute `conv2` is the Keras layer `conv2`). Each tensor gets a `Port`: the two storages and two pure layout
maps, so weights and gradients travel through the same table. The maps only permute (never reshape to fit), so a
torch -> Keras -> torch round trip returns identical bytes.

| torch                          | Keras                         | map torch -> Keras                         |
|--------------------------------|-------------------------------|--------------------------------------------|
| Conv2d weight (out, in, h, w)  | Conv2D kernel (h, w, in, out) | transpose (2, 3, 1, 0)                     |
| ConvTranspose2d (in, out, h, w)| Conv2DTranspose (h, w, out, in)| transpose (2, 3, 1, 0), no spatial flip   |
| Linear weight (out, in)        | Dense kernel (in, out)        | transpose; rows after Flatten and columns  |
|                                |                               | before Reshape permuted (C,H,W) -> (H,W,C) |
| BatchNorm weight, bias,        | gamma, beta,                  | as is                                      |
| running_mean, running_var      | moving_mean, moving_variance  |                                            |
| num_batches_tracked            | (none: Keras keeps no count)  | not ported                                 |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import torch
from keras import layers
from torch import nn

TORCH_ONLY = {"num_batches_tracked": "Keras keeps no update count; the momentum form of BatchNorm never reads it"}


class ConversionError(ValueError):
    """The two networks do not correspond: a layer, tensor or shape is missing or different."""


@dataclass(frozen=True)
class Port:
    """One tensor in both frameworks and the layout maps between them."""

    name: str  # torch state-dict key, e.g. "conv2.weight"
    torch_tensor: torch.Tensor  # parameter or buffer (the live storage)
    keras_variable: keras.Variable  # the live Keras storage
    to_keras: Callable[[np.ndarray], np.ndarray]  # torch layout -> Keras layout
    to_torch: Callable[[np.ndarray], np.ndarray]  # Keras layout -> torch layout
    trainable: bool  # a parameter (has a gradient), not a running statistic


def _transpose(axes: tuple[int, ...]) -> tuple[Callable, Callable]:
    inverse = tuple(int(i) for i in np.argsort(axes))
    return (lambda array: np.ascontiguousarray(array.transpose(axes))), (
        lambda array: np.ascontiguousarray(array.transpose(inverse))
    )


def _identity() -> tuple[Callable, Callable]:
    return (lambda array: np.array(array)), (lambda array: np.array(array))


def chw_to_hwc_order(shape_hwc: tuple[int, int, int]) -> np.ndarray:
    """perm[k] = the torch (C, H, W)-flat index of the Keras (H, W, C)-flat index k."""
    height, width, channels = shape_hwc
    return np.arange(channels * height * width).reshape(channels, height, width).transpose(1, 2, 0).reshape(-1)


def _dense_maps(in_order: np.ndarray | None, out_order: np.ndarray | None):
    """Linear (out, in) <-> Dense (in, out), with rows/columns reordered where a Flatten or Reshape touches it."""

    def kernel_to_keras(weight):
        weight = weight if out_order is None else weight[out_order]
        weight = weight if in_order is None else weight[:, in_order]
        return np.ascontiguousarray(weight.T)

    def kernel_to_torch(kernel):
        weight = kernel.T
        weight = weight if in_order is None else weight[:, np.argsort(in_order)]
        weight = weight if out_order is None else weight[np.argsort(out_order)]
        return np.ascontiguousarray(weight)

    def bias_to_keras(bias):
        return np.array(bias if out_order is None else bias[out_order])

    def bias_to_torch(bias):
        return np.array(bias if out_order is None else bias[np.argsort(out_order)])

    return (kernel_to_keras, kernel_to_torch), (bias_to_keras, bias_to_torch)


def _neighbour_orders(model: keras.Sequential, index: int):
    """Flat-index orders for a Dense at `index`: after a Flatten of (H, W, C), before a Reshape to (H, W, C)."""
    stack = model.layers
    in_order = out_order = None
    if index > 0 and isinstance(stack[index - 1], layers.Flatten):
        shape = tuple(stack[index - 1].input.shape[1:])
        in_order = chw_to_hwc_order(shape) if len(shape) == 3 else None
    if index + 1 < len(stack) and isinstance(stack[index + 1], layers.Reshape):
        shape = tuple(stack[index + 1].target_shape)
        out_order = chw_to_hwc_order(shape) if len(shape) == 3 else None
    return in_order, out_order


def _layer_pairs(module: nn.Module, model: keras.Sequential, index: int, layer) -> list[tuple[str, str, tuple]]:
    """(torch tensor name, Keras attribute, (to_keras, to_torch)) for one pair of layers of matching kind."""
    if isinstance(module, nn.Conv2d) and type(layer) is layers.Conv2D:
        return [("weight", "kernel", _transpose((2, 3, 1, 0))), ("bias", "bias", _identity())]
    if isinstance(module, nn.ConvTranspose2d) and type(layer) is layers.Conv2DTranspose:
        return [("weight", "kernel", _transpose((2, 3, 1, 0))), ("bias", "bias", _identity())]
    if isinstance(module, nn.Linear) and type(layer) is layers.Dense:
        kernel_maps, bias_maps = _dense_maps(*_neighbour_orders(model, index))
        return [("weight", "kernel", kernel_maps), ("bias", "bias", bias_maps)]
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and type(layer) is layers.BatchNormalization:
        names = [("weight", "gamma"), ("bias", "beta")]
        names += [("running_mean", "moving_mean"), ("running_var", "moving_variance")]
        return [(torch_name, keras_name, _identity()) for torch_name, keras_name in names]
    raise ConversionError(f"layer {layer.name!r}: torch {type(module).__name__} has no Keras counterpart "
                          f"{type(layer).__name__} in this table")


def weight_table(module: nn.Sequential, model: keras.Sequential, prefix: str = "",
                 problems: list[str] | None = None) -> list[Port]:
    """Every tensor of `module` paired with its Keras variable; raises ConversionError on the first mismatch, or,
    given a `problems` list, records each mismatch there and returns the tensors that do pair."""

    def fail(message: str) -> None:
        if problems is None:
            raise ConversionError(message)
        problems.append(message)

    keras_index = {layer.name: i for i, layer in enumerate(model.layers)}
    ports: list[Port] = []
    reported: set[int] = set()  # Keras variables that a recorded problem already names
    for name, child in module.named_children():
        tensors = dict(child.named_parameters(recurse=False)) | dict(child.named_buffers(recurse=False))
        tensors = {key: value for key, value in tensors.items() if key not in TORCH_ONLY}
        if name not in keras_index:
            if tensors:
                fail(f"torch layer {prefix}{name!r} has no Keras layer of that name")
            continue
        layer = model.layers[keras_index[name]]
        if not tensors and not layer.weights:
            continue
        try:
            pairs = _layer_pairs(child, model, keras_index[name], layer)
        except ConversionError as error:
            fail(str(error))
            reported.update(id(variable) for variable in layer.weights)
            continue
        for torch_name, keras_name, (to_keras, to_torch) in pairs:
            tensor, variable = tensors.pop(torch_name, None), getattr(layer, keras_name, None)
            if (tensor is None) != (variable is None):
                fail(f"{prefix}{name}.{torch_name}: present in only one framework "
                     f"(torch {tensor is not None}, Keras {variable is not None})")
                reported.add(id(variable))
                continue
            if tensor is None:
                continue
            expected = to_keras(np.zeros(tuple(tensor.shape)))
            if expected.shape != tuple(variable.shape):
                fail(f"{prefix}{name}.{torch_name}: torch {tuple(tensor.shape)} maps to "
                     f"{expected.shape}, Keras {variable.path} is {tuple(variable.shape)}")
                reported.add(id(variable))
                continue
            trainable = isinstance(tensor, nn.Parameter)
            ports.append(Port(f"{prefix}{name}.{torch_name}", tensor, variable, to_keras, to_torch, trainable))
        if tensors:
            fail(f"{prefix}{name}: torch tensors {sorted(tensors)} have no Keras counterpart")
    mapped = {id(port.keras_variable) for port in ports} | reported
    unmapped = [variable.path for variable in model.weights if id(variable) not in mapped]
    if unmapped:
        fail(f"Keras variables with no torch counterpart: {unmapped}")
    return ports


def trainer_table(torch_trainer: nn.Module, keras_trainer: keras.Model, networks: tuple[str, ...],
                  problems: list[str] | None = None) -> list[Port]:
    """The weight tables of each named network of two trainers (e.g. ("generator", "discriminator")); `problems`
    as in `weight_table`."""
    table: list[Port] = []
    for network in networks:
        table += weight_table(getattr(torch_trainer, network), getattr(keras_trainer, network), f"{network}.",
                              problems)
    return table


def torch_to_keras(table: list[Port]) -> None:
    """Copy every torch tensor into its Keras variable (cast to the variable's dtype)."""
    for port in table:
        array = port.to_keras(port.torch_tensor.detach().cpu().numpy())
        port.keras_variable.assign(array.astype(port.keras_variable.dtype))


def keras_to_torch(table: list[Port]) -> None:
    """Copy every Keras variable into its torch tensor (cast to the tensor's dtype)."""
    with torch.no_grad():
        for port in table:
            array = port.to_torch(keras.ops.convert_to_numpy(port.keras_variable))
            port.torch_tensor.copy_(torch.from_numpy(array).to(port.torch_tensor.dtype))
