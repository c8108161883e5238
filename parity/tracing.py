"""What a torch module and a Keras model compute, layer by layer (for `gan-parity compare`, parity/compare.py).

A network is seen through its leaf layers: torch modules without children, Keras layers without sublayers (a
Sequential inside a functional model inside a subclassed one is walked through). A forward pass is traced: torch
with forward hooks, Keras by wrapping each leaf's `call` for the pass (Keras runs every layer of a Sequential,
functional or subclassed model through `layer.call`). Each call of a leaf is a `Position`, in the order the pass
ran them; a leaf called twice (one LeakyReLU applied after every conv) gives two positions, `act` and `act#2`.
Code outside layers (`x.view(...)`, `F.leaky_relu` in a torch forward, `ops.reshape` in a Keras call) is not seen:
it shows as a difference between one position's output and the next one's input. A Keras conv or Dense with an
activation of its own (`Dense(64, activation="relu")`) gives two positions, the layer without its activation and
`dense.activation`, so that it pairs with torch's Linear and ReLU.

Layouts: torch images are (N, C, H, W) and Keras's (N, H, W, C); 1d signals (N, C, L) and (N, L, C); vectors
(N, F) in both. A tensor of rank 3 or more moves its channel axis last, unless its shape says the two agree already
(an Embedding's (N, T, D)); where both readings fit, the kind of layer that made it decides.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import keras
import numpy as np
import torch
import torch.nn.functional as F
from keras import layers
from torch import nn

from parity import convert
from parity.settings import describe_keras, describe_torch, keras_activation

WEIGHTED_KERAS = (layers.Conv1D, layers.Conv2D, layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Dense,
                  layers.BatchNormalization, layers.LayerNormalization, layers.Embedding)
TORCH_DROPOUTS = ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout")
SPATIAL = {"conv", "conv_transpose", "max_pool", "avg_pool", "upsampling", "zero_padding", "cropping"}
FEATURES_LAST = {"dense", "embedding"}  # kinds whose output has its features on the last axis in both frameworks


class Unsupported(ValueError):
    """A layer that `compare` cannot port: its message is one line, `not supported: ...`."""


@dataclass
class Position:
    """One call of a leaf layer during a traced forward pass."""

    name: str  # torch: the qualified module name ("main.0"); Keras: the layer's name; "#2" for a second call
    layer: object  # the nn.Module or the Keras layer
    index: int  # its place in the pass
    input_shape: tuple  # in its framework's layout, batch first
    output_shape: tuple
    fields: dict  # its settings in the vocabulary of parity/settings.py

    @property
    def kind(self) -> str:
        return self.fields["kind"]


@dataclass
class Trace:
    """The calls of one forward pass: per position its input and output as numpy arrays."""

    inputs: dict[str, object] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    order: list[tuple[str, object, tuple, tuple]] = field(default_factory=list)  # (name, layer, in, out shapes)


def _array(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    if isinstance(value, list | tuple):
        return [_array(item) for item in value]
    try:
        return np.array(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return None


def _shape(value) -> tuple:
    return tuple(value.shape) if hasattr(value, "shape") else ()


class FusedActivation:
    """The activation a Keras conv or Dense applies itself, as a position of its own."""

    weights: list = []  # nothing to copy

    def __init__(self, layer: keras.layers.Layer, function):
        self.layer, self.function, self.name = layer, function, f"{layer.name}.activation"

    def __call__(self, x, training=None):
        return self.function(x)


def fused_activation(layer) -> object | None:
    """The non-linear activation of a weighted Keras layer (Dense, Conv*), or None."""
    function = getattr(layer, "activation", None)
    if type(layer) not in WEIGHTED_KERAS or function is None:
        return None
    return None if keras_activation(function)["kind"] == "linear" else function


@contextlib.contextmanager
def without_activation(layer) -> Iterator[None]:
    """Run a Keras layer without its own activation (the position after it applies it)."""
    function = fused_activation(layer)
    if function is not None:
        layer.activation = keras.activations.linear
    try:
        yield
    finally:
        if function is not None:
            layer.activation = function


# ------------------------------------------------------------------------------------------------------- Leaves


def torch_leaves(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every leaf; raises Unsupported for tensors this converter cannot port."""
    leaves = []
    for name, child in module.named_modules():
        label = name or type(module).__name__
        has_children = any(True for _ in child.children())
        own = convert._tensors(child)
        if own and has_children:
            raise Unsupported(f"not supported: torch {type(child).__name__} {label!r} (tensors {sorted(own)} of its "
                              "own beside sub-modules)")
        if own and not isinstance(child, convert.WEIGHTED_TORCH):
            raise Unsupported(f"not supported: torch {type(child).__name__} {label!r} (a layer with weights this "
                              "converter has no table for)")
        if not has_children:
            leaves.append((label, child))
    return leaves


def keras_leaves(model: keras.Model) -> list[keras.layers.Layer]:
    """Every leaf layer (no sublayers), input layers left out; once the model is built, raises Unsupported as
    `torch_leaves` does."""
    leaves = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, layers.InputLayer):
            continue
        has_sublayers = bool(layer._flatten_layers(include_self=False, recursive=False))
        own = list(layer._trainable_variables) + list(layer._non_trainable_variables)
        if own and has_sublayers:
            raise Unsupported(f"not supported: Keras {type(layer).__name__} {layer.name!r} (variables of its own "
                              "beside sublayers)")
        if own and type(layer) not in WEIGHTED_KERAS:
            raise Unsupported(f"not supported: Keras {type(layer).__name__} {layer.name!r} (a layer with weights "
                              "this converter has no table for)")
        if not has_sublayers:
            leaves.append(layer)
    return leaves


# ------------------------------------------------------------------------------------------------------ Tracing


def _position_name(counts: Counter, name: str) -> str:
    counts[name] += 1
    return name if counts[name] == 1 else f"{name}#{counts[name]}"


@contextlib.contextmanager
def traced_torch(leaves: list[tuple[str, nn.Module]], skip: frozenset = frozenset()) -> Iterator[Trace]:
    """Record every leaf call of the passes run inside; the input is copied before the call (in-place layers).
    The positions named in `skip` pass their input on instead of their output."""
    trace, counts, pending, handles = Trace(), Counter(), {}, []
    for name, module in leaves:
        def before(module, args, name=name):
            position = _position_name(counts, name)
            kept = args[0].clone() if position in skip else None
            pending[id(module)] = (position, _array(args[0]) if args else None, _shape(args[0]) if args else (), kept)

        def after(module, args, output, name=name):
            position, value, shape, kept = pending.pop(id(module))
            output = kept if kept is not None else output
            trace.inputs[position], trace.outputs[position] = value, _array(output)
            trace.order.append((position, module, shape, _shape(output)))
            return output

        handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield trace
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def traced_keras(leaves: list[keras.layers.Layer], skip: frozenset = frozenset(),
                 frozen: frozenset = frozenset()) -> Iterator[Trace]:
    """Record every leaf call of the passes run inside, by wrapping each leaf's `call` on the instance. The
    positions named in `skip` pass their input on; those in `frozen` run in inference mode."""
    trace, counts = Trace(), Counter()
    for layer in leaves:
        original = layer.call

        def call(*args, _layer=layer, _original=original, **kwargs):
            position = _position_name(counts, _layer.name)
            if position in frozen and "training" in kwargs:
                kwargs["training"] = False
            function = fused_activation(_layer)
            with without_activation(_layer):
                output = args[0] if position in skip else _original(*args, **kwargs)
            if function is not None:
                trace.inputs[position], trace.outputs[position] = _array(args[0]), _array(output)
                trace.order.append((position, _layer, _shape(args[0]), _shape(output)))
                args, position, _layer = (output,), f"{position}.activation", FusedActivation(_layer, function)
                output = args[0] if position in skip else function(output)
            trace.inputs[position], trace.outputs[position] = _array(args[0]), _array(output)
            trace.order.append((position, _layer, _shape(args[0]), _shape(output)))
            return output

        layer.call = call
    try:
        yield trace
    finally:
        for layer in leaves:
            del layer.call  # the class's own method again


def torch_positions(trace: Trace) -> list[Position]:
    return [Position(name, module, index, shape_in, shape_out, describe_torch(module))
            for index, (name, module, shape_in, shape_out) in enumerate(trace.order)]


def keras_positions(trace: Trace) -> list[Position]:
    positions = []
    for index, (name, layer, shape_in, shape_out) in enumerate(trace.order):
        if isinstance(layer, FusedActivation):
            fields = keras_activation(layer.function)
        else:
            fields = describe_keras(layer, shape_in)
            fields = fields | {"activation": "linear"} if fused_activation(layer) is not None else fields
        positions.append(Position(name, layer, index, shape_in, shape_out, fields))
    return positions


# -------------------------------------------------------------------------------------------------- Dropout off


@contextlib.contextmanager
def dropout_off(keras_leaves_: list[keras.layers.Layer]) -> Iterator[None]:
    """Training mode without random masks (they never agree across frameworks): torch's functional dropouts (which
    nn.Dropout calls too) pass their input through; every Keras dropout or noise layer gets rate 0."""
    saved_torch = {name: getattr(F, name) for name in TORCH_DROPOUTS}
    saved_keras = []
    for layer in keras_leaves_:
        for attribute in ("rate", "stddev"):
            if isinstance(layer, layers.Dropout | layers.GaussianDropout | layers.GaussianNoise | layers.AlphaDropout) \
                    and hasattr(layer, attribute):
                saved_keras.append((layer, attribute, getattr(layer, attribute)))
                setattr(layer, attribute, 0.0)
    for name in TORCH_DROPOUTS:
        setattr(F, name, lambda input, *args, **kwargs: input)
    try:
        yield
    finally:
        for name, function in saved_torch.items():
            setattr(F, name, function)
        for layer, attribute, value in saved_keras:
            setattr(layer, attribute, value)


@contextlib.contextmanager
def torch_dropout_obeys_mode(module: nn.Module) -> Iterator[None]:
    """Functional dropouts follow the module's mode: the fix of `F.dropout(x, p)` without `training=self.training`."""
    saved = {name: getattr(F, name) for name in TORCH_DROPOUTS}

    def obeying(function):
        def dropout(input, p=0.5, training=True, *args, **kwargs):
            return function(input, p, training and module.training, *args, **kwargs)
        return dropout

    for name, function in saved.items():
        setattr(F, name, obeying(function))
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(F, name, function)


# ------------------------------------------------------------------------------------------------------ Layouts


def channels_last(array: np.ndarray) -> np.ndarray:
    return np.moveaxis(array, 1, -1) if array.ndim >= 3 else array


def channels_first(array: np.ndarray) -> np.ndarray:
    return np.moveaxis(array, -1, 1) if array.ndim >= 3 else array


def moved_shape(shape: tuple) -> tuple:
    return (shape[0], *shape[2:], shape[1]) if len(shape) >= 3 else tuple(shape)


def channels_move(torch_shape: tuple, keras_shape: tuple, kind: str | None = None,
                  previous: bool | None = None) -> bool | None:
    """Whether a tensor's channel axis moves between the frameworks (True), stays (False), or neither reading fits
    the two shapes (None); where both fit, the kind of layer that made it decides, else the previous tensor's."""
    torch_shape, keras_shape = tuple(torch_shape), tuple(keras_shape)
    moves, stays = moved_shape(torch_shape) == keras_shape, torch_shape == keras_shape
    if moves and stays and len(torch_shape) >= 3:
        if kind in SPATIAL or kind == "batch_norm" and previous is None:
            return True
        if kind in FEATURES_LAST:
            return False
        return True if previous is None else previous
    return True if moves and len(torch_shape) >= 3 else (False if stays else None)


def squeezed_equal(torch_shape: tuple, keras_shape: tuple) -> bool:
    """The same sizes once axes of size 1 are dropped, and the same number of values: (N, 100, 1, 1) and (N, 100)."""
    return [size for size in torch_shape if size != 1] == [size for size in keras_shape if size != 1] \
        and math.prod(torch_shape) == math.prod(keras_shape)
