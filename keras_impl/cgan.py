"""Conditional GAN in Keras 3: a WGAN-GP told which class to draw (mirror: torch_impl/cgan.py).

Mirza and Osindero 2014 (arXiv:1411.1784), as the conditional WGAN-GP of chapter 4 of Generative Deep Learning.
G sees concat(z, one_hot(y)); C sees the image with one_hot(y) broadcast to K extra channels (label planes).
Losses, critic steps and the gradient penalty are WGAN-GP's (keras_impl/wgan_gp.py); the penalty is taken with
respect to the image alone, the label planes held fixed. A batch is (images, one-hot labels). Layout NHWC.
"""

from __future__ import annotations

from keras import ops

from keras_impl.wgan_gp import WGANGP

# ---------------------------------------------------------------------------------------------------- Networks


def generator_input(z, one_hot):
    """concat(z, one-hot label): (N, latent_dim + K)."""
    return ops.concatenate([z, one_hot], axis=1)


def with_label_planes(images, one_hot):
    """The image with its label as K constant planes: (N, H, W, C) -> (N, H, W, C + K)."""
    shape = ops.shape(images)
    planes = ops.broadcast_to(one_hot[:, None, None, :], (shape[0], shape[1], shape[2], ops.shape(one_hot)[1]))
    return ops.concatenate([images, planes], axis=-1)


# ------------------------------------------------------------------------------------------------------ Trainer


class CGAN(WGANGP):
    """WGAN-GP's trainer, with labels: a batch is (images, one-hot labels)."""

    def split_batch(self, data):
        images, one_hot = data
        return images, ops.cast(one_hot, images.dtype)

    def generate(self, z, labels=None, training=True):
        return self.generator(generator_input(z, labels), training=training)

    def score(self, images, labels=None, training=True):
        return self.critic(with_label_planes(images, labels), training=training)
