"""WGAN-GP in PyTorch: critic, gradient penalty, losses and one train step (mirror: keras_impl/wgan_gp.py).

Gulrajani et al. 2017 (arXiv:1704.00028), as built in chapter 4 of Generative Deep Learning (2nd ed.).
Critic C: image -> score (no sigmoid, no normalisation: a sample's score must not depend on its batch).
Critic loss = mean C(G(z)) - mean C(x) + lambda * GP ; generator loss = -mean C(G(z)).
GP = mean over samples of (||grad_x^ C(x^)||_2 - 1)^2, x^ = x + alpha (G(z) - x), norm over C, H, W per sample,
alpha ~ U(0, 1) of shape (N, 1, 1, 1) (the book draws N(0, 1): a known bug, kept as an option).
Each train step: `critic_steps` critic updates, each with fresh z, then one generator update.
The generator is the DCGAN one (torch_impl/dcgan.py), with a bias on its last convT. Layout NCHW.
Precision (torch_impl/devices.py): under bfloat16 or float16 the layers compute in that dtype under autocast and
the networks return float32 images and scores; the penalty's inner gradient is taken, outside autocast, with
respect to the float32 x^ and is float32, and its norm, the penalty and the losses are computed in float32.
float16 scales the losses (`scale_loss`) before the gradients are taken; the inner gradient needs no scale, since
the penalty holds its norm near 1.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from specs.models import WGANGPConfig, torch_leaky_slope
from torch_impl.dcgan import Generator, adam
from torch_impl.distributed import global_batch, replica_part, replica_share
from torch_impl.loop import Dropout, Network, Trainer, apply_gradients, input_gradient, keras_default_init, scale_loss

# ---------------------------------------------------------------------------------------------------- Networks


class Critic(Network):
    """Image (N, C, S, S), with K label planes for a conditional model -> score (N, 1)."""

    def __init__(self, config: WGANGPConfig):
        layers: list[tuple[str, nn.Module]] = []
        in_channels = config.critic_input_channels
        for i, width in enumerate(config.discriminator_widths(), start=1):
            slope = config.second_slope if i == 2 else config.leaky_slope  # the book's 0.3 after conv2
            layers += [(f"conv{i}", nn.Conv2d(in_channels, width, 4, stride=2, padding=1))]  # halves H, W
            layers += [(f"act{i}", nn.LeakyReLU(torch_leaky_slope(slope)))]
            if i > 1:
                layers += [(f"drop{i}", Dropout(config.dropout))]
            in_channels = width  # (N, width, S / 2 ** i, S / 2 ** i)
        last = config.num_blocks + 1
        layers += [(f"conv{last}", nn.Conv2d(in_channels, 1, 4, stride=1, padding=0))]  # (N, 1, 1, 1)
        layers += [("flatten", nn.Flatten())]  # (N, 1)
        super().__init__(OrderedDict(layers))
        self.apply(keras_default_init)


# ------------------------------------------------------------------------------------------------------ Losses


def gradient_penalty(critic, real, fake, alpha, epsilon: float) -> torch.Tensor:
    """mean((||grad C(x^)|| - 1)^2) at x^ = real + alpha (fake - real); differentiable in the critic's weights."""
    x_hat = (real + alpha * (fake - real)).detach()  # the penalty looks at x^ alone
    grads = input_gradient(critic, x_hat)  # autograd.grad(critic(x^).sum(), x^, create_graph=True), differentiable:
    # GP trains C (written out layer by layer: loop.input_gradient); float32 x^, so grads are float32 whatever
    # precision the critic's layers compute in
    norm = torch.sqrt(grads.square().sum(dim=(1, 2, 3)) + epsilon)  # per sample, over C, H, W
    return ((norm - 1) ** 2).mean()


def critic_wasserstein_loss(real_scores, fake_scores) -> torch.Tensor:
    """mean C(fake) - mean C(real): the negative of the critic's Wasserstein estimate."""
    return fake_scores.mean() - real_scores.mean()


def generator_loss(fake_scores) -> torch.Tensor:
    """-mean C(G(z)): G wants high scores."""
    return -fake_scores.mean()


# ------------------------------------------------------------------------------------------------------ Trainer


class WGANGP(Trainer):
    """Holds G, C, their optimisers and a seeded generator of z and alpha."""

    def __init__(self, config: WGANGPConfig, seed: int = 0):
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.critic = Critic(config)
        self.c_optimizer = adam(self.critic.parameters(), config)
        self.g_optimizer = adam(self.generator.parameters(), config)
        self.rng = torch.Generator().manual_seed(seed)

    def forward(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        return self.generate(z, labels)

    # The three places a conditional model (torch_impl/cgan.py) differs: what a batch holds, and what G and C see.

    def split_batch(self, data) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch is images alone: (images, no labels)."""
        return data, None

    def generate(self, z, labels=None) -> torch.Tensor:
        return self.generator(z)

    def score(self, images, labels=None) -> torch.Tensor:
        return self.critic(images)

    def sample_noise(self, batch_size: int, z=None, alpha=None) -> tuple[torch.Tensor, torch.Tensor]:
        """z of shape (critic_steps + 1, N, latent_dim): one per critic step, the last for G; alpha of shape
        (critic_steps, N, 1, 1, 1), U(0, 1) or (book) N(0, 1); each unless given; drawn on the CPU (the same numbers
        on every device), on the weights' device."""
        weight, steps = next(self.parameters()), self.config.critic_steps
        if z is None:
            z = torch.randn(steps + 1, batch_size, self.config.latent_dim, generator=self.rng, dtype=weight.dtype)
        if alpha is None:
            draw = torch.rand if self.config.alpha_distribution == "uniform" else torch.randn
            alpha = draw(steps, batch_size, 1, 1, 1, generator=self.rng, dtype=weight.dtype)
        return z.to(weight.device), alpha.to(weight.device)

    def penalty(self, real, fake, alpha, labels=None) -> torch.Tensor:
        """The gradient penalty of this model's critic, taken with respect to the images alone."""
        return gradient_penalty(lambda images: self.score(images, labels), real, fake, alpha, self.config.gp_epsilon)

    def critic_losses(self, real, fake, alpha, labels=None) -> dict[str, torch.Tensor]:
        """The critic's loss on one batch: Wasserstein part, penalty, and their weighted sum."""
        c_wass_loss = critic_wasserstein_loss(self.score(real, labels), self.score(fake, labels))
        c_gp = self.penalty(real, fake, alpha, labels)
        return {"c_loss": c_wass_loss + self.config.gp_weight * c_gp, "c_wass_loss": c_wass_loss, "c_gp": c_gp}

    def gan_losses(self, data, z, alpha) -> dict[str, torch.Tensor]:
        """Training-mode losses of one critic step (z[0], alpha[0]) and of the generator step (z[-1])."""
        real, labels = self.split_batch(data)
        out = self.critic_losses(real, self.generate(z[0], labels), alpha[0], labels)
        out["g_loss"] = generator_loss(self.score(self.generate(z[-1], labels), labels))
        return out

    def train_step(self, data, z=None, alpha=None) -> dict[str, torch.Tensor]:
        real, labels = self.split_batch(data)
        z, alpha = self.sample_noise(global_batch(real.shape[0]), z, alpha)  # the global batch's,
        z, alpha = replica_part(z, 1), replica_part(alpha, 1)  # of which this replica keeps its part
        c_params = list(self.critic.parameters())
        g_params = list(self.generator.parameters())
        for step in range(self.config.critic_steps):
            with torch.no_grad():
                fake = self.generate(z[step], labels)  # fresh z for every critic step
            out = self.critic_losses(real, fake, alpha[step], labels)
            c_share = scale_loss(self.c_optimizer, replica_share(out["c_loss"]))  # this replica's share of the
            # global loss (scaled under float16)
            c_grads = torch.autograd.grad(c_share, c_params)
            apply_gradients(self.c_optimizer, zip(c_grads, c_params))
        g_loss = generator_loss(self.score(self.generate(z[-1], labels), labels))
        g_share = scale_loss(self.g_optimizer, replica_share(g_loss))
        g_grads = torch.autograd.grad(g_share, g_params)
        apply_gradients(self.g_optimizer, zip(g_grads, g_params))
        return {name: value.detach() for name, value in out.items()} | {"g_loss": g_loss.detach()}
