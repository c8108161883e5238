"""Keras 3 (TensorFlow backend) implementations of DCGAN, WGAN-GP and CGAN, trained with `fit`."""

import os

from specs.import_order import torch_first

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the CLI
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
torch_first()
