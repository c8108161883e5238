"""PyTorch implementations of DCGAN, WGAN-GP and CGAN, and of five published GANs (the `published` model), with
explicit training loops.

This package imports torch and nothing of keras_impl, TensorFlow or Keras (tests/test_boundary.py).
"""
