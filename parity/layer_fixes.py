"""The fixes parity/diagnose.py tries at a layer that diverges, each on a copy of the port's layer.

A trial runs the source's layer and a (fixed) copy of the port's on the input the source's layer saw in the traced
pass, from the pair's saved state, and compares the outputs and, in training mode, the running statistics (and a
dropout pair's rate). Candidates: each setting that differs set to the source's (BatchNorm epsilon and momentum,
LeakyReLU slope, the activation, a conv's padding made explicit, a transposed conv's full output cropped as the
source crops, a dropout rate, an upsampling's interpolation); in keep mode the weights re-copied by the strict map
(the port's weights then matched exactly against the catalogue's wrong copies); for a Dense, its rows in the other
flatten order. One at a time, then the setting changes together.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import torch
from keras import layers
from torch import nn

from parity import convert, tracing
from parity.distributions import DROPOUT_TOLERANCE, DROPOUT_VALUES, dropped
from parity.findings import Finding, Trial
from parity.results import diffs
from parity.settings import TOLERANCE as SETTINGS_TOLERANCE
from parity.settings import difference, keras_crop
from parity.user_pair import Row, UserPair

TORCH_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "linear": nn.Identity, "elu": nn.ELU,
                     "gelu": nn.GELU, "silu": nn.SiLU, "softplus": nn.Softplus}
ATTRIBUTES = {"epsilon": ("eps", "epsilon"), "momentum": ("momentum", "momentum"), "rate": ("p", "rate"),
              "negative_slope": ("negative_slope", "negative_slope"), "interpolation": ("mode", "interpolation")}
LIMITS = {"dropout rate": DROPOUT_TOLERANCE}  # the other keys are judged by the forward tolerance
KERAS_WEIGHTS = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance", "embeddings")


@dataclass
class Fix:
    text: str
    pitfall: int | None
    changes: dict = field(default_factory=dict)  # settings of the port's main layer (added up across fixes)
    build: Callable | None = None  # () -> the port group's layers, for a fix that is not a change of settings
    orders: tuple | None = None  # a Dense's feature orders (in, out) instead of the converter's


class NumpyStep:
    """A step outside any layer in a fixed port: explicit padding before a conv, a crop after a transposed conv."""

    def __init__(self, function: Callable[[np.ndarray], np.ndarray]):
        self.function = function

    def __call__(self, array: np.ndarray) -> np.ndarray:
        return self.function(array)


# ----------------------------------------------------------------------------------------- One layer, one input


def groups_of(pair: UserPair, index: int):
    layer_pair = pair.pairs[index]
    source, port = (layer_pair.torch, layer_pair.keras) if pair.source == "torch" else (layer_pair.keras,
                                                                                         layer_pair.torch)
    return source, port


def run_layers(side: str, stack: list, array: np.ndarray, training: bool) -> np.ndarray:
    for layer in stack:
        if isinstance(layer, NumpyStep):
            array = layer(array)
        elif side == "torch":
            layer.train(training)
            with torch.no_grad():
                array = layer(torch.from_numpy(np.array(array))).detach().cpu().numpy()  # a copy: in-place layers
        else:
            with tracing.without_activation(layer):  # a fused activation is a position of its own
                array = np.asarray(keras.ops.convert_to_numpy(layer(array, training=training)))
    return array


def port_layout(pair: UserPair, array: np.ndarray, port_shape: tuple, order=None) -> np.ndarray:
    """The source's tensor in the port's layout, where the port's recorded shape says the channels move; a vector's
    features in the port's order (`order`: the Keras order of torch's features)."""
    if array.ndim == 2 and order is not None and array.shape[1] == len(order):
        return array[:, order] if pair.source == "torch" else array[:, np.argsort(order)]
    if array.ndim >= 3 and pair.source == "torch" and tracing.moved_shape(array.shape) == tuple(port_shape):
        return tracing.channels_last(array)
    if array.ndim >= 3 and pair.source == "keras" and tracing.moved_shape(port_shape) == tuple(array.shape):
        return tracing.channels_first(array)
    return array


def compare_sides(pair: UserPair, source_value, port_value, kind, order=None) -> float:
    torch_value, keras_value = (source_value, port_value) if pair.source == "torch" else (port_value, source_value)
    return pair.compare_arrays(torch_value, keras_value, kind, order=order)[1]


def batch_norm_state(pair: UserPair, index: int, torch_bn, keras_bn, count: int, biased: bool = False) -> float:
    """Running statistics of two BatchNorms after one pass, Keras's variance in torch's convention (or, with
    `biased`, read as torch's running_var is: the test of a torch BatchNorm that stores the biased variance)."""
    ports = {port.name.rsplit(".", 1)[1]: port for port in pair.pair_ports.get(index, [])}
    if "running_mean" not in ports:
        return math.nan
    mean = diffs(torch_bn.running_mean.detach().numpy(),
                 ports["running_mean"].to_torch(np.asarray(keras.ops.convert_to_numpy(keras_bn.moving_mean))))[1]
    port = ports["running_var"]
    keras_var = port.to_torch(np.asarray(keras.ops.convert_to_numpy(keras_bn.moving_variance)))
    if not biased and count > 1:
        start = port.to_torch(pair.saved[1][pair.keras_index[id(port.keras_variable)]])
        keras_var = keras_bn.momentum * start + count / (count - 1) * (keras_var - keras_bn.momentum * start)
    return max(mean, diffs(torch_bn.running_var.detach().numpy(), keras_var)[1])


def measure(pair: UserPair, index: int, modes: list[str], fix: Fix | None = None, biased: bool = False) -> dict:
    """{"<mode> output" / "training state" / "dropout rate": scaled difference} of the source's layer and the
    port's (fixed) copy on the same input."""
    source, port = groups_of(pair, index)
    out = {}
    for mode in modes:
        training = mode != "inference"
        with pair.running(training, dropout=mode == "dropout"):
            stack = build_port(pair, port, fix)
            source_stack = [position.layer for position in source.positions]
            if mode == "dropout":
                out["dropout rate"] = dropout_difference(pair, source, port, stack)
                continue
            torch_trace, keras_trace = pair.traces[mode]
            trace = torch_trace if pair.source == "torch" else keras_trace
            x = trace.inputs.get(source.first.name)
            if not isinstance(x, np.ndarray):
                continue
            keras_stack = stack if pair.source == "torch" else source_stack
            slopes = {float(np.float32(layer.negative_slope)) for layer in keras_stack
                      if getattr(layer, "negative_slope", None) is not None}
            with pair.float32_slopes(slopes):
                y_source = run_layers(pair.source, source_stack, x, training)
                in_order, out_order = fix.orders if fix and fix.orders else (pair.pairs[index].in_order,
                                                                             pair.pairs[index].out_order)
                y_port = run_layers(pair.port, stack, port_layout(pair, x, port.first.input_shape, in_order), training)
            out[f"{mode} output"] = compare_sides(pair, y_source, y_port, source.main.kind, out_order)
            if training and source.main.kind == "batch_norm":
                torch_bn, keras_bn = (source_stack, stack) if pair.source == "torch" else (stack, source_stack)
                torch_bn = next(layer for layer in torch_bn if isinstance(layer, nn.modules.batchnorm._BatchNorm))
                keras_bn = next(layer for layer in keras_bn if isinstance(layer, layers.BatchNormalization))
                shape = x.shape if pair.source == "torch" else port.first.input_shape  # torch's layout
                count = math.prod(shape) // shape[1] if len(shape) >= 2 else 0
                out["training state"] = batch_norm_state(pair, index, torch_bn, keras_bn, count, biased)
    return out


def dropout_difference(pair: UserPair, source, port, stack) -> float:
    shape = tuple(source.first.input_shape[1:])
    batch = max(1, math.ceil(DROPOUT_VALUES / max(1, math.prod(shape))))
    ones = np.ones((batch, *shape), pair.dtype)
    source_stats = dropped(run_layers(pair.source, [p.layer for p in source.positions], ones, True))
    port_stats = dropped(run_layers(pair.port, stack, port_layout(pair, ones, (batch, *port.first.input_shape[1:])),
                                    True))
    return diffs(np.array(source_stats), np.array(port_stats))[1]


def build_port(pair: UserPair, port, fix: Fix | None) -> list:
    if fix is None:
        return [position.layer for position in port.positions]
    if fix.build is not None:
        return fix.build()
    main = clone(pair, port, fix.changes)
    return [main if position is port.main else position.layer for position in port.positions]


def clone(pair: UserPair, group, changes: dict, weights: dict | None = None):
    """A copy of the group's main layer, its settings changed (in the shared vocabulary's words), its weights
    kept or given (Keras attribute -> array in the port's layout)."""
    layer = group.main.layer
    if pair.port == "torch":
        copied = copy.deepcopy(layer)
        for key, value in changes.items():
            setattr(copied, ATTRIBUTES.get(key, (key,))[0], 1 - value if key == "momentum" else value)
        with torch.no_grad():
            for name, value in (weights or {}).items():
                getattr(copied, name).copy_(torch.from_numpy(value))
        return copied
    config = layer.get_config() | {ATTRIBUTES.get(key, (None, key))[1]: value for key, value in changes.items()}
    copied = type(layer).from_config(config)
    copied.build(group.main.input_shape)
    for name in KERAS_WEIGHTS:
        target = getattr(copied, name, None)
        if target is None:
            continue
        value = (weights or {}).get(name)
        if value is None and getattr(layer, name, None) is not None:
            value = keras.ops.convert_to_numpy(getattr(layer, name))
        if value is not None:
            target.assign(value)
    return copied


# ------------------------------------------------------------------------------------------- Candidate fixes


def differs(source: dict, port: dict, key: str) -> bool:
    return difference(source.get(key, "(absent)"), port.get(key, "(absent)"))[1] > SETTINGS_TOLERANCE


def side_name(side: str) -> str:
    return "torch" if side == "torch" else "Keras"


def setting_fixes(pair: UserPair, index: int) -> list[Fix]:
    source, port = groups_of(pair, index)
    src, dst = source.fields, port.fields
    torch_fields = src if pair.source == "torch" else dst
    keras_fields = dst if pair.source == "torch" else src
    where = side_name(pair.port)
    fixes = []
    if src["kind"] != dst["kind"]:
        kinds = {src["kind"], dst["kind"]}
        number = 4 if kinds == {"relu", "leaky_relu"} else 12 if kinds == {"sigmoid", "linear"} else None
        fixes.append(Fix(f"{where} {dst['kind']} -> {src['kind']} (the source's activation)", number,
                         build=lambda: [activation(pair.port, src)]))
        return fixes
    kind = src["kind"]
    if kind == "batch_norm":
        trap = isinstance(torch_fields["epsilon"], float) and torch_fields["epsilon"] >= 0.05
        momentum = 42 if keras_fields["momentum"] == 0.99 else 1  # Keras's default, or a value copied literally
        for key, number in (("epsilon", 2), ("momentum", momentum)):
            if differs(src, dst, key):
                fixes.append(Fix(f"{where} {key} {shown(dst[key])} -> {shown(src[key])} (the source's"
                                 f"{', in Keras meaning' if key == 'momentum' else ''})", 40 if trap else number,
                                 {key: src[key]}))
    for key, kinds, number in (("negative_slope", ("leaky_relu",), 3), ("epsilon", ("layer_norm",), None),
                               ("rate", ("dropout", "spatial_dropout"), 22),
                               ("interpolation", ("upsampling",), None)):
        if kind in kinds and differs(src, dst, key):
            fixes.append(Fix(f"{where} {key} {shown(dst[key])} -> {shown(src[key])} (the source's)", number,
                             {key: src[key]}))
    if kind == "conv" and differs(src, dst, "padding") and isinstance(src["padding"], tuple):
        asymmetric = [any(a != b for a, b in zip(side[::2], side[1::2])) for side in (src["padding"], dst["padding"])]
        fixes.append(Fix(f"{where} conv padded explicitly {src['padding']} (the source's (top, bottom, left, right))",
                         6 if asymmetric[0] != asymmetric[1] else None, build=lambda: padded_conv(pair, port, src)))
    if kind == "conv_transpose" and differs(src, dst, "crop"):
        torch_crop = torch_fields["crop"]
        keras_valid = isinstance(port.main.layer if pair.port == "keras" else source.main.layer, layers.Layer) and (
            (port.main.layer if pair.port == "keras" else source.main.layer).padding == "valid")
        uncropped = keras_valid and not any(keras_fields["crop"]) and any(torch_crop)
        extra = any(a != b for a, b in zip(torch_crop[::2], torch_crop[1::2]))
        number = 41 if uncropped else 7 if extra else None
        fixes.append(Fix(f"{where} transposed conv cropped by {src['crop']} (the source's (top, bottom, left, "
                         "right))", number, build=lambda: cropped_transpose(pair, port, src)))
    return fixes


def shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


def activation(side: str, fields: dict):
    kind, slope = fields["kind"], fields.get("negative_slope")
    if side == "torch":
        return nn.LeakyReLU(slope) if kind == "leaky_relu" else TORCH_ACTIVATIONS[kind]()
    return layers.LeakyReLU(negative_slope=slope) if kind == "leaky_relu" else layers.Activation(kind)


def _pad_widths(side: str, sides: tuple, rank: int) -> list:
    spatial = [(sides[2 * i], sides[2 * i + 1]) for i in range(len(sides) // 2)]
    return [(0, 0), *spatial, (0, 0)] if side == "keras" else [(0, 0), (0, 0), *spatial]


def padded_conv(pair: UserPair, port, source_fields: dict) -> list:
    widths = _pad_widths(pair.port, source_fields["padding"], len(source_fields["kernel"]))
    zero = (0,) * len(source_fields["kernel"])
    conv = clone(pair, port, {"padding": "valid" if pair.port == "keras" else zero})
    return [NumpyStep(lambda x: np.pad(x, widths)), conv]


def cropped_transpose(pair: UserPair, port, source_fields: dict) -> list:
    """The port's transposed conv with its full output ("valid", padding 0), then the source's crop."""
    rank = len(source_fields["kernel"])
    if pair.port == "keras":
        full = clone(pair, port, {"padding": "valid", "output_padding": None})
        have = keras_crop(full)
    else:
        full = clone(pair, port, {"padding": (0,) * rank, "output_padding": (0,) * rank})
        have = (0,) * 2 * rank
    wanted = [a - b for a, b in zip(source_fields["crop"], have)]
    first_axis = 1 if pair.port == "keras" else 2

    def crop(array: np.ndarray) -> np.ndarray:
        for dim in range(rank):
            before, after = wanted[2 * dim], wanted[2 * dim + 1]
            axis = first_axis + dim
            pad = [(0, 0)] * array.ndim
            pad[axis] = (max(-before, 0), max(-after, 0))
            array = np.pad(array, pad)
            size = array.shape[axis]
            array = np.take(array, range(max(before, 0), size - max(after, 0)), axis=axis)
        return array

    return [full, NumpyStep(crop)]


def weight_fixes(pair: UserPair, index: int) -> list[Fix]:
    """Keep mode: the port's weights re-copied by the strict map; copy mode, a Dense: rows in the other order."""
    source, port = groups_of(pair, index)
    ports = pair.pair_ports.get(index, [])
    fixes = []
    if pair.weights == "keep" and ports:
        fixes.append(Fix("weights re-copied from the source by the strict map", wrong_copy(pair, index),
                         build=lambda: [clone(pair, port, {}, recopied(pair, ports))
                                        if p is port.main else p.layer for p in port.positions]))
    if source.main.kind == "dense" and pair.weights == "copy":
        layer_pair = pair.pairs[index]
        alternative = other_orders(pair, layer_pair)
        if alternative is not None:
            kernel_maps, bias_maps = convert._dense_maps(*alternative)
            maps = {"weight": kernel_maps, "bias": bias_maps}
            fixes.append(Fix(f"Dense rows {'in' if alternative[0] is not None else 'out of'} the channels-last order "
                             "of the flattened tensor", 5,
                             build=lambda: [clone(pair, port, {}, recopied(pair, ports, maps))], orders=alternative))
    return fixes


def recopied(pair: UserPair, ports: list, maps: dict | None = None) -> dict:
    """The port layer's weights from the source through each port's map (or `maps`: tensor name -> maps)."""
    out = {}
    for port in ports:
        tensor = port.name.rsplit(".", 1)[1]
        to_keras, to_torch = (maps or {}).get(tensor, (port.to_keras, port.to_torch))
        if pair.port == "keras":  # by the Keras attribute: kernel, gamma, moving_mean, embeddings, ...
            keras_name = port.keras_variable.path.rsplit("/", 1)[-1]
            out[keras_name] = to_keras(port.torch_tensor.detach().numpy()).astype(pair.dtype)
        else:
            out[tensor] = to_torch(np.asarray(keras.ops.convert_to_numpy(port.keras_variable))).astype(pair.dtype)
    return out


def other_orders(pair: UserPair, layer_pair) -> tuple | None:
    """A Dense's rows in the other flatten order: none where the converter permuted, channels-last where not."""
    in_order, out_order = layer_pair.orders
    if in_order is not None:
        return None, out_order
    position = layer_pair.keras.main
    earlier = [p for p in pair.keras_positions[: position.index] if len(p.output_shape) >= 3
               and math.prod(p.output_shape[1:]) == math.prod(position.input_shape[1:])]
    if not earlier:
        return None
    return convert.chw_to_hwc_order(earlier[-1].output_shape[1:]), out_order


def wrong_copy(pair: UserPair, index: int) -> int | None:
    """The catalogue's wrong copy the port's weights are, exactly: 9 flipped, 8 axes swapped, 5 plain transpose."""
    source, _ = groups_of(pair, index)
    for port in pair.pair_ports.get(index, []):
        torch_value = port.torch_tensor.detach().numpy()
        keras_value = np.asarray(keras.ops.convert_to_numpy(port.keras_variable))
        if pair.port == "keras":
            correct, have, spatial = port.to_keras(torch_value), keras_value, (0, 1)
            plain = torch_value.T
        else:
            correct, have, spatial = port.to_torch(keras_value), torch_value, (2, 3)
            plain = keras_value.T
        if diffs(correct, have)[1] <= pair.tolerance:
            continue
        candidates = []
        if correct.ndim >= 3:
            flip_axes = spatial[: correct.ndim - 2]
            candidates.append((9, np.flip(correct, flip_axes)))
        if correct.ndim == 4:
            candidates.append((8, np.swapaxes(correct, *spatial)))
        if correct.ndim == 2 and source.main.kind == "dense" and plain.shape == have.shape:
            candidates.append((5, plain))
        for number, wrong in candidates:
            if diffs(wrong, have)[1] <= pair.tolerance:
                return number
    return None


# ------------------------------------------------------------------------------------------------- The layer


def layer(pair: UserPair, index: int, here: list[Row], finding: Finding) -> bool:
    """Try the fixes at a diverging layer; False when the layer agrees on the source's input (the difference
    arises before it)."""
    if here and all(row.section == "weights" for row in here):
        modes = ["inference"]
    else:
        modes = [mode for mode in ("inference", "training", "dropout") if any(row.section == mode for row in here)]
    outputs = [row for row in here if row.what == "output" and row.section in modes]
    candidates = weight_fixes(pair, index) + setting_fixes(pair, index)
    base_fix = None
    if outputs and all(row.input_scaled > row.tolerance for row in outputs):
        # the inputs differ: only a Dense whose input agrees in the other flatten order is the cause here; it is
        # then measured on its input in that order, with the weights as the converter copied them
        candidates = [fix for fix in candidates if fix.orders and inputs_agree(pair, index, fix.orders[0])]
        if not candidates:
            return False
        base_fix = Fix("", None, orders=candidates[0].orders)
    base = measure(pair, index, modes, base_fix)
    failing = {key: value for key, value in base.items() if value > LIMITS.get(key, pair.tolerance)}
    if not failing:
        return False
    singles = []
    for fix in candidates:
        after = measure(pair, index, modes, fix)
        singles.append(Trial(fix.text, [fix.pitfall] if fix.pitfall else [], failing,
                             {key: after.get(key, math.nan) for key in failing}, pair.tolerance, LIMITS))
    finding.trials += singles
    settings = [(fix, trial) for fix, trial in zip(candidates, singles) if fix.build is None]
    if not finding.fixed and len(settings) > 1:
        changes = {key: value for fix, _ in settings for key, value in fix.changes.items()}
        after = measure(pair, index, modes, Fix("", None, changes))
        helped = [fix.pitfall for fix, trial in settings if fix.pitfall and any(
            trial.after[key] <= LIMITS.get(key, pair.tolerance) for key in failing)]
        finding.trials.append(Trial("all of these together", helped or [fix.pitfall for fix, _ in settings
                                                                          if fix.pitfall], failing,
                                    {key: after.get(key, math.nan) for key in failing}, pair.tolerance, LIMITS))
    if not finding.fixed and "training state" in failing and base.get("training output", 0) <= pair.tolerance:
        biased = measure(pair, index, ["training"], biased=True)
        finding.trials.append(Trial("torch's running_var read as the biased batch variance (no n / (n - 1))", [18],
                                    failing, {"training state": biased.get("training state", math.nan)},
                                    pair.tolerance))
    layer_notes(pair, index, modes, finding)
    return True


def inputs_agree(pair: UserPair, index: int, order) -> bool:
    """Whether a pair's inputs in the inference pass agree with the torch features taken in `order`."""
    layer_pair = pair.pairs[index]
    torch_trace, keras_trace = pair.traces["inference"]
    torch_in = torch_trace.inputs.get(layer_pair.torch.first.name)
    keras_in = keras_trace.inputs.get(layer_pair.keras.first.name)
    if order is None and isinstance(torch_in, np.ndarray):  # no reordering at all
        return torch_in.shape == getattr(keras_in, "shape", None) and diffs(torch_in, keras_in)[1] <= pair.tolerance
    return pair.compare_arrays(torch_in, keras_in, order=order)[1] <= pair.tolerance


def layer_notes(pair: UserPair, index: int, modes: list[str], finding: Finding) -> None:
    source, port = groups_of(pair, index)
    same = [other.label for other in pair.pairs if other is not pair.pairs[index] and other.torch and other.keras
            and other.torch.fields == pair.pairs[index].torch.fields
            and other.keras.fields == pair.pairs[index].keras.fields]
    differing = [key for key in source.fields if key != "kind" and differs(source.fields, port.fields, key)]
    if same and differing:
        finding.notes.append(f"{len(same)} more pair(s) have the same settings: {', '.join(same[:6])}"
                             + (", ..." if len(same) > 6 else ""))
    if source.main.kind == port.main.kind == "leaky_relu" and source.fields["negative_slope"]:
        ratio = port.fields["negative_slope"] / source.fields["negative_slope"]
        finding.notes.append(f"every negative output is off by the same factor {ratio:.4g} (slope "
                             f"{port.fields['negative_slope']:g} for {source.fields['negative_slope']:g})")
    if source.main.kind in ("conv", "conv_transpose") and "inference" in modes:
        where = difference_map(pair, index)
        if where:
            finding.notes.append(where)


def difference_map(pair: UserPair, index: int) -> str:
    """Where in the image a conv's output differs: the border only, or throughout."""
    layer_pair = pair.pairs[index]
    torch_trace, keras_trace = pair.traces["inference"]
    torch_out = torch_trace.outputs.get(layer_pair.torch.last.name)
    keras_out = keras_trace.outputs.get(layer_pair.keras.last.name)
    if not isinstance(torch_out, np.ndarray) or torch_out.ndim != 4 or \
            tracing.moved_shape(torch_out.shape) != tuple(keras_out.shape):
        return ""
    bad = np.abs(tracing.channels_last(torch_out) - keras_out) > pair.tolerance * max(1.0, np.abs(keras_out).max())
    rows, columns = np.flatnonzero(bad.any(axis=(0, 2, 3))), np.flatnonzero(bad.any(axis=(0, 1, 3)))
    height, width = keras_out.shape[1:3]
    if not rows.size:
        return ""
    border = {0, 1, height - 2, height - 1}, {0, 1, width - 2, width - 1}
    if set(rows) <= border[0] and set(columns) <= border[1] and height > 4:
        return f"the outputs differ at the border only (rows {list(rows)}, columns {list(columns)} of {height}x{width})"
    return f"the outputs differ throughout ({rows.size} of {height} rows, {columns.size} of {width} columns)"
