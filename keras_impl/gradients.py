"""The part of training that differs per Keras backend, taken from that backend's module.

Keras 3 runs one model on TensorFlow, JAX or PyTorch (KERAS_BACKEND, or `gan-keras --backend`). The networks,
losses, noise draws, metrics and train steps of keras_impl are written once, with Keras layers and `keras.ops`;
only taking gradients and applying them differs, and a process holds one backend. The train steps call:
  gradients(losses_fn, variables)   a forward pass giving losses, and each loss's gradient in its variables
  recorded(fn, variables)           a forward pass kept for a gradient taken later (the alternating DCGAN's G pass)
  input_gradient(fn, x)             d sum(fn(x)) / dx, differentiable (the gradient penalty)
  apply_gradients(optimizer, grads, variables)
and subclass `Trainer`, which tells `fit` how to run their `train_step`. Each backend's module defines these names,
in the same order, under the same headers: keras_impl/gradients_tensorflow.py (GradientTape),
keras_impl/gradients_jax.py (pure functions: jax.vjp, jax.grad, stateless_apply, fit's stateless step) and
keras_impl/gradients_torch.py (autograd). Only the module of the running backend is imported, so a process loads
one framework. On JAX and PyTorch, Keras is also told that TensorFlow is not there: wherever TensorFlow is installed,
Keras imports it (seconds, and its native libraries) to test objects against its types, in
`keras.utils.set_random_seed` (to seed tf.data) and in saving `.keras` files, whichever the backend; in a process
that never imported TensorFlow, nothing can be of those types.
"""

from __future__ import annotations

import sys

import keras
from keras.src.utils import module_utils

BACKENDS = ("tensorflow", "jax", "torch")  # the Keras backends that train (numpy and openvino only infer)
BACKEND = keras.backend.backend()

if BACKEND == "jax":
    from keras_impl.gradients_jax import Trainer, apply_gradients, gradients, input_gradient, recorded
elif BACKEND == "torch":
    from keras_impl.gradients_torch import Trainer, apply_gradients, gradients, input_gradient, recorded
elif BACKEND == "tensorflow":
    from keras_impl.gradients_tensorflow import Trainer, apply_gradients, gradients, input_gradient, recorded
else:
    raise ImportError(f"keras_impl trains on the Keras backends {', '.join(BACKENDS)}, not {BACKEND!r}")
if BACKEND != "tensorflow" and "tensorflow" not in sys.modules:
    module_utils.tensorflow._available = False  # Keras's lazy import of TensorFlow answers "not installed"

__all__ = ["BACKEND", "BACKENDS", "Optimizers", "Trainer", "apply_gradients", "gradients", "input_gradient",
           "recorded"]


class Optimizers:
    """A trainer's optimisers where Keras expects one (`model.optimizer`): Keras's callbacks find them in
    `.optimizers` (TensorBoard logs each learning rate), and JAX's fit threads `.variables` through its stateless
    train step."""

    def __init__(self, *optimizers: keras.optimizers.Optimizer):
        self.optimizers = list(optimizers)

    @property
    def variables(self) -> list:
        return [variable for optimizer in self.optimizers for variable in optimizer.variables]

    @property
    def built(self) -> bool:
        return all(optimizer.built for optimizer in self.optimizers)
