"""Shared test setup: torch (with torch._dynamo) is imported before any test module can import TensorFlow."""

from parity.import_order import torch_first

torch_first()
