"""The one place that fixes the import order of the two frameworks, for the processes that load both.

A process that loads `torch._dynamo` after TensorFlow crashes (a segmentation fault; constructing
`torch.optim.Adam` loads it). Only the parity layer, the benchmarks and the tests load both frameworks in one
process: the parity package calls `torch_first()` on import (parity/__init__.py), tests/conftest.py does before any
test module is imported, and a benchmark that needs both imports parity first. torch_impl and keras_impl each load
their own framework alone and need no order (tests/test_boundary.py).
"""

import importlib
import os


def torch_first() -> None:
    """Import torch and torch._dynamo now, when torch is installed (a Keras-only installation skips this)."""
    # TensorFlow's native log stays out of the way, as in gan-keras: 3 drops its error lines too, such as the
    # "failed call to cuInit" that every process on a machine without a CUDA driver prints at its first operation.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        importlib.import_module("torch")
        importlib.import_module("torch._dynamo")
    except ImportError:
        pass
