"""Gradients on Keras's PyTorch backend: autograd (mirror: keras_impl/gradients_tensorflow.py, gradients_jax.py).

The same five names as the other backends (see keras_impl/gradients_tensorflow.py). On the torch backend a Keras
variable holds a torch Parameter (`variable.value`), and every Keras op is a torch op, so autograd records the
forward pass by itself: `torch.autograd.grad` takes the gradients, as torch_impl's trainers take theirs.
`fit` calls `train_step(data)` eagerly, one process (a torchrun launch is refused: keras_impl/distributed.py).
"""

from __future__ import annotations

import keras
import torch

# --------------------------------------------------------------------------------------------------- Gradients


def gradients(losses_fn, variables):
    """losses_fn() -> (losses, aux): one forward pass giving a list of scalar losses; variables[i]: the variables
    to differentiate losses[i] by. Returns (losses, aux, grads), grads[i] the gradients of losses[i]. The one
    place where a loss becomes gradients (and where a loss scale would multiply it)."""
    losses, aux = losses_fn()  # autograd records the pass: the variables' Parameters require gradients
    last = len(losses) - 1
    grads = [list(torch.autograd.grad(loss, [variable.value for variable in group], retain_graph=index < last,
                                      allow_unused=True))  # None where a loss does not depend on a variable
             for index, (loss, group) in enumerate(zip(losses, variables))]  # the graph is kept for the next loss
    return losses, aux, grads


def recorded(fn, variables):
    """outputs = fn(), recorded so that a loss of them computed later (after other updates) is differentiated back
    through this very pass into `variables`. Returns (outputs, resume): resume(loss_fn) -> (loss, aux, grads),
    with loss_fn(outputs) -> (loss, aux)."""
    outputs = fn()  # the graph of this pass lives as long as `outputs`

    def resume(loss_fn):
        loss, aux = loss_fn(outputs)
        return loss, aux, list(torch.autograd.grad(loss, [variable.value for variable in variables]))

    return outputs, resume


def input_gradient(fn, x):
    """d sum(fn(x)) / dx at x, differentiable in fn's variables: create_graph=True records the backward pass."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(keras.ops.sum(fn(x)), x, create_graph=True)
    return grad


# ----------------------------------------------------------------------------------------------------- Updates


def apply_gradients(optimizer, grads, variables):
    """One update of `variables` by `optimizer`, outside autograd's record."""
    with torch.no_grad():
        optimizer.apply(grads, variables)


# --------------------------------------------------------------------------------------------------------- fit


class Trainer(keras.Model):
    """`fit` calls `train_step(data)` eagerly: the train steps run as written."""
