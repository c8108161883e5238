"""WGAN-GP in Keras 3: critic, gradient penalty, losses and one train step (mirror: torch_impl/wgan_gp.py).

Gulrajani et al. 2017 (arXiv:1704.00028), as built in chapter 4 of Generative Deep Learning (2nd ed.).
Critic C: image -> score (no sigmoid, no normalisation: a sample's score must not depend on its batch).
Critic loss = mean C(G(z)) - mean C(x) + lambda * GP ; generator loss = -mean C(G(z)).
GP = mean over samples of (||grad_x^ C(x^)||_2 - 1)^2, x^ = x + alpha (G(z) - x), norm over H, W, C per sample,
alpha ~ U(0, 1) of shape (N, 1, 1, 1) (the book draws N(0, 1): a known bug, kept as an option).
Each train step: `critic_steps` critic updates, each with fresh z, then one generator update.
The generator is the DCGAN one (keras_impl/dcgan.py), with a bias on its last convT. Layout NHWC.
Precision (keras_impl/devices.py): under a mixed policy the layers compute in bfloat16 or float16 and the networks'
last layers in float32, so images and scores are float32; the penalty's inner gradient is taken with respect to the
float32 x^ and is float32, and its norm, the penalty and the losses are computed in float32. mixed_float16 scales
the losses (`scale_loss`) before the gradients are taken; the inner gradient needs no scale, since the penalty
holds its norm near 1.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from keras_impl.dcgan import Generator, _output_dtype, _SavedWithConfig, adam
from keras_impl.distributed import global_batch, replica_part, replica_share
from keras_impl.gradients import Optimizers, Trainer, apply_gradients, gradients, input_gradient
from specs.models import WGANGPConfig

# ---------------------------------------------------------------------------------------------------- Networks


@keras.saving.register_keras_serializable(package="gan_parity")
class Critic(_SavedWithConfig, keras.Sequential):
    """Image (N, S, S, C), with K label planes for a conditional model -> score (N, 1)."""

    def __init__(self, config: WGANGPConfig, name: str = "critic", **kwargs):
        stack = [keras.Input((config.image_size, config.image_size, config.critic_input_channels))]
        for i, width in enumerate(config.discriminator_widths(), start=1):
            slope = config.second_slope if i == 2 else config.leaky_slope  # the book's 0.3 after conv2
            stack += [layers.Conv2D(width, 4, strides=2, padding="same", name=f"conv{i}")]  # halves H, W
            stack += [layers.LeakyReLU(slope, name=f"act{i}")]
            if i > 1:
                stack += [layers.Dropout(config.dropout, name=f"drop{i}")]
            # (N, S / 2 ** i, S / 2 ** i, width)
        last = config.num_blocks + 1
        stack += [layers.Conv2D(1, 4, strides=1, padding="valid", name=f"conv{last}")]  # (N, 1, 1, 1)
        stack += [layers.Flatten(name="flatten", dtype=_output_dtype())]  # (N, 1)
        super().__init__(stack, name=name, **kwargs)
        self.config = config


# ------------------------------------------------------------------------------------------------------ Losses


def gradient_penalty(critic, real, fake, alpha, epsilon: float):
    """mean((||grad C(x^)|| - 1)^2) at x^ = real + alpha (fake - real); differentiable in the critic's weights."""
    x_hat = ops.stop_gradient(real + alpha * (fake - real))  # the penalty looks at x^ alone
    grads = input_gradient(lambda images: critic(images, training=True), x_hat)  # differentiable: GP trains C;
    # float32 scores and x^, so grads are float32 whatever precision the critic's layers compute in
    norm = ops.sqrt(ops.sum(ops.square(grads), axis=(1, 2, 3)) + epsilon)  # per sample, over H, W, C
    return ops.mean((norm - 1) ** 2)


def critic_wasserstein_loss(real_scores, fake_scores):
    """mean C(fake) - mean C(real): the negative of the critic's Wasserstein estimate."""
    return ops.mean(fake_scores) - ops.mean(real_scores)


def generator_loss(fake_scores):
    """-mean C(G(z)): G wants high scores."""
    return -ops.mean(fake_scores)


# ------------------------------------------------------------------------------------------------------ Trainer


class WGANGP(Trainer):
    """Holds G, C, their optimisers and a seeded generator of z and alpha."""

    def __init__(self, config: WGANGPConfig, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.generator = Generator(config)
        self.critic = Critic(config)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("c_loss", "c_wass_loss", "c_gp", "g_loss")}

    def compile(self, c_optimizer=None, g_optimizer=None, **kwargs):
        kwargs.setdefault("optimizer", None)  # no Keras default (RMSprop) beside the two optimisers that train
        super().compile(**kwargs)
        self.c_optimizer = c_optimizer or adam(self.config)
        self.g_optimizer = g_optimizer or adam(self.config)
        self.c_optimizer.build(self.critic.trainable_variables)  # state exists before the first step,
        self.g_optimizer.build(self.generator.trainable_variables)  # as in torch: checkpoints can restore it
        self.optimizer = Optimizers(self.c_optimizer, self.g_optimizer)  # what Keras's fit and callbacks read
        self.built = True  # G and C are built (keras.Input): fit under tf.distribute needs no symbolic build

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, z, labels=None, training=False):
        return self.generate(z, labels, training=training)

    # The three places a conditional model (keras_impl/cgan.py) differs: what a batch holds, and what G and C see.

    def split_batch(self, data):
        """A batch is images alone: (images, no labels); fit hands a PyDataset's batch as (images,)."""
        return keras.utils.unpack_x_y_sample_weight(data)[0], None

    def generate(self, z, labels=None, training=True):
        return self.generator(z, training=training)

    def score(self, images, labels=None, training=True):
        return self.critic(images, training=training)

    def sample_noise(self, batch_size, z=None, alpha=None):
        """z of shape (critic_steps + 1, N, latent_dim): one per critic step, the last for G; alpha of shape
        (critic_steps, N, 1, 1, 1), U(0, 1) or (book) N(0, 1); each unless given; in the variables' dtype (float32
        under a mixed policy)."""
        dtype, steps = self.generator.variable_dtype, self.config.critic_steps
        if z is None:
            z = keras.random.normal(
                (steps + 1, batch_size, self.config.latent_dim), seed=self.seed_generator, dtype=dtype
            )
        if alpha is None:
            draw = keras.random.uniform if self.config.alpha_distribution == "uniform" else keras.random.normal
            alpha = draw((steps, batch_size, 1, 1, 1), seed=self.seed_generator, dtype=dtype)
        return z, alpha

    def penalty(self, real, fake, alpha, labels=None):
        """The gradient penalty of this model's critic, taken with respect to the images alone."""
        return gradient_penalty(lambda images, training: self.score(images, labels, training), real, fake, alpha,
                                self.config.gp_epsilon)

    def critic_losses(self, real, fake, alpha, labels=None):
        """The critic's loss on one batch: Wasserstein part, penalty, and their weighted sum."""
        c_wass_loss = critic_wasserstein_loss(self.score(real, labels), self.score(fake, labels))
        c_gp = self.penalty(real, fake, alpha, labels)
        return {"c_loss": c_wass_loss + self.config.gp_weight * c_gp, "c_wass_loss": c_wass_loss, "c_gp": c_gp}

    def gan_losses(self, data, z, alpha):
        """Training-mode losses of one critic step (z[0], alpha[0]) and of the generator step (z[-1])."""
        real, labels = self.split_batch(data)
        out = self.critic_losses(real, self.generate(z[0], labels), alpha[0], labels)
        out["g_loss"] = generator_loss(self.score(self.generate(z[-1], labels), labels))
        return out

    def train_step(self, data, z=None, alpha=None):
        real, labels = self.split_batch(data)
        z, alpha = self.sample_noise(global_batch(ops.shape(real)[0]), z, alpha)  # the global batch's,
        z, alpha = replica_part(z, 1), replica_part(alpha, 1)  # of which this replica keeps its part
        c_params = self.critic.trainable_weights
        g_params = self.generator.trainable_weights
        for step in range(self.config.critic_steps):
            fake = ops.stop_gradient(self.generate(z[step], labels))  # fresh z for every critic step

            def c_losses(fake=fake, alpha=alpha[step]):
                out = self.critic_losses(real, fake, alpha, labels)
                c_share = self.c_optimizer.scale_loss(replica_share(out["c_loss"]))  # this replica's share of the
                return [c_share], out  # global loss (scaled under float16)

            _, out, (c_grads,) = gradients(c_losses, [c_params])
            apply_gradients(self.c_optimizer, c_grads, c_params)

        def g_losses():
            g_loss = generator_loss(self.score(self.generate(z[-1], labels), labels))
            return [self.g_optimizer.scale_loss(replica_share(g_loss))], g_loss

        _, g_loss, (g_grads,) = gradients(g_losses, [g_params])
        apply_gradients(self.g_optimizer, g_grads, g_params)
        for name, value in (out | {"g_loss": g_loss}).items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
