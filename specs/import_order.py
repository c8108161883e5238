"""The one place that fixes the import order of the two frameworks.

A process that loads `torch._dynamo` after TensorFlow crashes (a segmentation fault; constructing
`torch.optim.Adam` loads it, and `torch.utils.tensorboard` can pull TensorFlow in first). Both backend packages
call `torch_first()` on import, so any process of this project has torch, then TensorFlow.
"""

import importlib
import os


def torch_first() -> None:
    """Import torch and torch._dynamo now, when torch is installed (a Keras-only installation skips this)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter stays out of the CLIs
    try:
        importlib.import_module("torch")
        importlib.import_module("torch._dynamo")
    except ImportError:
        pass
