"""Keras 3 (TensorFlow backend) implementations of DCGAN, WGAN-GP and CGAN, trained with `fit`."""

import os

from specs.import_order import torch_first

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
torch_first()
