"""The parity layer: weight conversion between torch_impl and keras_impl, and named checks that they agree.

Importing it imports torch first (through torch_impl), then TensorFlow (through keras_impl).
"""

import keras_impl  # noqa: F401,I001
import torch_impl  # noqa: F401  (torch before TensorFlow)
