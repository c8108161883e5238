"""Keras 3 (TensorFlow backend) implementations of DCGAN, WGAN-GP and CGAN, trained with `fit`.

This package imports Keras and TensorFlow and nothing of torch_impl or torch (tests/test_boundary.py).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
