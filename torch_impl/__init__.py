"""PyTorch implementations of DCGAN, WGAN-GP and CGAN, with explicit training loops."""

from specs.import_order import torch_first

torch_first()
