"""Every model's trainer, built the one way `gan-torch` builds it (mirror: keras_impl/trainers.py).

The command line, the checkpoint loaders, the parity checks and the benchmarks all call `build_trainer`, so what
the parity layer proves is what users train: the same classes, the same initialisation, the same optimisers.
"""

from __future__ import annotations

import torch

from torch_impl import cgan, dcgan, published, wgan_gp

TRAINERS = {"dcgan": dcgan.DCGAN, "wgan_gp": wgan_gp.WGANGP, "cgan": cgan.CGAN, "published": published.PublishedDCGAN}

# ----------------------------------------------------------------------------------------------------- Trainers


def build_trainer(model: str, config, seed: int = 0) -> torch.nn.Module:
    """The trainer of `model`: weights initialised from `seed` (torch's global generator), noise drawn from its own
    generator seeded with `seed`, Adam with Keras's epsilon rule (torch_impl/optim.py)."""
    torch.manual_seed(seed)
    return TRAINERS[model](config, seed=seed)
