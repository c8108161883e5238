"""Keras 3 implementations of DCGAN, WGAN-GP and CGAN, and of five published GANs (the `published` model), trained
with `fit` on TensorFlow, JAX or PyTorch.

The backend is Keras's: KERAS_BACKEND (`gan-keras --backend`), TensorFlow when unset. This package imports nothing
of torch_impl, and each framework only on its own Keras backend (tests/test_boundary.py).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
