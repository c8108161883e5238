"""Weights torch <-> Keras, by layer name, strict: every tensor mapped exactly once, every shape asserted.

A torch `nn.Sequential` and a `keras.Sequential` correspond when their layers carry the same names (the torch
attribute `conv2` is the Keras layer `conv2`). Each tensor gets a `Port`: the two storages and two pure layout
maps, so weights and gradients travel through the same table. The maps only permute (never reshape to fit), so a
torch -> Keras -> torch round trip returns identical bytes.

| torch                          | Keras                         | map torch -> Keras                         |
|--------------------------------|-------------------------------|--------------------------------------------|
| Conv2d weight (out, in, h, w)  | Conv2D kernel (h, w, in, out) | transpose (2, 3, 1, 0)                     |
| ConvTranspose2d (in, out, h, w)| Conv2DTranspose (h, w, out, in)| transpose (2, 3, 1, 0), no spatial flip   |
| Conv1d, ConvTranspose1d        | Conv1D, Conv1DTranspose       | transpose (2, 1, 0)                        |
| Linear weight (out, in)        | Dense kernel (in, out)        | transpose; rows after Flatten and columns  |
|                                |                               | before Reshape permuted (C,H,W) -> (H,W,C) |
| BatchNorm1d/2d weight, bias,   | gamma, beta,                  | as is (permuted like the Dense columns     |
| running_mean, running_var      | moving_mean, moving_variance  | between a Dense and a Reshape)             |
| num_batches_tracked            | (none: Keras keeps no count)  | not ported                                 |
| LayerNorm weight, bias         | LayerNormalization gamma, beta| (C, H, W) -> (H, W, C); vectors as is      |
| Embedding weight               | Embedding embeddings          | as is                                      |

`weight_table` pairs the layers of two sequential networks by name; `pair_table` takes pairs chosen by the caller
(`gan-parity compare` pairs a user's layers by name, or by order and kind) with the same strictness.
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


def chw_to_hwc_order(shape_hwc: tuple[int, ...]) -> np.ndarray:
    """perm[k] = the torch (C, H, W)-flat index of the Keras (H, W, C)-flat index k; for a 1d signal (L, C), the
    (C, L)-flat index."""
    *spatial, channels = shape_hwc
    axes = (*range(1, len(shape_hwc)), 0)
    return np.arange(int(np.prod(shape_hwc))).reshape(channels, *spatial).transpose(axes).reshape(-1)


def _reordered(order: np.ndarray | None) -> tuple[Callable, Callable]:
    """Per-feature vectors (BatchNorm over the features of a Dense) in the Keras feature order."""
    if order is None:
        return _identity()
    inverse = np.argsort(order)
    return (lambda array: np.array(array[order])), (lambda array: np.array(array[inverse]))


def _channels_last() -> tuple[Callable, Callable]:
    """LayerNorm's weight over (C, H, W) or (C, L) -> (H, W, C) or (L, C); over features as is."""

    def axes(rank: int) -> tuple[int, ...]:
        return (*range(1, rank), 0) if rank > 1 else (0,)

    return (lambda array: np.ascontiguousarray(array.transpose(axes(array.ndim)))), (
        lambda array: np.ascontiguousarray(array.transpose(np.argsort(axes(array.ndim)))))


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


FEATURE_WISE = (layers.BatchNormalization, layers.Dropout, layers.Activation, layers.LeakyReLU, layers.ReLU)  # per
# feature: flat features keep their order through these


def flat_feature_order(model: keras.Sequential, index: int) -> np.ndarray | None:
    """The order of the flat features the layer at `index` puts out, against torch's: perm[k] = the torch index of
    Keras feature k, where they come from a Flatten of (H, W, C) or go (through per-feature layers: BatchNorm,
    activations, dropout) into a Reshape to (H, W, C); None where the two orders agree."""
    stack = model.layers
    position = index
    while position >= 0 and isinstance(stack[position], FEATURE_WISE):  # back through per-feature layers
        position -= 1
    if position >= 0 and isinstance(stack[position], layers.Flatten):
        shape = tuple(stack[position].input.shape[1:])
        return chw_to_hwc_order(shape) if len(shape) == 3 else None
    if len(stack[index].output.shape) != 2:
        return None
    position = index + 1
    while position < len(stack) and isinstance(stack[position], FEATURE_WISE):  # forward to a Reshape
        position += 1
    if position < len(stack) and isinstance(stack[position], layers.Reshape):
        shape = tuple(stack[position].target_shape)
        return chw_to_hwc_order(shape) if len(shape) == 3 else None
    return None


def _neighbour_orders(model: keras.Sequential, index: int):
    """Flat-index orders for a Dense or a BatchNorm over features at `index`: its input's (a Dense after a Flatten)
    and its output's (before a Reshape to (H, W, C)); per-feature layers in between are looked through."""
    in_order = flat_feature_order(model, index - 1) if index > 0 else None
    if not isinstance(model.layers[index], layers.Dense):
        in_order = None
    return in_order, flat_feature_order(model, index)


WEIGHTED_TORCH = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear,
                  nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.Embedding)  # the layers with tensors it ports


def _layer_pairs(module: nn.Module, layer, in_order: np.ndarray | None = None,
                 out_order: np.ndarray | None = None) -> list[tuple[str, str, tuple]]:
    """(torch tensor name, Keras attribute, (to_keras, to_torch)) for one pair of layers of matching kind; a Dense
    reads its rows in `in_order` (after a Flatten) and its columns in `out_order` (before a Reshape), a BatchNorm
    over features its channels in `out_order`."""
    conv = (nn.Conv2d, layers.Conv2D, (2, 3, 1, 0)), (nn.ConvTranspose2d, layers.Conv2DTranspose, (2, 3, 1, 0)), \
        (nn.Conv1d, layers.Conv1D, (2, 1, 0)), (nn.ConvTranspose1d, layers.Conv1DTranspose, (2, 1, 0))
    for torch_kind, keras_kind, axes in conv:
        if type(module) is torch_kind and type(layer) is keras_kind:
            return [("weight", "kernel", _transpose(axes)), ("bias", "bias", _identity())]
    if isinstance(module, nn.Linear) and type(layer) is layers.Dense:
        kernel_maps, bias_maps = _dense_maps(in_order, out_order)
        return [("weight", "kernel", kernel_maps), ("bias", "bias", bias_maps)]
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and type(layer) is layers.BatchNormalization:
        names = [("weight", "gamma"), ("bias", "beta")]
        names += [("running_mean", "moving_mean"), ("running_var", "moving_variance")]
        return [(torch_name, keras_name, _reordered(out_order)) for torch_name, keras_name in names]
    if isinstance(module, nn.LayerNorm) and type(layer) is layers.LayerNormalization:
        return [("weight", "gamma", _channels_last()), ("bias", "beta", _channels_last())]
    if isinstance(module, nn.Embedding) and type(layer) is layers.Embedding:
        return [("weight", "embeddings", _identity())]
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
        if name not in keras_index:
            if _tensors(child):
                fail(f"torch layer {prefix}{name!r} has no Keras layer of that name")
            continue
        layer = model.layers[keras_index[name]]
        over_features = isinstance(layer, layers.BatchNormalization) and len(layer.input.shape) == 2
        orders = _neighbour_orders(model, keras_index[name]) if type(layer) is layers.Dense or over_features \
            else (None, None)
        ports += _layer_ports(f"{prefix}{name}", child, layer, orders, fail, reported)
    _unmapped_keras(model, ports, reported, fail)
    return ports


def pair_table(pairs: list[tuple[str, nn.Module, keras.layers.Layer, tuple]], module: nn.Module, model: keras.Model,
               problems: list[str] | None = None) -> list[Port]:
    """The weight table of layers paired by the caller: (torch name, torch module, Keras layer, (in_order,
    out_order)) each. As strict as `weight_table`: every tensor of `module` and every variable of `model` is mapped
    exactly once, shapes asserted; raises ConversionError, or records each problem in `problems`."""

    def fail(message: str) -> None:
        if problems is None:
            raise ConversionError(message)
        problems.append(message)

    ports: list[Port] = []
    reported: set[int] = set()
    for name, child, layer, orders in pairs:
        ports += _layer_ports(name, child, layer, orders, fail, reported)
    for side, key in (("torch tensor", lambda port: id(port.torch_tensor)),
                      ("Keras variable", lambda port: id(port.keras_variable))):
        twice = sorted({port.name for port in ports if [key(other) for other in ports].count(key(port)) > 1})
        if twice:
            fail(f"a {side} would be copied twice (one layer paired with two): {twice}")
    accounted = {id(tensor) for _, child, _, _ in pairs for tensor in _tensors(child).values()}
    unmapped = [name for name, tensor in [*module.named_parameters(), *module.named_buffers()]
                if name.rsplit(".", 1)[-1] not in TORCH_ONLY and id(tensor) not in accounted]
    if unmapped:
        fail(f"torch tensors with no Keras counterpart: {unmapped}")
    _unmapped_keras(model, ports, reported, fail)
    return ports


def _tensors(child: nn.Module) -> dict[str, torch.Tensor]:
    tensors = dict(child.named_parameters(recurse=False)) | dict(child.named_buffers(recurse=False))
    return {key: value for key, value in tensors.items() if key not in TORCH_ONLY}


def _layer_ports(name: str, child: nn.Module, layer, orders: tuple, fail: Callable, reported: set) -> list[Port]:
    """The ports of one pair of layers; each mismatch goes to `fail`, its Keras variables into `reported`."""
    tensors = _tensors(child)
    if not tensors and not layer.weights:
        return []
    try:
        pairs = _layer_pairs(child, layer, *orders)
    except ConversionError as error:
        fail(str(error))
        reported.update(id(variable) for variable in layer.weights)
        return []
    ports = []
    for torch_name, keras_name, (to_keras, to_torch) in pairs:
        tensor, variable = tensors.pop(torch_name, None), getattr(layer, keras_name, None)
        if (tensor is None) != (variable is None):
            fail(f"{name}.{torch_name}: present in only one framework "
                 f"(torch {tensor is not None}, Keras {variable is not None})")
            reported.add(id(variable))
            continue
        if tensor is None:
            continue
        expected = to_keras(np.zeros(tuple(tensor.shape)))
        if expected.shape != tuple(variable.shape):
            fail(f"{name}.{torch_name}: torch {tuple(tensor.shape)} maps to "
                 f"{expected.shape}, Keras {variable.path} is {tuple(variable.shape)}")
            reported.add(id(variable))
            continue
        trainable = isinstance(tensor, nn.Parameter)
        ports.append(Port(f"{name}.{torch_name}", tensor, variable, to_keras, to_torch, trainable))
    if tensors:
        fail(f"{name}: torch tensors {sorted(tensors)} have no Keras counterpart")
    return ports


def _unmapped_keras(model, ports: list[Port], reported: set, fail: Callable) -> None:
    mapped = {id(port.keras_variable) for port in ports} | reported
    unmapped = [variable.path for variable in model.weights if id(variable) not in mapped]
    if unmapped:
        fail(f"Keras variables with no torch counterpart: {unmapped}")


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
