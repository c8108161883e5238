"""Keras 3 (TensorFlow backend) implementations of DCGAN, WGAN-GP and CGAN.

Importing this package first imports torch and ``torch._dynamo`` when torch is installed: a process that loads
``torch._dynamo`` after TensorFlow crashes (constructing ``torch.optim.Adam`` loads it too). Every module of the
project that touches TensorFlow lives here, so this is the one place the import order is fixed.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the CLI
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

try:
    import torch  # noqa: F401  (torch must be imported before TensorFlow, see above)
    import torch._dynamo  # noqa: F401
except ImportError:  # a Keras-only installation needs no torch
    pass
