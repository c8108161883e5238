"""A user's torch module and Keras model as one pair: traced, paired, weights copied, run (for parity/compare.py).

`UserPair` runs a forward pass to see both networks' layers (parity/tracing.py), pairs them (parity/pairing.py),
builds the strict weight table of the pairs (parity/convert.py `pair_table`) and copies the weights in the chosen
direction (`weights="copy"`), or leaves each side's own weights (`weights="keep"`: a checkpoint converted by the
user's own code), and keeps that state: every run starts from it. Its rows:
  weights    (keep) every tensor of the source through the strict map against the port's
  inference  every pair's output, the model's output
  training   the same in training mode (dropout off on both sides, BatchNorm on batch statistics), and each
             BatchNorm's running statistics after the pass, Keras's biased variance mapped onto torch's unbiased
             one: r = m r0 + n / (n - 1) (r_keras - m r0), m Keras's momentum, n the values per channel
  dropout    every dropout pair in training mode, fed ones: the fraction of zeros and the scale of the rest
Losses, gradients and an optimiser step: parity/compare.py.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import keras
import numpy as np
import torch
import torch.nn.functional as F

from parity import convert, pairing, tracing
from parity.checks import TOLERANCES
from parity.distributions import DROPOUT_TOLERANCE, DROPOUT_VALUES, dropped
from parity.results import diffs

DIRECTIONS = ("torch-to-keras", "keras-to-torch")
WEIGHTS = ("copy", "keep")


class UsageError(ValueError):
    """A mistake in what `compare` was given: one line, exit 2."""


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip()


@dataclass(frozen=True)
class InputSpec:
    """One input of both networks: its per-sample shape in torch's layout, or integer labels in [0, labels)."""

    shape: tuple[int, ...]
    labels: int | None = None

    @classmethod
    def parse(cls, text: str) -> InputSpec:
        """`3,64,64` (or 3x64x64), `100`, `labels:10` (a batch of class indices)."""
        words = text.strip().lower()
        try:
            if words.startswith("labels:"):
                count = int(words.split(":", 1)[1])
                if count < 1:
                    raise ValueError
                return cls((), count)
            shape = tuple(int(size) for size in words.replace("x", ",").split(",") if size)
            if not shape or min(shape) < 1:
                raise ValueError
            return cls(shape)
        except ValueError:
            raise UsageError(f"--input {text!r}: expected a shape like 3,64,64 or 100, or labels:K") from None

    def __str__(self) -> str:
        return f"labels:{self.labels}" if self.labels else ",".join(map(str, self.shape))


@dataclass
class Row:
    section: str  # weights, inference, training, dropout, gradients, step, batch, structure
    label: str  # what is compared
    pair: int  # index of the layer pair (len(pairs) for the model's output, len(pairs) + 1 for the loss)
    max_abs: float
    scaled: float  # what the tolerance judges (parity/results.py)
    tolerance: float
    what: str = "output"  # output, state, weight, rate, gradient, loss, structure
    torch_shape: tuple | None = None
    keras_shape: tuple | None = None
    input_scaled: float = math.nan  # the scaled difference of the pair's inputs (its own error or an earlier one)
    note: str = ""

    @property
    def passed(self) -> bool:
        return not self.scaled > self.tolerance  # NaN: nothing compared (an output that is not one tensor)

    def as_dict(self) -> dict:
        fields = {key: value for key, value in vars(self).items() if value is not None and value != ""}
        return fields | {"passed": self.passed}


def module_name(position: tracing.Position) -> str:
    return position.name.split("#", 1)[0]


@contextlib.contextmanager
def torch_default_dtype(dtype: str) -> Iterator[None]:
    saved = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


@dataclass
class UserPair:
    torch_model: torch.nn.Module
    keras_model: keras.Model
    inputs: list[InputSpec]
    direction: str = "torch-to-keras"
    weights: str = "copy"
    dtype: str = "float64"
    batch_size: int = 8
    seed: int = 0
    given: dict | None = None  # torch layer name -> Keras layer name (or None), from --pair / --pairs
    notes: list[str] = field(default_factory=list)
    problems: list[Row] = field(default_factory=list)  # pairs that do not convert

    def __post_init__(self) -> None:
        self.saved, self.slopes, self.traces = None, [], {}
        self.torch_model.to("cpu", getattr(torch, self.dtype))
        self.torch_leaves = tracing.torch_leaves(self.torch_model)
        self._make_inputs()
        self._first_pass()
        self.keras_leaves = tracing.keras_leaves(self.keras_model)
        torch_trace, keras_trace, _, _ = self._pass(False)
        self.torch_positions = tracing.torch_positions(torch_trace)
        self.keras_positions = tracing.keras_positions(keras_trace)
        self.pairs = pairing.pair_layers(pairing.groups(self.torch_positions, pairing.torch_weighted),
                                         pairing.groups(self.keras_positions, pairing.keras_weighted), self.given)
        for pair in self.pairs:
            if pair.torch and pair.keras and pair.keras.main.kind in ("dense", "batch_norm", "layer_norm"):
                pair.orders = pairing.flat_orders(self.keras_positions, pair.keras.main)
        self._build_table()
        if self.weights == "copy" and self.table:
            (convert.torch_to_keras if self.direction == "torch-to-keras" else convert.keras_to_torch)(self.table)
        self.saved = self._snapshot()
        self.slopes = self.keras_slopes()

    # ------------------------------------------------------------------------------------------ Building

    @property
    def source(self) -> str:
        return "torch" if self.direction == "torch-to-keras" else "keras"

    @property
    def port(self) -> str:
        return "keras" if self.source == "torch" else "torch"

    @property
    def tolerance(self) -> float:
        return TOLERANCES[self.dtype]["forward"]

    def _make_inputs(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.torch_arrays = []
        for spec in self.inputs:
            if spec.labels:
                self.torch_arrays.append(rng.integers(0, spec.labels, self.batch_size))
            else:
                self.torch_arrays.append(rng.standard_normal((self.batch_size, *spec.shape)).astype(self.dtype))
        self.keras_arrays = [tracing.channels_last(array) for array in self.torch_arrays]
        self.keras_arrays = [array.astype("int32") if array.dtype.kind == "i" else array
                             for array in self.keras_arrays]

    def _fit_declared_inputs(self) -> None:
        """Reshape where the Keras model declares an input that differs only by axes of size 1."""
        try:
            declared = [tuple(tensor.shape) for tensor in self.keras_model.inputs]
        except (AttributeError, TypeError, ValueError):
            return
        if len(declared) != len(self.keras_arrays):
            raise UsageError(f"the Keras model takes {len(declared)} inputs, --input gives {len(self.keras_arrays)}")
        for index, (shape, array) in enumerate(zip(declared, self.keras_arrays)):
            wanted = (array.shape[0], *shape[1:])
            if None in wanted[1:] or wanted == array.shape:
                continue
            if not tracing.squeezed_equal(array.shape, wanted):
                raise UsageError(f"shapes do not fit: --input {self.inputs[index]} is {array.shape} in Keras's layout, "
                                 f"the Keras model takes {(None, *shape[1:])}")
            self.keras_arrays[index] = array.reshape(wanted)
            self.notes.append(f"Keras input {index + 1} reshaped from {array.shape} to {wanted} (axes of size 1)")

    def torch_inputs(self) -> list[torch.Tensor]:
        return [torch.from_numpy(array.copy()) for array in self.torch_arrays]

    def keras_inputs(self):
        return self.keras_arrays[0] if len(self.keras_arrays) == 1 else list(self.keras_arrays)

    def _first_pass(self) -> None:
        shapes = " and ".join(str(spec) for spec in self.inputs)
        try:
            with torch.no_grad(), torch_default_dtype(self.dtype):
                self.torch_model.eval()
                self.torch_model(*self.torch_inputs())
        except Exception as error:  # noqa: BLE001 - a model that does not take the input: a usage error
            raise UsageError(f"shapes do not fit: the torch model fails on --input {shapes} (batch "
                             f"{self.batch_size}): {one_line(error)}") from None
        self._fit_declared_inputs()
        try:
            self.keras_model(self.keras_inputs(), training=False)
        except Exception as error:  # noqa: BLE001
            raise UsageError(f"shapes do not fit: the Keras model fails on --input {shapes} in its layout "
                             f"{[array.shape for array in self.keras_arrays]}: {one_line(error)}") from None

    def _build_table(self) -> None:
        entries, seen, self.pair_ports = [], {}, {}
        for index, pair in enumerate(self.pairs):
            group = pair.torch or pair.keras
            if pair.torch is None or pair.keras is None:
                if group.weighted:
                    side = "torch" if pair.torch else "Keras"
                    self.problems.append(Row("structure", f"{side} layer {group.name!r} ({group.family}) has weights "
                                             "and no partner", index, math.inf, math.inf, 0.0, "structure"))
                continue
            if not (pair.torch.weighted or pair.keras.weighted):
                continue
            key = (id(pair.torch.main.layer), id(pair.keras.main.layer))
            if key not in seen:
                seen[key] = index
                entries.append((module_name(pair.torch.main), pair.torch.main.layer, pair.keras.main.layer,
                                pair.orders))
        messages: list[str] = []
        self.table = convert.pair_table(entries, self.torch_model, self.keras_model, messages)
        owner = {id(variable): index for index in seen.values()
                 for variable in self.pairs[index].keras.main.layer.weights}
        for port in self.table:
            self.pair_ports.setdefault(owner[id(port.keras_variable)], []).append(port)
        for message in messages:
            index = next((i for i, pair in enumerate(self.pairs) if pair.torch and pair.keras and (
                message.startswith((f"{module_name(pair.torch.main)}.", f"{module_name(pair.torch.main)}:"))
                or f"layer {pair.keras.main.layer.name!r}" in message)), None)
            if index is not None:
                self.problems.append(Row("structure", message, index, math.inf, math.inf, 0.0, "structure"))
            elif not any(row.what == "structure" for row in self.problems):  # unpaired layers explain the rest
                self.problems.append(Row("structure", message, len(self.pairs), math.inf, math.inf, 0.0, "structure"))

    def _snapshot(self) -> tuple[dict, list]:
        torch_state = {key: value.detach().clone() for key, value in self.torch_model.state_dict().items()}
        self.keras_index = {id(variable): i for i, variable in enumerate(self.keras_model.weights)}
        return torch_state, [np.array(keras.ops.convert_to_numpy(v)) for v in self.keras_model.weights]

    def restore(self, weights: bool = False) -> None:
        """Back to the saved state: running statistics (what a pass changes), with `weights` every tensor."""
        if self.saved is None:  # the first pass, before the weights are paired
            return
        torch_state, keras_values = self.saved
        trainable = {name for name, _ in self.torch_model.named_parameters()}
        with torch.no_grad():
            for name, tensor in self.torch_model.state_dict(keep_vars=True).items():
                if weights or name not in trainable:
                    tensor.copy_(torch_state[name])
        for variable, value in zip(self.keras_model.weights, keras_values):
            if weights or not variable.trainable:
                variable.assign(value)

    def keras_slopes(self) -> set[float]:
        """The LeakyReLU slopes of the Keras side, as TensorFlow holds them: float32 numbers."""
        slopes = {float(np.float32(p.fields["negative_slope"])) for p in self.keras_positions
                  if p.kind == "leaky_relu"}
        if self.dtype == "float64" and slopes:
            shown = " or ".join(f"{slope:g}" for slope in sorted(slopes))
            self.notes.append(f"float64: a torch leaky_relu whose slope is {shown} in float32 multiplies by that "
                              "float32 number, as TensorFlow does (it keeps the slope as a float32 attribute)")
        return slopes

    @contextlib.contextmanager
    def float32_slopes(self, slopes: set[float] = frozenset()) -> Iterator[None]:
        """In float64, torch's F.leaky_relu (which nn.LeakyReLU calls) multiplies by the float32 number of a slope
        the Keras side has: TensorFlow keeps the slope as a float32 attribute even on float64 tensors."""
        slopes = set(self.slopes) | set(slopes)
        if self.dtype != "float64" or not slopes:
            yield
            return
        original = F.leaky_relu

        def leaky_relu(input, negative_slope=0.01, inplace=False):
            rounded = float(np.float32(negative_slope))
            return original(input, rounded if rounded in slopes else negative_slope, inplace)

        F.leaky_relu = leaky_relu
        try:
            yield
        finally:
            F.leaky_relu = original

    # ---------------------------------------------------------------------------------------------- Runs

    @contextlib.contextmanager
    def running(self, training: bool, dropout: bool = False) -> Iterator[None]:
        """The state both runs start from, the mode, the dtype; in training mode dropout off unless `dropout`."""
        self.restore()
        self.torch_model.train(training)
        off = tracing.dropout_off(self.keras_leaves) if training and not dropout else contextlib.nullcontext()
        with off, torch_default_dtype(self.dtype), self.float32_slopes():
            yield

    def pass_with(self, training: bool, arrays: tuple | None = None, frozen: set | None = None,
                  skip: set | None = None, patch=None):
        """One traced forward pass of each side: (torch trace, Keras trace, torch output, Keras output). `arrays`:
        other inputs (torch's, Keras's); `frozen`, `skip`: ("torch" or "keras", position name) run in inference
        mode, or passing their input on; `patch`: a context manager around both."""
        frozen, skip = frozen or set(), skip or set()
        torch_arrays, keras_arrays = arrays or (self.torch_arrays, self.keras_arrays)
        with self.running(training), (patch or contextlib.nullcontext)(), torch.no_grad(), \
                tracing.traced_torch(self.torch_leaves, frozenset(n for s, n in skip if s == "torch")) as torch_trace, \
                tracing.traced_keras(self.keras_leaves, frozenset(n for s, n in skip if s == "keras"),
                                     frozenset(n for s, n in frozen if s == "keras")) as keras_trace:
            for name, module in self.torch_leaves:
                if ("torch", name) in frozen:
                    module.eval()
            torch_out = self.torch_model(*[torch.from_numpy(array.copy()) for array in torch_arrays])
            keras_out = self.keras_model(keras_arrays[0] if len(keras_arrays) == 1 else list(keras_arrays),
                                         training=training)
        return torch_trace, keras_trace, tracing._array(torch_out), tracing._array(keras_out)

    def _pass(self, training: bool):
        return self.pass_with(training)

    def compare_arrays(self, torch_value, keras_value, kind: str | None = None, previous=None, order=None):
        """(max abs, scaled, channels moved) of one tensor in both layouts; inf when the shapes do not fit. `order`:
        the Keras order of a vector's features (between a Dense and a Reshape, after a Flatten)."""
        if torch_value is None or keras_value is None or isinstance(torch_value, list) \
                or isinstance(keras_value, list):
            return math.nan, math.nan, None
        if order is not None and torch_value.ndim == 2 and torch_value.shape[1] == len(order):
            torch_value = torch_value[:, order]
        moves = tracing.channels_move(torch_value.shape, keras_value.shape, kind, previous)
        if moves is None:
            return math.inf, math.inf, None
        return (*diffs(tracing.channels_last(torch_value) if moves else torch_value, keras_value), moves)

    def mode_rows(self, training: bool) -> list[Row]:
        section = "training" if training else "inference"
        torch_trace, keras_trace, torch_out, keras_out = self._pass(training)
        self.traces[section] = (torch_trace, keras_trace)
        rows, previous = [], None
        for index, pair in enumerate(self.pairs):
            if pair.torch is None or pair.keras is None:
                continue
            t_out, k_out = torch_trace.outputs.get(pair.torch.last.name), keras_trace.outputs.get(pair.keras.last.name)
            row = Row(section, pair.label, index, math.inf, math.inf, self.tolerance)
            if t_out is None or k_out is None:
                row.note = f"not run in {section} mode by {'torch' if t_out is None else 'Keras'}"
                rows.append(row)
                continue
            row.max_abs, row.scaled, moves = self.compare_arrays(t_out, k_out, pair.torch.main.kind, previous,
                                                                 pair.out_order)
            previous = moves if moves is not None else previous
            row.torch_shape, row.keras_shape = tuple(t_out.shape), tuple(k_out.shape)
            row.input_scaled = self.compare_arrays(torch_trace.inputs.get(pair.torch.first.name),
                                                   keras_trace.inputs.get(pair.keras.first.name), None, previous,
                                                   pair.in_order)[1]
            rows.append(row)
            if training and pair.torch.main.kind == "batch_norm":
                rows += self.state_rows(index, pair)
        rows.append(self.output_row(section, torch_out, keras_out, previous))
        return rows

    def output_row(self, section: str, torch_out, keras_out, previous) -> Row:
        row = Row(section, "model output", len(self.pairs), math.inf, math.inf, self.tolerance,
                  torch_shape=_shape(torch_out), keras_shape=_shape(keras_out))
        if isinstance(torch_out, np.ndarray) and isinstance(keras_out, np.ndarray):
            last = next((pair.torch.main.kind for pair in reversed(self.pairs) if pair.torch), None)
            moves = tracing.channels_move(torch_out.shape, keras_out.shape, last, previous)
            if moves is None and tracing.squeezed_equal(torch_out.shape, keras_out.shape):
                torch_out, row.note = torch_out.reshape(keras_out.shape), "compared with axes of size 1 dropped"
            row.max_abs, row.scaled, _ = self.compare_arrays(torch_out, keras_out, last, previous)
        else:
            row.note = "a model output that is not one tensor is not compared"
            row.max_abs = row.scaled = math.nan
        return row

    def state_rows(self, index: int, pair: pairing.LayerPair) -> list[Row]:
        """Running statistics after the training pass; Keras's moving variance in torch's (unbiased) convention."""
        ports = [port for port in self.pair_ports.get(index, []) if port.name.endswith(("running_mean", "running_var"))]
        shape = pair.torch.first.input_shape
        count = math.prod(shape) // shape[1] if len(shape) >= 2 else 0
        momentum = pair.keras.main.layer.momentum
        rows = []
        for port in ports:
            torch_value = port.torch_tensor.detach().cpu().numpy()
            keras_value = port.to_torch(np.asarray(keras.ops.convert_to_numpy(port.keras_variable)))
            if port.name.endswith("running_var") and count > 1:
                start = port.to_torch(self.saved[1][self.keras_index[id(port.keras_variable)]])
                keras_value = momentum * start + count / (count - 1) * (keras_value - momentum * start)
            rows.append(Row("training", f"{pair.label}: {port.name.rsplit('.', 1)[1]}", index,
                            *diffs(torch_value, keras_value), self.tolerance, "state"))
        return rows

    def weight_rows(self) -> list[Row]:
        """(keep) Every tensor of the source through the strict map against the port's."""
        rows = []
        for index, ports in self.pair_ports.items():
            for port in ports:
                torch_value = port.torch_tensor.detach().cpu().numpy()
                keras_value = port.to_torch(np.asarray(keras.ops.convert_to_numpy(port.keras_variable)))
                rows.append(Row("weights", port.name, index, *diffs(torch_value, keras_value), self.tolerance,
                                "weight", tuple(torch_value.shape), tuple(port.keras_variable.shape)))
        return sorted(rows, key=lambda row: row.pair)

    def dropout_rows(self) -> list[Row]:
        """Every dropout pair in training mode, fed ones: (fraction of zeros, scale of the kept values)."""
        rows = []
        for index, pair in enumerate(self.pairs):
            if not (pair.torch and pair.keras and pair.torch.family == pair.keras.family == "dropout"):
                continue
            shape = pair.keras.first.input_shape
            batch = max(1, math.ceil(DROPOUT_VALUES / max(1, math.prod(shape[1:]))))
            ones = np.ones((batch, *shape[1:]), self.dtype)
            module = pair.torch.main.layer
            module.train()
            with torch_default_dtype(self.dtype):
                torch_stats = dropped(module(torch.from_numpy(tracing.channels_first(ones).copy())).numpy())
            keras_stats = dropped(keras.ops.convert_to_numpy(pair.keras.main.layer(ones, training=True)))
            rows.append(Row("dropout", f"{pair.label} (zero fraction, kept scale)", index,
                            *diffs(np.array(torch_stats), np.array(keras_stats)), DROPOUT_TOLERANCE, "rate",
                            note=f"torch {torch_stats[0]:.3f}, Keras {keras_stats[0]:.3f} zeros"))
        return rows


def _shape(value) -> tuple | None:
    return tuple(value.shape) if isinstance(value, np.ndarray) else None
