"""The settings check: every hyperparameter of what each trainer really built, compared by name across frameworks.

Every other check copies the torch weights into Keras and compares numbers, so a setting that the copy overwrites
or that those numbers never reach passes them: a dropout rate, an optimiser's weight decay or clipnorm, a
BatchNorm without centre. This check reads the built objects themselves and describes each in one vocabulary:

| what                 | fields (the Keras meaning wherever the frameworks differ)                                  |
|----------------------|--------------------------------------------------------------------------------------------|
| conv, conv_transpose | filters, kernel, strides, dilation, groups, bias, activation; conv: the effective zero    |
|                      | padding (top, bottom, left, right); conv_transpose: the effective crop of the full output |
|                      | (in - 1) * s + d * (k - 1) + 1, so torch's padding=p and Keras's "same" meet in numbers   |
| dense                | units, bias, activation                                                                    |
| batch_norm           | momentum (Keras's: weight of the old statistic; torch's m reads 1 - m), epsilon, center,  |
|                      | scale, axis, moving statistics                                                             |
| dropout              | rate, noise shape                                                                          |
| activations          | kind (relu, leaky_relu, tanh, sigmoid, ...) and the negative slope                         |
| flatten, reshape     | the target shape, in torch's (C, H, W) order                                               |
| embedding            | input and output dimension (gan-parity compare: label embeddings)                          |
| pooling, upsampling  | window, strides, padding (as a conv's); scale and interpolation                            |
| optimiser            | class, learning rate, betas, epsilon and where it enters (torch's or Keras's rule), L2 and |
|                      | decoupled weight decay, clipnorm, clipvalue, global clipnorm, amsgrad, maximize, EMA, the  |
|                      | number of tensors it updates                                                               |
| trainer              | every field of its configuration: critic steps, penalty weight, label noise, update order |
A zero-padding layer directly before a conv (torch nn.ZeroPad2d, Keras ZeroPadding2D) is folded into that conv's
padding, and a crop directly after a transposed conv (Keras Cropping2D, torch nn.ZeroPad2d of negative padding)
into its crop: the padding a conv really sees is what is compared, however each port spells it. Numbers are
compared relatively (|a - b| / max(|a|, |b|): a learning rate of 2e-4 against 1e-4 is a difference of 0.5),
everything else exactly; a layer, optimiser or field present on one side only fails. The row names the first field
that differs.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import TYPE_CHECKING

import keras
import numpy as np
import torch
from keras import layers
from torch import nn

from parity.results import CheckResult, worst_of
from torch_impl.optim import Adam as KerasRuleAdam

if TYPE_CHECKING:
    from parity.checks import Harness

TOLERANCE = 1e-6  # relative: float32 storage of a setting (TF's LeakyReLU slope, a float32 learning rate) is 3e-8


# ------------------------------------------------------------------------------------------------------ Layers


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def torch_activation(module: nn.Module) -> dict | None:
    """The activation a torch module applies, or None when it is not an activation."""
    kinds = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.ELU: "elu", nn.GELU: "gelu",
             nn.SiLU: "silu", nn.Softplus: "softplus", nn.Identity: "linear"}
    if isinstance(module, nn.LeakyReLU):
        return {"kind": "leaky_relu", "negative_slope": module.negative_slope}
    for kind, name in kinds.items():
        if type(module) is kind:
            return {"kind": name}
    return None


def keras_activation(function) -> dict:
    """A Keras activation function (Dense's, Conv2D's or an Activation layer's) in the same words."""
    name = getattr(function, "__name__", str(function))
    if name == "leaky_relu":  # keras.activations.leaky_relu's default slope
        return {"kind": "leaky_relu", "negative_slope": 0.2}
    return {"kind": name}


def torch_padding(module: nn.Conv1d | nn.Conv2d) -> tuple:
    """(top, bottom, left, right) zeros that a torch conv pads its input with; (left, right) for a Conv1d."""
    if module.padding == "valid":
        return (0,) * 2 * len(module.kernel_size)
    if module.padding == "same":  # stride 1 only; torch puts the odd pixel at the end
        totals = [d * (k - 1) for k, d in zip(module.kernel_size, module.dilation)]
        return tuple(side for total in totals for side in (total // 2, total - total // 2))
    return tuple(side for pad in module.padding for side in (pad, pad))


def _input_sizes(layer: keras.layers.Layer, input_shape: tuple | None) -> tuple | None:
    """The spatial sizes of a channels-last input: from `input_shape` (batch first) or the layer's symbolic input."""
    if input_shape is None:
        try:
            input_shape = tuple(layer.input.shape)
        except (AttributeError, ValueError):  # a subclassed model's layer has no symbolic input
            return None
    return tuple(input_shape[1:-1])


def keras_padding(layer: layers.Conv2D, input_shape: tuple | None = None, window: tuple | None = None) -> tuple | str:
    """(top, bottom, left, right) zeros that a Keras conv (or pooling, with its `window`) pads its input with:
    TensorFlow's "same" puts the odd pixel at the bottom and right, and depends on the input size."""
    window = window or layer.kernel_size
    if layer.padding == "valid":
        return (0,) * 2 * len(window)
    if layer.padding == "causal":  # Conv1D: everything before
        return ((window[0] - 1) * layer.dilation_rate[0], 0)
    sizes = _input_sizes(layer, input_shape)
    if sizes is None:
        return "same (input size unknown)"
    padding = []
    dilations = getattr(layer, "dilation_rate", (1,) * len(window))
    for size, kernel, stride, dilation in zip(sizes, window, layer.strides, dilations):
        total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
        padding += [total // 2, total - total // 2]
    return tuple(padding)


def torch_crop(module: nn.ConvTranspose1d | nn.ConvTranspose2d) -> tuple:
    """(top, bottom, left, right) rows and columns that a torch transposed conv removes from its full output."""
    return tuple(side for pad, extra in zip(module.padding, module.output_padding) for side in (pad, pad - extra))


def keras_crop(layer: layers.Conv2DTranspose) -> tuple:
    """(top, bottom, left, right) that a Keras transposed conv removes from its full output (negative: zeros added),
    by the padding rule Keras states for every backend (keras/src/backend/common/backend_utils.py)."""
    crop = []
    extras = _pair(layer.output_padding) if layer.output_padding is not None else (None, None)
    for kernel, stride, dilation, extra in zip(layer.kernel_size, layer.strides, layer.dilation_rate, extras):
        kernel = (kernel - 1) * dilation + 1
        if layer.padding == "valid":
            extra = max(kernel, stride) - kernel if extra is None else extra
            before, after = kernel - 1, kernel - 1 + extra
        else:
            total = stride + kernel - 2 if extra is None else kernel + kernel % 2 - 2 + extra
            before = min(total // 2 + total % 2, kernel - 1)
            after = total - before
        crop += [kernel - 1 - before, kernel - 1 - after]
    return tuple(crop)


def describe_torch(module: nn.Module) -> dict:
    """A torch layer's settings in the shared vocabulary; {"kind": "torch <class>"} for a kind this table lacks."""
    activation = torch_activation(module)
    if activation is not None:
        return activation
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        return {"kind": "conv", "filters": module.out_channels, "kernel": module.kernel_size, "strides": module.stride,
                "dilation": module.dilation, "groups": module.groups, "padding": torch_padding(module),
                "padding_mode": module.padding_mode, "bias": module.bias is not None, "activation": "linear"}
    if isinstance(module, nn.ConvTranspose1d | nn.ConvTranspose2d):
        return {"kind": "conv_transpose", "filters": module.out_channels, "kernel": module.kernel_size,
                "strides": module.stride, "dilation": module.dilation, "groups": module.groups,
                "crop": torch_crop(module), "bias": module.bias is not None, "activation": "linear"}
    if isinstance(module, nn.Linear):
        return {"kind": "dense", "units": module.out_features, "bias": module.bias is not None, "activation": "linear"}
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        momentum = "cumulative average" if module.momentum is None else 1 - module.momentum
        return {"kind": "batch_norm", "momentum": momentum, "epsilon": module.eps, "center": module.affine,
                "scale": module.affine, "axis": "channels", "moving_statistics": module.track_running_stats}
    if isinstance(module, nn.LayerNorm):
        return {"kind": "layer_norm", "epsilon": module.eps, "center": module.bias is not None,
                "scale": module.weight is not None}
    if isinstance(module, nn.Dropout) or type(module) is nn.Dropout2d:  # nn.Dropout and its subclasses
        return {"kind": "dropout" if isinstance(module, nn.Dropout) else "spatial_dropout", "rate": module.p}
    if isinstance(module, nn.Flatten):
        return {"kind": "flatten", "dims": (module.start_dim, module.end_dim)}
    if isinstance(module, nn.Unflatten):
        return {"kind": "reshape", "shape": tuple(module.unflattened_size)}
    if isinstance(module, nn.ZeroPad2d):
        left, right, top, bottom = module.padding
        if max(module.padding) <= 0 < -min(module.padding):  # negative padding crops (a port of TF's "same" convT)
            return {"kind": "cropping", "crop": (-top, -bottom, -left, -right)}
        return {"kind": "zero_padding", "padding": (top, bottom, left, right)}
    return describe_torch_more(module)


def describe_keras(layer: keras.layers.Layer, input_shape: tuple | None = None) -> dict:
    """A Keras layer's settings in the shared vocabulary; {"kind": "keras <class>"} for a kind this table lacks.
    `input_shape` (batch first) stands in for the symbolic input a subclassed model's layers lack."""
    if isinstance(layer, layers.LeakyReLU):
        return {"kind": "leaky_relu", "negative_slope": layer.negative_slope}
    if isinstance(layer, layers.ReLU):
        if layer.max_value is not None or layer.threshold:
            return {"kind": "relu", "max_value": layer.max_value, "threshold": layer.threshold}
        if layer.negative_slope:
            return {"kind": "leaky_relu", "negative_slope": layer.negative_slope}
        return {"kind": "relu"}
    if isinstance(layer, layers.Activation):
        return keras_activation(layer.activation)
    if type(layer) in (layers.Conv1D, layers.Conv2D):
        return {"kind": "conv", "filters": layer.filters, "kernel": layer.kernel_size, "strides": layer.strides,
                "dilation": layer.dilation_rate, "groups": layer.groups, "padding": keras_padding(layer, input_shape),
                "padding_mode": "zeros", "bias": layer.use_bias,
                "activation": keras_activation(layer.activation)["kind"]}
    if type(layer) in (layers.Conv1DTranspose, layers.Conv2DTranspose):
        return {"kind": "conv_transpose", "filters": layer.filters, "kernel": layer.kernel_size,
                "strides": layer.strides, "dilation": layer.dilation_rate, "groups": 1, "crop": keras_crop(layer),
                "bias": layer.use_bias, "activation": keras_activation(layer.activation)["kind"]}
    if type(layer) is layers.Dense:
        return {"kind": "dense", "units": layer.units, "bias": layer.use_bias,
                "activation": keras_activation(layer.activation)["kind"]}
    if isinstance(layer, layers.BatchNormalization):
        rank = len(input_shape) if input_shape is not None else len(layer.input.shape)
        axis = "channels" if layer.axis in (-1, rank - 1) else f"axis {layer.axis}"
        return {"kind": "batch_norm", "momentum": layer.momentum, "epsilon": layer.epsilon, "center": layer.center,
                "scale": layer.scale, "axis": axis, "moving_statistics": True}
    if isinstance(layer, layers.LayerNormalization):
        return {"kind": "layer_norm", "epsilon": layer.epsilon, "center": layer.center, "scale": layer.scale}
    if isinstance(layer, layers.SpatialDropout2D):
        return {"kind": "spatial_dropout", "rate": layer.rate}
    if type(layer) is layers.Dropout:
        if layer.noise_shape is not None:
            return {"kind": "dropout", "rate": layer.rate, "noise_shape": tuple(layer.noise_shape)}
        return {"kind": "dropout", "rate": layer.rate}
    if isinstance(layer, layers.Flatten):
        return {"kind": "flatten", "dims": (1, -1)}
    if isinstance(layer, layers.Reshape):
        shape = tuple(layer.target_shape)
        return {"kind": "reshape", "shape": (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape}
    if isinstance(layer, layers.ZeroPadding2D):
        (top, bottom), (left, right) = layer.padding
        return {"kind": "zero_padding", "padding": (top, bottom, left, right)}
    if isinstance(layer, layers.Cropping2D):
        (top, bottom), (left, right) = layer.cropping
        return {"kind": "cropping", "crop": (top, bottom, left, right)}
    return describe_keras_more(layer, input_shape)


# The layers a ported GAN uses beyond the three models': 1d padding and cropping, label embeddings, pooling,
# upsampling. Pooling windows are (top, bottom, left, right) padded like convolutions; torch pads symmetrically.


def _sides(value, rank: int) -> tuple:
    """An int, a per-dimension tuple or ((before, after), ...) as (before, after, before, after, ...)."""
    value = (value,) * rank if isinstance(value, int) else tuple(value)
    return tuple(side for item in value for side in (item if isinstance(item, tuple | list) else (item, item)))


def _per_dim(value, rank: int) -> tuple:
    return tuple(value) if isinstance(value, tuple | list) else (value,) * rank


def _one_if_equal(value):
    """(2, 2) as 2: torch's Upsample holds one scale for every dimension, Keras's UpSampling2D a pair."""
    value = tuple(value) if isinstance(value, tuple | list) else (value,)
    return value[0] if len(set(value)) == 1 else value


TORCH_POOLS = {nn.MaxPool1d: ("max_pool", 1), nn.MaxPool2d: ("max_pool", 2), nn.AvgPool1d: ("avg_pool", 1),
               nn.AvgPool2d: ("avg_pool", 2)}
KERAS_POOLS = {layers.MaxPooling1D: "max_pool", layers.MaxPooling2D: "max_pool", layers.AveragePooling1D: "avg_pool",
               layers.AveragePooling2D: "avg_pool"}


def describe_torch_more(module: nn.Module) -> dict:
    if isinstance(module, nn.ZeroPad1d):
        if max(module.padding) <= 0 < -min(module.padding):
            return {"kind": "cropping", "crop": tuple(-side for side in module.padding)}
        return {"kind": "zero_padding", "padding": tuple(module.padding)}
    if isinstance(module, nn.Embedding):
        return {"kind": "embedding", "input_dim": module.num_embeddings, "output_dim": module.embedding_dim,
                "max_norm": module.max_norm}
    if type(module) in TORCH_POOLS:
        kind, rank = TORCH_POOLS[type(module)]
        fields = {"kind": kind, "pool": _per_dim(module.kernel_size, rank), "strides": _per_dim(module.stride, rank),
                  "padding": _sides(module.padding, rank)}
        if kind == "avg_pool" and any(fields["padding"]):
            fields["count_padding"] = module.count_include_pad
        return fields
    if isinstance(module, nn.AdaptiveAvgPool2d) and _per_dim(module.output_size, 2) == (1, 1):
        return {"kind": "global_avg_pool", "keepdims": True}
    if isinstance(module, nn.Upsample):
        return {"kind": "upsampling", "size": _one_if_equal(module.scale_factor), "interpolation": module.mode}
    return {"kind": f"torch {type(module).__name__}"}


def describe_keras_more(layer: keras.layers.Layer, input_shape: tuple | None) -> dict:
    if isinstance(layer, layers.ZeroPadding1D):
        return {"kind": "zero_padding", "padding": tuple(layer.padding)}
    if isinstance(layer, layers.Cropping1D):
        return {"kind": "cropping", "crop": tuple(layer.cropping)}
    if type(layer) is layers.Embedding:
        return {"kind": "embedding", "input_dim": layer.input_dim, "output_dim": layer.output_dim, "max_norm": None}
    if type(layer) in KERAS_POOLS:
        fields = {"kind": KERAS_POOLS[type(layer)], "pool": tuple(layer.pool_size), "strides": tuple(layer.strides),
                  "padding": keras_padding(layer, input_shape, tuple(layer.pool_size))}
        if fields["kind"] == "avg_pool" and any(fields["padding"]):
            fields["count_padding"] = False  # Keras averages over the input pixels only
        return fields
    if type(layer) is layers.GlobalAveragePooling2D:
        return {"kind": "global_avg_pool", "keepdims": layer.keepdims}
    if isinstance(layer, layers.UpSampling1D | layers.UpSampling2D):
        interpolation = getattr(layer, "interpolation", "nearest")
        return {"kind": "upsampling", "size": _one_if_equal(layer.size), "interpolation": interpolation}
    return {"kind": f"keras {type(layer).__name__}"}


def folded(described: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Zero padding folded into the conv right after it, cropping into the transposed conv right before it."""
    out: list[tuple[str, dict]] = []
    for name, fields in described:
        previous = out[-1][1] if out else None
        if previous is not None and previous["kind"] == "zero_padding" and fields["kind"] == "conv" \
                and isinstance(fields["padding"], tuple):
            fields = fields | {"padding": tuple(a + b for a, b in zip(previous["padding"], fields["padding"]))}
            out.pop()
        elif previous is not None and previous["kind"] == "conv_transpose" and fields["kind"] == "cropping":
            out[-1] = (out[-1][0], previous | {"crop": tuple(a + b for a, b in zip(previous["crop"], fields["crop"]))})
            continue
        out.append((name, fields))
    return out


def network_rows(network: str, torch_net: nn.Module, keras_net: keras.Model) -> list[tuple[str, object, object]]:
    """(label, torch value, Keras value) for every field of every layer, paired by name in torch's order."""
    torch_layers = dict(folded([(name, describe_torch(module)) for name, module in torch_net.named_children()]))
    keras_layers = dict(folded([(layer.name, describe_keras(layer)) for layer in keras_net.layers]))
    names = list(torch_layers) + [name for name in keras_layers if name not in torch_layers]
    return [row for name in names
            for row in field_rows(f"{network}.{name}", torch_layers.get(name), keras_layers.get(name))]


def field_rows(label: str, torch_fields: dict | None, keras_fields: dict | None) -> list[tuple[str, object, object]]:
    if torch_fields is None or keras_fields is None:
        kind = (torch_fields or keras_fields)["kind"]
        side = "torch" if keras_fields is None else "Keras"
        return [(f"{label}: a {kind} layer in {side} only", torch_fields, keras_fields)]
    if torch_fields["kind"] != keras_fields["kind"]:
        return [(f"{label} kind", torch_fields["kind"], keras_fields["kind"])]
    keys = list(torch_fields) + [key for key in keras_fields if key not in torch_fields]
    return [(f"{label} {key}", torch_fields.get(key, "(absent)"), keras_fields.get(key, "(absent)")) for key in keys]


# -------------------------------------------------------------------------------------------------- Optimisers


def describe_torch_optimizer(optimizer: torch.optim.Optimizer) -> dict:
    groups = optimizer.param_groups
    group = groups[0]
    decoupled = isinstance(optimizer, torch.optim.AdamW) or group.get("decoupled_weight_decay", False)
    kind = "Adam" if isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW) else type(optimizer).__name__
    betas = group.get("betas", (None, None))
    fields = {
        "class": kind,
        "learning_rate": float(group["lr"]),
        "beta_1": betas[0], "beta_2": betas[1],
        "epsilon": getattr(optimizer, "epsilon", group.get("eps")),
        "epsilon_rule": "keras" if isinstance(optimizer, KerasRuleAdam) else "torch",
        "l2_weight_decay": 0.0 if decoupled else group.get("weight_decay", 0.0),
        "decoupled_weight_decay": group.get("weight_decay", 0.0) if decoupled else 0.0,
        "clipnorm": None, "clipvalue": None, "global_clipnorm": None,  # torch clips in the loop, not the optimiser
        "amsgrad": group.get("amsgrad", False), "maximize": group.get("maximize", False), "ema": False,
        "gradient_accumulation_steps": None,
        "tensors": sum(len(group["params"]) for group in groups),
    }
    if len(groups) > 1:
        fields["param_groups"] = len(groups)
    return fields


def describe_keras_optimizer(optimizer: keras.optimizers.Optimizer) -> dict:
    kind = "Adam" if isinstance(optimizer, keras.optimizers.Adam | keras.optimizers.AdamW) else type(optimizer).__name__
    rate = optimizer.learning_rate
    rate = float(keras.ops.convert_to_numpy(rate)) if not callable(rate) else f"schedule {type(rate).__name__}"
    return {
        "class": kind,
        "learning_rate": rate,
        "beta_1": float(getattr(optimizer, "beta_1", math.nan)),
        "beta_2": float(getattr(optimizer, "beta_2", math.nan)),
        "epsilon": optimizer.epsilon,
        "epsilon_rule": "keras",
        "l2_weight_decay": 0.0,
        "decoupled_weight_decay": float(optimizer.weight_decay or 0.0),
        "clipnorm": optimizer.clipnorm, "clipvalue": optimizer.clipvalue, "global_clipnorm": optimizer.global_clipnorm,
        "amsgrad": getattr(optimizer, "amsgrad", False), "maximize": False, "ema": bool(optimizer.use_ema),
        "gradient_accumulation_steps": optimizer.gradient_accumulation_steps,
        "tensors": len(optimizer._trainable_variables),
    }


def optimizer_rows(torch_trainer, keras_trainer) -> list[tuple[str, object, object]]:
    """Every optimiser of the two trainers, paired by attribute name (d_optimizer, g_optimizer, c_optimizer)."""
    torch_optimizers = {name: value for name, value in vars(torch_trainer).items()
                        if isinstance(value, torch.optim.Optimizer)}
    keras_optimizers = {name: value for name, value in vars(keras_trainer).items()
                        if isinstance(value, keras.optimizers.Optimizer)}
    rows = []
    for name in list(torch_optimizers) + [name for name in keras_optimizers if name not in torch_optimizers]:
        torch_fields = describe_torch_optimizer(torch_optimizers[name]) if name in torch_optimizers else None
        keras_fields = describe_keras_optimizer(keras_optimizers[name]) if name in keras_optimizers else None
        if torch_fields is not None and keras_fields is not None:
            torch_fields, keras_fields = {"kind": "optimiser"} | torch_fields, {"kind": "optimiser"} | keras_fields
        elif torch_fields is not None or keras_fields is not None:
            (torch_fields or keras_fields)["kind"] = "optimiser"
        rows += field_rows(name, torch_fields, keras_fields)
    return rows


# ---------------------------------------------------------------------------------------------------- The check


def trainer_rows(torch_trainer, keras_trainer) -> list[tuple[str, object, object]]:
    """Every field of the configuration each train step reads (critic steps, penalty weight, label noise, ...)."""
    torch_config, keras_config = dataclasses.asdict(torch_trainer.config), dataclasses.asdict(keras_trainer.config)
    return field_rows("trainer.config", {"kind": "config"} | torch_config, {"kind": "config"} | keras_config)


def difference(torch_value, keras_value) -> tuple[float, float]:
    """(abs diff, relative diff) of two settings: numbers (or tuples of numbers) relatively, the rest exactly."""
    def numeric(value):
        return isinstance(value, numbers.Real) and not isinstance(value, bool)

    if isinstance(torch_value, tuple) and isinstance(keras_value, tuple) and len(torch_value) == len(keras_value) \
            and torch_value and all(map(numeric, torch_value + keras_value)):
        a, b = np.asarray(torch_value, np.float64), np.asarray(keras_value, np.float64)
    elif numeric(torch_value) and numeric(keras_value):
        a, b = np.float64(torch_value), np.float64(keras_value)
    else:
        same = type(torch_value) is type(keras_value) and torch_value == keras_value  # True is not 1 here
        return (0.0, 0.0) if same else (math.inf, math.inf)
    if np.any(np.isnan(a) != np.isnan(b)):
        return math.inf, math.inf
    gap = np.where(np.isnan(a), 0.0, np.abs(a - b))
    scale = np.maximum(np.abs(a), np.abs(b))
    relative = np.where(gap == 0, 0.0, gap / np.where(scale == 0, 1.0, scale))
    return float(np.max(gap)), float(np.max(relative))


def check_settings(h: Harness) -> CheckResult:
    rows = []
    for network, torch_net, keras_net in h.networks():
        rows += network_rows(network, torch_net, keras_net)
    rows += optimizer_rows(h.torch_trainer, h.keras_trainer) + trainer_rows(h.torch_trainer, h.keras_trainer)
    judged = []
    for label, torch_value, keras_value in rows:
        abs_diff, relative = difference(torch_value, keras_value)
        if relative > TOLERANCE:
            label = f"{label}: torch {torch_value!r}, Keras {keras_value!r}"
        judged.append((label, abs_diff, relative))
    return worst_of("settings", TOLERANCE, judged)
