"""DCGAN in PyTorch: networks, losses and one train step (mirror: keras_impl/dcgan.py).

Radford, Metz and Chintala 2015 (arXiv:1511.06434), as built in chapter 4 of Generative Deep Learning (2nd ed.).
Generator G: z ~ N(0, 1) -> image in [-1, 1]; discriminator D: image -> logit (no sigmoid inside).
D loss = (BCE(D(x), t_real) + BCE(D(G(z)), t_fake)) / 2 (or their sum) ; G loss = BCE(D(G(z)), 1) ; BCE from logits.
Label noise U ~ U(0, 1): targets t_real = 1 - s - a*U, t_fake = a*U, or the book's 1 - s + a*U and -a*U (s: one-sided
label smoothing, 0 in the book). z ~ N(0, 1), or U(-1, 1) for published models that draw it so.
Update orders: "simultaneous" (the book: D and G gradients from one forward pass) or "alternating" (D step, then
a G step through a fresh pass of the updated D). Layout NCHW; layer names equal those of the Keras file.
Precision (torch_impl/devices.py): under bfloat16 or float16 the layers compute in that dtype under autocast, but
each network returns float32 (its last layer, tanh or flatten, takes float32), so both losses are computed in
float32 from float32 logits; weights, Adam's moments and checkpoints are float32. float16 scales the losses
(`scale_loss`) before the gradients are taken.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from specs.models import DCGANConfig, GANConfig, torch_bn_momentum, torch_leaky_slope
from torch_impl.devices import loss_scaling
from torch_impl.distributed import global_batch, replica_part, replica_share
from torch_impl.loop import Dropout, Network, Trainer, apply_gradients, keras_default_init, scale_loss
from torch_impl.optim import Adam

# ---------------------------------------------------------------------------------------------------- Networks


def batch_norm(channels: int, config: GANConfig) -> nn.BatchNorm2d:
    """BatchNorm with the configuration's Keras momentum converted and its epsilon passed explicitly."""
    return nn.BatchNorm2d(channels, eps=config.bn_epsilon, momentum=torch_bn_momentum(config.bn_momentum))


class Generator(Network):
    """z (N, latent_dim), or concat(z, one-hot) for a conditional model -> image (N, C, S, S) in [-1, 1]."""

    def __init__(self, config: GANConfig):
        layers: list[tuple[str, nn.Module]] = [("reshape", nn.Unflatten(1, (config.generator_input_dim, 1, 1)))]
        in_channels = config.generator_input_dim  # (N, latent_dim (+ K), 1, 1)
        for i, width in enumerate(config.generator_widths(), start=1):
            if i == 1:
                conv = nn.ConvTranspose2d(in_channels, width, 4, stride=1, padding=0, bias=False)  # (N, w, 4, 4)
            else:
                conv = nn.ConvTranspose2d(in_channels, width, 4, stride=2, padding=1, bias=False)  # doubles H, W
            layers += [(f"conv{i}", conv), (f"bn{i}", batch_norm(width, config))]
            layers += [(f"act{i}", nn.LeakyReLU(torch_leaky_slope(config.leaky_slope)))]
            in_channels = width  # (N, width, 2 ** (i + 1), 2 ** (i + 1))
        last = config.num_blocks + 1
        conv = nn.ConvTranspose2d(in_channels, config.channels, 4, stride=2, padding=1, bias=config.output_bias)
        layers += [(f"conv{last}", conv)]
        layers += [("tanh", nn.Tanh())]  # (N, C, S, S)
        super().__init__(OrderedDict(layers))
        self.apply(keras_default_init)


class Discriminator(Network):
    """Image (N, C, S, S) -> logit (N, 1)."""

    def __init__(self, config: DCGANConfig):
        layers: list[tuple[str, nn.Module]] = []
        in_channels = config.channels
        for i, width in enumerate(config.discriminator_widths(), start=1):
            layers += [(f"conv{i}", nn.Conv2d(in_channels, width, 4, stride=2, padding=1, bias=False))]  # halves H, W
            if i > 1:
                layers += [(f"bn{i}", batch_norm(width, config))]
            layers += [(f"act{i}", nn.LeakyReLU(torch_leaky_slope(config.leaky_slope)))]
            layers += [(f"drop{i}", Dropout(config.dropout))]
            in_channels = width  # (N, width, S / 2 ** i, S / 2 ** i)
        last = config.num_blocks + 1
        layers += [(f"conv{last}", nn.Conv2d(in_channels, 1, 4, stride=1, padding=0, bias=False))]  # (N, 1, 1, 1)
        layers += [("flatten", nn.Flatten())]  # (N, 1)
        super().__init__(OrderedDict(layers))
        self.apply(keras_default_init)


# ------------------------------------------------------------------------------------------------------ Losses


def binary_crossentropy(targets: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean BCE from logits: max(x, 0) - x * t + log(1 + exp(-|x|)), stable for any target t."""
    return F.binary_cross_entropy_with_logits(logits, targets)


def label_targets(label_noise: torch.Tensor, config: DCGANConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy targets from U(0, 1) draws of shape (2, N, 1): row 0 for real images, row 1 for fake ones."""
    amount, real = config.label_noise, 1 - config.label_smoothing
    if config.book_label_noise:
        return real + amount * label_noise[0], -amount * label_noise[1]
    return real - amount * label_noise[0], amount * label_noise[1]


def discriminator_loss(real_logits, fake_logits, real_targets, fake_targets, config: DCGANConfig) -> torch.Tensor:
    """(BCE(real) + BCE(fake)) / 2, as in the book, or their sum (d_loss_reduction "sum": errD_real + errD_fake)."""
    total = binary_crossentropy(real_targets, real_logits) + binary_crossentropy(fake_targets, fake_logits)
    return total if config.d_loss_reduction == "sum" else total / 2


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE against all-ones targets: G wants D to call its images real."""
    return binary_crossentropy(torch.ones_like(fake_logits), fake_logits)


# ------------------------------------------------------------------------------------------------------ Trainer


def adam(params, config: GANConfig) -> Adam:
    """Adam with every hyperparameter from the configuration, epsilon included, stepping by Keras's rule
    (torch_impl/optim.py: where the two frameworks add epsilon differs); with dynamic loss scaling under float16;
    torch's fused kernel (one pass over each tensor: the same steps, in fewer passes over memory)."""
    betas = (config.beta_1, config.beta_2)
    return Adam(params, lr=config.learning_rate, betas=betas, epsilon=config.adam_epsilon, loss_scale=loss_scaling(),
                fused=True)


class DCGAN(Trainer):
    """Holds G, D, their optimisers and a seeded generator of z and label noise."""

    def __init__(self, config: DCGANConfig, seed: int = 0):
        super().__init__()
        self.config = config
        self.generator, self.discriminator = self.build_networks(config)
        self.d_optimizer = adam(self.discriminator.parameters(), config)
        self.g_optimizer = adam(self.generator.parameters(), config)
        self.rng = torch.Generator().manual_seed(seed)

    def build_networks(self, config: DCGANConfig) -> tuple[nn.Module, nn.Module]:
        """The generator and the discriminator: the book's (torch_impl/published.py builds the published models')."""
        return Generator(config), Discriminator(config)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def sample_noise(self, batch_size: int, z=None, label_noise=None) -> tuple[torch.Tensor, torch.Tensor]:
        """z ~ N(0, 1) or U(-1, 1) of shape (N, latent_dim) and label noise ~ U(0, 1) of shape (2, N, 1), unless
        given; drawn on the CPU (the same numbers on every device), on the weights' device."""
        weight = next(self.parameters())
        shape = (batch_size, self.config.latent_dim)
        if z is None and self.config.latent_distribution == "uniform":
            z = 2 * torch.rand(*shape, generator=self.rng, dtype=weight.dtype) - 1
        elif z is None:
            z = torch.randn(*shape, generator=self.rng, dtype=weight.dtype)
        if label_noise is None:
            label_noise = torch.rand(2, batch_size, 1, generator=self.rng, dtype=weight.dtype)
        return z.to(weight.device), label_noise.to(weight.device)

    def gan_losses(self, real, z, label_noise) -> dict[str, torch.Tensor]:
        """One forward pass of both networks in training mode: both losses and both logits."""
        real_targets, fake_targets = label_targets(label_noise, self.config)
        fake = self.generator(z)
        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(fake)
        d_loss = discriminator_loss(real_logits, fake_logits, real_targets, fake_targets, self.config)
        g_loss = generator_loss(fake_logits)
        return {"d_loss": d_loss, "g_loss": g_loss, "real_logits": real_logits, "fake_logits": fake_logits}

    def train_step(self, real, z=None, label_noise=None) -> dict[str, torch.Tensor]:
        z, label_noise = self.sample_noise(global_batch(real.shape[0]), z, label_noise)  # the global batch's,
        z, label_noise = replica_part(z, 0), replica_part(label_noise, 1)  # of which this replica keeps its part
        d_params = list(self.discriminator.parameters())
        g_params = list(self.generator.parameters())
        if self.config.update_order == "simultaneous":
            out = self.gan_losses(real, z, label_noise)
            d_share = scale_loss(self.d_optimizer, replica_share(out["d_loss"]))  # of the global losses (scaled
            g_share = scale_loss(self.g_optimizer, replica_share(out["g_loss"]))  # under float16)
            d_grads = torch.autograd.grad(d_share, d_params, retain_graph=True)
            g_grads = torch.autograd.grad(g_share, g_params)
            apply_gradients(self.d_optimizer, zip(d_grads, d_params))
            apply_gradients(self.g_optimizer, zip(g_grads, g_params))
            d_loss, g_loss, real_logits, fake_logits = (
                out["d_loss"], out["g_loss"], out["real_logits"], out["fake_logits"]
            )
        else:
            real_targets, fake_targets = label_targets(label_noise, self.config)
            fake = self.generator(z)  # one generator pass, kept for the G step
            real_logits = self.discriminator(real)
            fake_logits = self.discriminator(fake.detach())
            d_loss = discriminator_loss(real_logits, fake_logits, real_targets, fake_targets, self.config)
            d_share = scale_loss(self.d_optimizer, replica_share(d_loss))
            d_grads = torch.autograd.grad(d_share, d_params)
            apply_gradients(self.d_optimizer, zip(d_grads, d_params))
            g_loss = generator_loss(self.discriminator(fake))  # a fresh pass through the updated D
            g_share = scale_loss(self.g_optimizer, replica_share(g_loss))
            g_grads = torch.autograd.grad(g_share, g_params)
            apply_gradients(self.g_optimizer, zip(g_grads, g_params))
        return {
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": torch.sigmoid(real_logits).mean().detach(),
            "d_fake": torch.sigmoid(fake_logits).mean().detach(),
        }
