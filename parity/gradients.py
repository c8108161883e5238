"""Losses, gradients, one optimiser step and batch independence of a user's pair (for parity/compare.py).

  gradients  with a loss: its value, and every parameter's gradient in training mode (dropout off), in torch's
             layout; a gradient on one side only fails
  step       with an optimiser factory per side: the optimisers' settings (parity/settings.py vocabulary, so
             Adam's epsilon rule, betas, weight decay and clipping are compared by name), then one step of each
             from the same weights and gradients, and every weight after it
  batch      with a critic's loss (wasserstein): in each framework, the training-mode scores of half a batch beside
             two different other halves; a BatchNorm makes a sample's score depend on its batch
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import torch
import torch.nn.functional as F

from keras_impl.gradients import gradients as keras_gradients
from parity.checks import TOLERANCES, keras_dtype
from parity.results import diffs
from parity.settings import TOLERANCE as SETTINGS_TOLERANCE
from parity.settings import describe_keras_optimizer, describe_torch_optimizer, difference
from parity.user_pair import Row, UsageError, UserPair, one_line


@dataclass(frozen=True)
class Loss:
    name: str
    torch: Callable  # the model's output -> a scalar tensor
    keras: Callable
    critic: bool = False  # a critic's loss: the scores must not depend on the batch


def _keras_bce(from_logits: bool) -> Callable:
    """The mean BCE against 1 (the functional form: a loss object made at import would compute in float32)."""
    return lambda output: keras.ops.mean(keras.losses.binary_crossentropy(
        keras.ops.ones_like(output), output, from_logits=from_logits))


LOSSES = {
    "bce-logits": Loss("bce-logits", lambda y: F.binary_cross_entropy_with_logits(y, torch.ones_like(y)),
                       _keras_bce(True)),
    "bce": Loss("bce", lambda y: F.binary_cross_entropy(y, torch.ones_like(y)), _keras_bce(False)),
    "wasserstein": Loss("wasserstein", lambda y: -y.mean(), lambda y: -keras.ops.mean(y), critic=True),
    "mse": Loss("mse", lambda y: y.square().mean(), lambda y: keras.ops.mean(keras.ops.square(y))),
}
LOSS_HELP = ("bce-logits: BCE from logits against 1 (BCEWithLogitsLoss, from_logits=True); bce: the same on "
             "probabilities (BCELoss, from_logits=False); wasserstein: -mean(output), a critic's or WGAN "
             "generator's; mse: mean(output^2)")


def trainable_ports(pair: UserPair) -> list:
    return [port for port in pair.table if port.trainable]


def port_pair(pair: UserPair, port) -> int:
    return next((index for index, ports in pair.pair_ports.items() if port in ports), len(pair.pairs))


def gradients(pair: UserPair, loss: Loss):
    """(torch loss, Keras loss, torch gradients, Keras gradients) in training mode, dropout off."""
    ports = trainable_ports(pair)
    side = "torch"
    try:
        with pair.running(True):
            torch_loss = loss.torch(pair.torch_model(*pair.torch_inputs()))
            torch_grads = torch.autograd.grad(torch_loss, [port.torch_tensor for port in ports], allow_unused=True)
        side = "Keras"
        with pair.running(True):  # on the process's Keras backend (keras_impl/gradients.py)
            keras_pass = lambda: ([loss.keras(pair.keras_model(pair.keras_inputs(), training=True))], None)  # noqa
            (keras_loss,), _, (keras_grads,) = keras_gradients(keras_pass, [[port.keras_variable for port in ports]])
    except Exception as error:  # noqa: BLE001 - a loss that does not take the model's output: a usage error
        raise UsageError(f"the {side} loss {loss.name!r} fails on the model's output: {one_line(error)}") from None
    return torch_loss, keras_loss, torch_grads, keras_grads


def gradient_rows(pair: UserPair, loss: Loss) -> list[Row]:
    torch_loss, keras_loss, torch_grads, keras_grads = gradients(pair, loss)
    tolerance = TOLERANCES[pair.dtype]["gradients"]
    rows = []
    for port, torch_grad, keras_grad in zip(trainable_ports(pair), torch_grads, keras_grads):
        index = port_pair(pair, port)
        if (torch_grad is None) != (keras_grad is None):
            side = "torch" if torch_grad is not None else "Keras"
            rows.append(Row("gradients", f"{port.name} (a gradient in {side} only)", index, math.inf, math.inf,
                            tolerance, "gradient"))
        elif torch_grad is not None:
            rows.append(Row("gradients", port.name, index, *diffs(torch_grad.numpy(), port.to_torch(
                np.asarray(keras.ops.convert_to_numpy(keras_grad)))), tolerance, "gradient"))
    loss_row = Row("gradients", f"loss ({loss.name})", len(pair.pairs) + 1,
                   *diffs(torch_loss.detach().numpy(), keras.ops.convert_to_numpy(keras_loss)), pair.tolerance, "loss")
    return [loss_row] + sorted(rows, key=lambda row: row.pair)


# ------------------------------------------------------------------------------------------------ Optimisers


@dataclass(frozen=True)
class Optimizers:
    torch: Callable  # parameters -> torch.optim.Optimizer
    keras: Callable  # () -> keras.optimizers.Optimizer


def build_optimizers(pair: UserPair, optimizers: Optimizers):
    torch_optimizer = optimizers.torch(pair.torch_model.parameters())
    with keras_dtype(pair.dtype):
        keras_optimizer = optimizers.keras()
        keras_optimizer.build(pair.keras_model.trainable_variables)
    return torch_optimizer, keras_optimizer


def optimizer_differences(torch_optimizer, keras_optimizer) -> list[tuple[str, object, object]]:
    """(field, torch value, Keras value) of every setting that differs."""
    torch_fields, keras_fields = describe_torch_optimizer(torch_optimizer), describe_keras_optimizer(keras_optimizer)
    out = []
    for key in list(torch_fields) + [key for key in keras_fields if key not in torch_fields]:
        torch_value, keras_value = torch_fields.get(key, "(absent)"), keras_fields.get(key, "(absent)")
        if difference(torch_value, keras_value)[1] > SETTINGS_TOLERANCE:
            out.append((key, torch_value, keras_value))
    return out


def step(pair: UserPair, loss: Loss, torch_optimizer, keras_optimizer) -> list[Row]:
    """One step of each optimiser from the pair's weights: every trainable weight after it."""
    ports = trainable_ports(pair)
    _, _, torch_grads, keras_grads = gradients(pair, loss)
    pair.restore(weights=True)
    for port, grad in zip(ports, torch_grads):
        port.torch_tensor.grad = None if grad is None else grad.detach().clone()
    torch_optimizer.step()
    keras_optimizer.apply_gradients([(grad, port.keras_variable) for port, grad in zip(ports, keras_grads)
                                     if grad is not None])
    rows = []
    for port in ports:
        rows.append(Row("step", port.name, port_pair(pair, port), *diffs(
            port.torch_tensor.detach().numpy(), port.to_torch(np.asarray(keras.ops.convert_to_numpy(
                port.keras_variable)))), TOLERANCES[pair.dtype]["trajectory"], "weight"))
        port.torch_tensor.grad = None
    pair.restore(weights=True)
    return sorted(rows, key=lambda row: row.pair)


# --------------------------------------------------------------------------------------- Batch independence


def mixed_arrays(pair: UserPair) -> tuple[list, list]:
    """The inputs with their second half from another draw, in both layouts."""
    half = pair.batch_size // 2
    other = UserPair.__new__(UserPair)
    other.inputs, other.batch_size, other.dtype, other.seed = pair.inputs, pair.batch_size, pair.dtype, pair.seed + 1
    UserPair._make_inputs(other)
    torch_arrays = [np.concatenate([a[:half], b[half:]]) for a, b in zip(pair.torch_arrays, other.torch_arrays)]
    keras_arrays = [np.concatenate([a[:half], b[half:]]).reshape(k.shape)
                    for a, b, k in zip(pair.keras_arrays, [np.asarray(x) for x in other.keras_arrays],
                                       pair.keras_arrays)]
    return torch_arrays, keras_arrays


def batch_rows(pair: UserPair, frozen: set | None = None) -> list[Row]:
    """Per framework: the first half's training-mode outputs beside two other halves; the row sits at the first
    pair whose output's first half moves. `frozen`: (side, position name) run in inference mode (the fix)."""
    half = pair.batch_size // 2
    first = pair.pass_with(True, frozen=frozen)
    second = pair.pass_with(True, arrays=mixed_arrays(pair), frozen=frozen)
    rows = []
    for side, index in (("torch", 0), ("keras", 1)):
        a, b = first[index], second[index]
        moved = len(pair.pairs)
        for number, layer_pair in enumerate(pair.pairs):
            group = layer_pair.torch if side == "torch" else layer_pair.keras
            if group is None or group.last.name not in a.outputs:
                continue
            out_a, out_b = a.outputs[group.last.name], b.outputs[group.last.name]
            if isinstance(out_a, np.ndarray) and diffs(out_a[:half], out_b[:half])[1] > pair.tolerance:
                moved = number
                break
        scores = first[2 + index], second[2 + index]
        label = f"{'torch' if side == 'torch' else 'Keras'}: a sample's score beside another half batch"
        rows.append(Row("batch", label, moved, *diffs(scores[0][:half], scores[1][:half]), pair.tolerance, "output"))
    return rows
