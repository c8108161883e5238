"""Gradients on Keras's TensorFlow backend: GradientTape (mirror: keras_impl/gradients_jax.py, gradients_torch.py).

The train steps (keras_impl/dcgan.py, wgan_gp.py) are written once, with Keras ops; what they ask of the backend is
these five names, which keras_impl/gradients.py takes from the module of the backend Keras runs on:
  gradients        a forward pass giving one or more losses, and each loss's gradient in its own variables
  recorded         a forward pass kept, so that a loss computed later is differentiated through it
  input_gradient   d sum(f(x)) / dx, itself differentiable (the gradient penalty)
  apply_gradients  one optimiser update
  Trainer          the base class of the trainers: how `fit` runs their `train_step`
TensorFlow records every operation on a watched value while a GradientTape is open; `tape.gradient` walks the record
backwards. `fit` wraps `train_step(data)` in a tf.function and runs it as a graph, once per replica under
tf.distribute (keras_impl/distributed.py).
"""

from __future__ import annotations

import keras
import tensorflow as tf

# --------------------------------------------------------------------------------------------------- Gradients


def gradients(losses_fn, variables):
    """losses_fn() -> (losses, aux): one forward pass giving a list of scalar losses; variables[i]: the variables
    to differentiate losses[i] by. Returns (losses, aux, grads), grads[i] the gradients of losses[i]. The one
    place where a loss becomes gradients (and where a loss scale would multiply it)."""
    with tf.GradientTape(persistent=len(variables) > 1) as tape:  # one tape, read once per loss
        losses, aux = losses_fn()
    return losses, aux, [tape.gradient(loss, group) for loss, group in zip(losses, variables)]


def recorded(fn, variables):
    """outputs = fn(), recorded so that a loss of them computed later (after other updates) is differentiated back
    through this very pass into `variables`. Returns (outputs, resume): resume(loss_fn) -> (loss, aux, grads),
    with loss_fn(outputs) -> (loss, aux)."""
    tape = tf.GradientTape()
    with tape:
        outputs = fn()

    def resume(loss_fn):
        with tape:  # the tape resumes: the loss joins the record of the pass above
            loss, aux = loss_fn(outputs)
        return loss, aux, tape.gradient(loss, variables)

    return outputs, resume


def input_gradient(fn, x):
    """d sum(fn(x)) / dx at x, differentiable in fn's variables: an enclosing tape records this inner one."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = keras.ops.sum(fn(x))
    return tape.gradient(total, x)


# ----------------------------------------------------------------------------------------------------- Updates


def apply_gradients(optimizer, grads, variables):
    """One update of `variables` by `optimizer` (under tf.distribute it sums the replicas' gradients first)."""
    optimizer.apply_gradients(zip(grads, variables))


# --------------------------------------------------------------------------------------------------------- fit


class Trainer(keras.Model):
    """`fit` calls `train_step(data)` inside a tf.function: the train steps run as written."""
