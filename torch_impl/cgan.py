"""Conditional GAN in PyTorch: a WGAN-GP told which class to draw (mirror: keras_impl/cgan.py).

Mirza and Osindero 2014 (arXiv:1411.1784), as the conditional WGAN-GP of chapter 4 of Generative Deep Learning.
G sees concat(z, one_hot(y)); C sees the image with one_hot(y) broadcast to K extra channels (label planes).
Losses, critic steps and the gradient penalty are WGAN-GP's (torch_impl/wgan_gp.py); the penalty is taken with
respect to the image alone, the label planes held fixed. A batch is (images, one-hot labels). Layout NCHW.
"""

from __future__ import annotations

import torch

from torch_impl.wgan_gp import WGANGP

# ---------------------------------------------------------------------------------------------------- Networks


def generator_input(z: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
    """concat(z, one-hot label): (N, latent_dim + K)."""
    return torch.cat([z, one_hot], dim=1)


def with_label_planes(images: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
    """The image with its label as K constant planes: (N, C, H, W) -> (N, C + K, H, W)."""
    planes = one_hot[:, :, None, None].expand(-1, -1, *images.shape[2:])  # (N, K, H, W)
    return torch.cat([images, planes], dim=1)


# ------------------------------------------------------------------------------------------------------ Trainer


class CGAN(WGANGP):
    """WGAN-GP's trainer, with labels: a batch is (images, one-hot labels)."""

    def split_batch(self, data) -> tuple[torch.Tensor, torch.Tensor]:
        images, one_hot = data
        return images, one_hot.to(images.dtype)

    def generate(self, z, labels=None) -> torch.Tensor:
        return self.generator(generator_input(z, labels))

    def score(self, images, labels=None) -> torch.Tensor:
        return self.critic(with_label_planes(images, labels))
