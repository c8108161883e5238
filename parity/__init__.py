"""The parity layer: weight conversion between torch_impl and keras_impl, and named checks that they agree."""

from parity.import_order import torch_first

torch_first()
