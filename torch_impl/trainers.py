"""Every model's trainer, built the one way `gan-torch` builds it (mirror: keras_impl/trainers.py).

The command line, the checkpoint loaders, the parity checks and the benchmarks all call `build_trainer`, so what
the parity layer proves is what users train: the same classes, the same initialisation, the same optimisers.
"""

from __future__ import annotations

import torch

from torch_impl import cgan, dcgan, published, wgan_gp
from torch_impl.devices import precision_policy

TRAINERS = {"dcgan": dcgan.DCGAN, "wgan_gp": wgan_gp.WGANGP, "cgan": cgan.CGAN, "published": published.PublishedDCGAN}

# ----------------------------------------------------------------------------------------------------- Trainers


def build_trainer(model: str, config, seed: int = 0, device: torch.device | str = "cpu",
                  precision: str = "float32") -> torch.nn.Module:
    """The trainer of `model`: weights initialised from `seed` (torch's global generator, on the CPU, so every
    device starts from the same weights) and moved to `device`, noise drawn from its own generator seeded with
    `seed`, Adam with Keras's epsilon rule (torch_impl/optim.py), networks and optimisers built under the precision
    policy (torch_impl/devices.py).

    Convolution kernels are stored channels-last (torch.channels_last: the same (N, C, H, W) tensors, laid out as
    Keras lays out its images), as are the batches (torch_impl/data.py): oneDNN's convolutions and BatchNorm run
    natively in that layout, with no reordering around each layer (benchmarks/profile_step.py measures it)."""
    torch.manual_seed(seed)
    with precision_policy(precision):
        trainer = TRAINERS[model](config, seed=seed)
    return trainer.to(device, memory_format=torch.channels_last)
