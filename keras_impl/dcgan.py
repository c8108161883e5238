"""DCGAN in Keras 3: networks, losses and one train step (mirror: torch_impl/dcgan.py).

Radford, Metz and Chintala 2015 (arXiv:1511.06434), as built in chapter 4 of Generative Deep Learning (2nd ed.).
Generator G: z ~ N(0, 1) -> image in [-1, 1]; discriminator D: image -> logit (no sigmoid inside).
D loss = (BCE(D(x), t_real) + BCE(D(G(z)), t_fake)) / 2 (or their sum) ; G loss = BCE(D(G(z)), 1) ; BCE from logits.
Label noise U ~ U(0, 1): targets t_real = 1 - s - a*U, t_fake = a*U, or the book's 1 - s + a*U and -a*U (s: one-sided
label smoothing, 0 in the book). z ~ N(0, 1), or U(-1, 1) for published models that draw it so.
Update orders: "simultaneous" (the book: D and G gradients from one forward pass) or "alternating" (D step, then
a G step through a fresh pass of the updated D). Layout NHWC; layer names equal those of the torch file.
Precision (keras_impl/devices.py): under the mixed_bfloat16 or mixed_float16 policy the layers compute in that dtype
with float32 variables, but each network's last layer (tanh, flatten) computes in float32, so both losses are
computed in float32 from float32 logits; weights, Adam's moments and checkpoints are float32. mixed_float16 wraps
each Adam in a LossScaleOptimizer, which scales the losses (`scale_loss`) before the gradients are taken.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from keras_impl.devices import loss_scaling
from keras_impl.distributed import global_batch, replica_part, replica_share
from keras_impl.gradients import Optimizers, Trainer, apply_gradients, gradients, recorded
from specs.models import DCGANConfig, GANConfig, config_from_record, config_record

# ---------------------------------------------------------------------------------------------------- Networks


def batch_norm(name: str, config: GANConfig) -> layers.BatchNormalization:
    """BatchNorm with the configuration's Keras momentum and its epsilon passed explicitly."""
    return layers.BatchNormalization(momentum=config.bn_momentum, epsilon=config.bn_epsilon, name=name)


def _output_dtype() -> str:
    """The dtype of a network's last layer: the variables' (float32 under a mixed policy, float64 in the float64
    parity checks), so that images, logits and scores, and what is computed from them, are in full precision."""
    return keras.config.dtype_policy().variable_dtype


class _SavedWithConfig:
    """A network saved as a whole model (generator.keras) with the configuration it was built from, and rebuilt
    from it: `keras.models.load_model` finds the class by its registered name ("gan_parity>Generator")."""

    def get_config(self):
        return {"name": self.name, "config": config_record(self.config)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(config_from_record(config.pop("config")), **config)


@keras.saving.register_keras_serializable(package="gan_parity")
class Generator(_SavedWithConfig, keras.Sequential):
    """z (N, latent_dim), or concat(z, one-hot) for a conditional model -> image (N, S, S, C) in [-1, 1]."""

    def __init__(self, config: GANConfig, name: str = "generator", **kwargs):
        size = config.generator_input_dim
        stack = [keras.Input((size,)), layers.Reshape((1, 1, size), name="reshape")]  # (N, 1, 1, latent_dim (+ K))
        for i, width in enumerate(config.generator_widths(), start=1):
            if i == 1:
                conv = layers.Conv2DTranspose(width, 4, strides=1, padding="valid", use_bias=False, name=f"conv{i}")
            else:
                conv = layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False, name=f"conv{i}")
            stack += [conv, batch_norm(f"bn{i}", config)]
            stack += [layers.LeakyReLU(config.leaky_slope, name=f"act{i}")]
            # (N, 2 ** (i + 1), 2 ** (i + 1), width)
        last = config.num_blocks + 1
        conv = layers.Conv2DTranspose(
            config.channels, 4, strides=2, padding="same", use_bias=config.output_bias, name=f"conv{last}"
        )
        stack += [conv]
        stack += [layers.Activation("tanh", name="tanh", dtype=_output_dtype())]  # (N, S, S, C)
        super().__init__(stack, name=name, **kwargs)
        self.config = config


@keras.saving.register_keras_serializable(package="gan_parity")
class Discriminator(_SavedWithConfig, keras.Sequential):
    """Image (N, S, S, C) -> logit (N, 1)."""

    def __init__(self, config: DCGANConfig, name: str = "discriminator", **kwargs):
        stack = [keras.Input((config.image_size, config.image_size, config.channels))]
        for i, width in enumerate(config.discriminator_widths(), start=1):
            stack += [layers.Conv2D(width, 4, strides=2, padding="same", use_bias=False, name=f"conv{i}")]
            if i > 1:
                stack += [batch_norm(f"bn{i}", config)]
            stack += [layers.LeakyReLU(config.leaky_slope, name=f"act{i}")]
            stack += [layers.Dropout(config.dropout, name=f"drop{i}")]
            # (N, S / 2 ** i, S / 2 ** i, width)
        last = config.num_blocks + 1
        stack += [layers.Conv2D(1, 4, strides=1, padding="valid", use_bias=False, name=f"conv{last}")]  # (N, 1, 1, 1)
        stack += [layers.Flatten(name="flatten", dtype=_output_dtype())]  # (N, 1)
        super().__init__(stack, name=name, **kwargs)
        self.config = config


# ------------------------------------------------------------------------------------------------------ Losses


def binary_crossentropy(targets, logits):
    """Mean BCE from logits: max(x, 0) - x * t + log(1 + exp(-|x|)), stable for any target t."""
    return ops.mean(keras.losses.binary_crossentropy(targets, logits, from_logits=True))


def label_targets(label_noise, config: DCGANConfig):
    """Noisy targets from U(0, 1) draws of shape (2, N, 1): row 0 for real images, row 1 for fake ones."""
    amount, real = config.label_noise, 1 - config.label_smoothing
    if config.book_label_noise:
        return real + amount * label_noise[0], -amount * label_noise[1]
    return real - amount * label_noise[0], amount * label_noise[1]


def discriminator_loss(real_logits, fake_logits, real_targets, fake_targets, config: DCGANConfig):
    """(BCE(real) + BCE(fake)) / 2, as in the book, or their sum (d_loss_reduction "sum": errD_real + errD_fake)."""
    total = binary_crossentropy(real_targets, real_logits) + binary_crossentropy(fake_targets, fake_logits)
    return total if config.d_loss_reduction == "sum" else total / 2


def generator_loss(fake_logits):
    """BCE against all-ones targets: G wants D to call its images real."""
    return binary_crossentropy(ops.ones_like(fake_logits), fake_logits)


# ------------------------------------------------------------------------------------------------------ Trainer


def adam(config: GANConfig) -> keras.optimizers.Optimizer:
    """Adam with every hyperparameter from the configuration, epsilon included; with dynamic loss scaling under
    mixed_float16 (a LossScaleOptimizer around it).

    The betas go in as numpy float64: Keras turns a Python float into a float32 tensor before raising it to the
    step's power, so in float64 its bias correction would use 0.99900001 for 0.999.
    """
    betas = np.float64(config.beta_1), np.float64(config.beta_2)
    optimizer = keras.optimizers.Adam(
        learning_rate=config.learning_rate, beta_1=betas[0], beta_2=betas[1], epsilon=config.adam_epsilon
    )
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scaling() else optimizer


class DCGAN(Trainer):
    """Holds G, D, their optimisers and a seeded generator of z and label noise."""

    def __init__(self, config: DCGANConfig, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.generator, self.discriminator = self.build_networks(config)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("d_loss", "g_loss", "d_real", "d_fake")}

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        kwargs.setdefault("optimizer", None)  # no Keras default (RMSprop) beside the two optimisers that train
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer or adam(self.config)
        self.g_optimizer = g_optimizer or adam(self.config)
        self.d_optimizer.build(self.discriminator.trainable_variables)  # state exists before the first step,
        self.g_optimizer.build(self.generator.trainable_variables)  # as in torch: checkpoints can restore it
        self.optimizer = Optimizers(self.d_optimizer, self.g_optimizer)  # what Keras's fit and callbacks read
        self.built = True  # G and D are built (keras.Input): fit under tf.distribute needs no symbolic build

    @property
    def metrics(self):
        return list(self.trackers.values())

    def build_networks(self, config: DCGANConfig) -> tuple[keras.Model, keras.Model]:
        """The generator and the discriminator: the book's (keras_impl/published.py builds the published models')."""
        return Generator(config), Discriminator(config)

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def sample_noise(self, batch_size, z=None, label_noise=None):
        """z ~ N(0, 1) or U(-1, 1) of shape (N, latent_dim) and label noise ~ U(0, 1) of shape (2, N, 1), unless
        given; in the variables' dtype (float32 under a mixed policy)."""
        dtype = self.generator.variable_dtype
        shape = (batch_size, self.config.latent_dim)
        if z is None and self.config.latent_distribution == "uniform":
            z = keras.random.uniform(shape, minval=-1.0, maxval=1.0, seed=self.seed_generator, dtype=dtype)
        elif z is None:
            z = keras.random.normal(shape, seed=self.seed_generator, dtype=dtype)
        if label_noise is None:
            label_noise = keras.random.uniform((2, batch_size, 1), seed=self.seed_generator, dtype=dtype)
        return z, label_noise

    def gan_losses(self, real, z, label_noise):
        """One forward pass of both networks in training mode: both losses and both logits."""
        real_targets, fake_targets = label_targets(label_noise, self.config)
        fake = self.generator(z, training=True)
        real_logits = self.discriminator(real, training=True)
        fake_logits = self.discriminator(fake, training=True)
        d_loss = discriminator_loss(real_logits, fake_logits, real_targets, fake_targets, self.config)
        g_loss = generator_loss(fake_logits)
        return {"d_loss": d_loss, "g_loss": g_loss, "real_logits": real_logits, "fake_logits": fake_logits}

    def train_step(self, real, z=None, label_noise=None):
        real = keras.utils.unpack_x_y_sample_weight(real)[0]  # fit hands a PyDataset's batch as (images,)
        z, label_noise = self.sample_noise(global_batch(ops.shape(real)[0]), z, label_noise)  # the global batch's,
        z, label_noise = replica_part(z, 0), replica_part(label_noise, 1)  # of which this replica keeps its part
        d_params = self.discriminator.trainable_weights
        g_params = self.generator.trainable_weights
        if self.config.update_order == "simultaneous":
            def both_losses():  # one forward pass; each replica's share of the global losses
                out = self.gan_losses(real, z, label_noise)
                d_share = self.d_optimizer.scale_loss(replica_share(out["d_loss"]))  # of the global losses (scaled
                g_share = self.g_optimizer.scale_loss(replica_share(out["g_loss"]))  # under float16)
                return [d_share, g_share], out

            _, out, (d_grads, g_grads) = gradients(both_losses, [d_params, g_params])
            apply_gradients(self.d_optimizer, d_grads, d_params)
            apply_gradients(self.g_optimizer, g_grads, g_params)
            d_loss, g_loss, real_logits, fake_logits = (
                out["d_loss"], out["g_loss"], out["real_logits"], out["fake_logits"]
            )
        else:
            real_targets, fake_targets = label_targets(label_noise, self.config)
            fake, resume = recorded(lambda: self.generator(z, training=True), g_params)  # one generator pass,
            # kept for the G step

            def d_losses():
                real_logits = self.discriminator(real, training=True)
                fake_logits = self.discriminator(ops.stop_gradient(fake), training=True)
                d_loss = discriminator_loss(real_logits, fake_logits, real_targets, fake_targets, self.config)
                return [self.d_optimizer.scale_loss(replica_share(d_loss))], (d_loss, real_logits, fake_logits)

            _, (d_loss, real_logits, fake_logits), (d_grads,) = gradients(d_losses, [d_params])
            apply_gradients(self.d_optimizer, d_grads, d_params)

            def g_losses(fake):  # the G pass resumes: a fresh pass through the updated D
                g_loss = generator_loss(self.discriminator(fake, training=True))
                return self.g_optimizer.scale_loss(replica_share(g_loss)), g_loss

            _, g_loss, g_grads = resume(g_losses)
            apply_gradients(self.g_optimizer, g_grads, g_params)
        self.trackers["d_loss"].update_state(d_loss)
        self.trackers["g_loss"].update_state(g_loss)
        self.trackers["d_real"].update_state(ops.mean(ops.sigmoid(real_logits)))
        self.trackers["d_fake"].update_state(ops.mean(ops.sigmoid(fake_logits)))
        return {name: tracker.result() for name, tracker in self.trackers.items()}
