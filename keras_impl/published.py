"""Five published GANs in Keras 3: the networks of the GANs people port, trained by the DCGAN trainer (mirror:
torch_impl/published.py).

Each section below holds one original's generator and discriminator, with its layer names (or clear equivalents),
its initialisation and its framework's BatchNorm settings (specs/models.py ARCHITECTURES, PUBLISHED_PRESETS):
  pytorch-examples  pytorch/examples' DCGAN (torch, 64x64): transposed convs k4, BatchNorm, ReLU; N(0, 0.02)
  pytorch-gan-mlp   PyTorch-GAN's vanilla GAN (torch, 28x28): Linear blocks with BatchNorm1d(n, 0.8)
  face32            the Udacity course's face generator (torch, 32x32): Linear -> (320, 4, 4), padded convTs
  svhn-tf1          the TensorFlow 1 SVHN DCGAN (TensorFlow, 32x32): k5 s2 "same" convs, Dense <-> (H, W, C)
  celeba-keras      the Keras CelebA DCGAN (Keras, 64x64): Conv -> BN -> stride-2 Conv -> BN, global pooling
Every original ends its discriminator in a sigmoid; here it returns the logit, and the trainer takes BCE from
logits (the same loss, computed stably). For the three torch originals this file is the port: torch's padding
becomes "same" where it equals it and a Cropping2D otherwise (`_torch_transposed`), and torch's initialisations
become Keras initialisers (`initialization`). Keras layers and ops only, so the networks run on every Keras backend.
Layout NHWC; layer names equal those of the torch file, which adds the explicit paddings and crops of its ports.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from keras_impl.dcgan import DCGAN, _SavedWithConfig
from specs.models import PublishedConfig, batch_norm_settings, tf_same_crop

# ------------------------------------------------------------------------------------------------------ Layers


def batch_norm(name: str, config: PublishedConfig) -> layers.BatchNormalization:
    """BatchNormalization with the configuration's momentum and epsilon (over the last axis: channels, or the
    features of a Dense); with bn_positional_epsilon, what PyTorch-GAN's BatchNorm1d(n, 0.8) builds; gamma drawn as
    the original draws it."""
    momentum, epsilon = batch_norm_settings(config)
    gamma = keras.initializers.RandomNormal(1.0, config.bn_gamma_std) if config.bn_gamma_std else "ones"
    return layers.BatchNormalization(momentum=momentum, epsilon=epsilon, gamma_initializer=gamma, name=name)


def leaky(slope: float, name: str) -> layers.LeakyReLU:
    return layers.LeakyReLU(slope, name=name)


def initialization(config: PublishedConfig, fan_in: int) -> dict:
    """The kernel and bias initialisers of a layer whose torch twin's weight has `fan_in` inputs per output (a
    transposed conv: its out_channels * k * k, as torch counts it, and as Keras counts its kernel (k, k, out, in)).
    "normal": N(0, init_std) and zeros; "torch": torch's Kaiming-uniform with a = sqrt(5), U(+-1 / sqrt(fan_in)),
    for kernels and biases alike; "glorot": Keras's defaults."""
    if config.init == "normal":
        kernel = keras.initializers.RandomNormal(0.0, config.init_std)
        return {"kernel_initializer": kernel, "bias_initializer": "zeros"}
    if config.init == "torch":
        bound = 1 / math.sqrt(fan_in)
        return {"kernel_initializer": keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"),
                "bias_initializer": keras.initializers.RandomUniform(-bound, bound)}
    return {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}


def _torch_transposed(name: str, filters: int, kernel: int, stride: int, padding: int, config: PublishedConfig,
                     use_bias: bool = True) -> list:
    """torch's ConvTranspose2d(..., kernel, stride, padding): padding crops `padding` rows and columns from each
    border of the full output. "same" when that is what "same" crops (k4 s2 p1), else "valid" and a Cropping2D."""
    same = tf_same_crop(kernel, stride) == (padding, padding)
    conv = layers.Conv2DTranspose(filters, kernel, strides=stride, padding="same" if same else "valid",
                                  use_bias=use_bias, name=name, **initialization(config, filters * kernel * kernel))
    return [conv] if same or not padding else [conv, layers.Cropping2D(padding, name=f"{name}_crop")]


class Network(_SavedWithConfig, keras.Sequential):
    """A network of named layers, saved as a whole model (generator.keras) with its configuration."""

    def __init__(self, stack: list, config: PublishedConfig, name: str, **kwargs):
        super().__init__(stack, name=name, **kwargs)
        self.config = config


# --------------------------------------------------------------------------- Networks: pytorch/examples DCGAN


@keras.saving.register_keras_serializable(package="gan_parity")
class ExamplesGenerator(Network):
    """netG: z (N, nz) -> image (N, 64, 64, nc); ngf = width. Transposed convs without bias, BatchNorm, ReLU."""

    def __init__(self, config: PublishedConfig, name: str = "generator", **kwargs):
        ngf = config.width
        stack = [keras.Input((config.latent_dim,)), layers.Reshape((1, 1, config.latent_dim), name="reshape")]
        for i, width in enumerate((ngf * 8, ngf * 4, ngf * 2, ngf), start=1):
            stride, padding = (1, 0) if i == 1 else (2, 1)
            stack += _torch_transposed(f"conv{i}", width, 4, stride, padding, config, use_bias=False)
            stack += [batch_norm(f"bn{i}", config), layers.ReLU(name=f"relu{i}")]
            # (N, 4 * 2 ** (i - 1), 4 * 2 ** (i - 1), width): 4, 8, 16, 32
        stack += _torch_transposed("conv5", config.channels, 4, 2, 1, config, use_bias=False)
        stack += [layers.Activation("tanh", name="tanh")]
        super().__init__(stack, config, name, **kwargs)  # (N, 64, 64, nc)


@keras.saving.register_keras_serializable(package="gan_parity")
class ExamplesDiscriminator(Network):
    """netD: image (N, 64, 64, nc) -> logit (N, 1); ndf = width. Its nn.Sigmoid is the loss's (BCE from logits)."""

    def __init__(self, config: PublishedConfig, name: str = "discriminator", **kwargs):
        ndf = config.width
        stack = [keras.Input((config.image_size, config.image_size, config.channels))]
        in_channels = config.channels
        for i, width in enumerate((ndf, ndf * 2, ndf * 4, ndf * 8), start=1):
            stack += [layers.Conv2D(width, 4, strides=2, padding="same", use_bias=False, name=f"conv{i}",
                                    **initialization(config, in_channels * 4 * 4))]  # halves H, W: torch's padding=1
            stack += [batch_norm(f"bn{i}", config)] if i > 1 else []
            stack += [leaky(config.leaky_slope, f"lrelu{i}")]
            in_channels = width  # (N, 64 / 2 ** i, 64 / 2 ** i, width): 32, 16, 8, 4
        stack += [layers.Conv2D(1, 4, strides=1, padding="valid", use_bias=False, name="conv5",
                                **initialization(config, ndf * 8 * 4 * 4)), layers.Flatten(name="flatten")]  # (N, 1)
        super().__init__(stack, config, name, **kwargs)


# ---------------------------------------------------------------------------- Networks: PyTorch-GAN MLP GAN


@keras.saving.register_keras_serializable(package="gan_parity")
class MLPGenerator(Network):
    """z (N, latent_dim) -> image (N, S, S, C): Dense 128, then Dense -> BatchNormalization -> LeakyReLU blocks of
    256, 512 and 1024 (width 128), Dense to S * S * C, tanh, Reshape to (S, S, C)."""

    def __init__(self, config: PublishedConfig, name: str = "generator", **kwargs):
        widths = (config.width, config.width * 2, config.width * 4, config.width * 8)
        stack = [keras.Input((config.latent_dim,))]
        in_features = config.latent_dim
        for i, width in enumerate(widths, start=1):
            stack += [layers.Dense(width, name=f"fc{i}", **initialization(config, in_features))]
            stack += [batch_norm(f"bn{i}", config)] if i > 1 else []  # block(..., normalize)
            stack += [leaky(config.leaky_slope, f"lrelu{i}")]
            in_features = width  # (N, width)
        size, channels = config.image_size, config.channels
        stack += [layers.Dense(size * size * channels, name="fc5", **initialization(config, in_features))]
        stack += [layers.Activation("tanh", name="tanh"), layers.Reshape((size, size, channels), name="reshape")]
        super().__init__(stack, config, name, **kwargs)  # (N, S, S, C)


@keras.saving.register_keras_serializable(package="gan_parity")
class MLPDiscriminator(Network):
    """Image (N, S, S, C) -> logit (N, 1): Flatten, Dense 512, LeakyReLU, Dense 256, LeakyReLU, Dense 1."""

    def __init__(self, config: PublishedConfig, name: str = "discriminator", **kwargs):
        features = config.channels * config.image_size**2
        stack = [keras.Input((config.image_size, config.image_size, config.channels)), layers.Flatten(name="flatten")]
        for i, width in enumerate((config.width * 4, config.width * 2), start=1):
            stack += [layers.Dense(width, name=f"fc{i}", **initialization(config, features))]
            stack += [leaky(config.leaky_slope, f"lrelu{i}")]
            features = width  # (N, width)
        stack += [layers.Dense(1, name="fc3", **initialization(config, features))]  # (N, 1); its sigmoid is the loss's
        super().__init__(stack, config, name, **kwargs)


# --------------------------------------------------------------------------- Networks: Udacity face generator


@keras.saving.register_keras_serializable(package="gan_parity")
class Face32Generator(Network):
    """z (N, z_size) -> image (N, 32, 32, 3); conv_dim = width. Dense to (4, 4, conv_dim * 10), then transposed
    convs (4 -> 7 -> 14 -> 28 -> 31 -> 32), each but the last with BatchNorm and its own LeakyReLU slope. torch's
    last one pads 1: "valid" here, then Cropping2D(1) (34 -> 32)."""

    def __init__(self, config: PublishedConfig, name: str = "generator", **kwargs):
        dim = config.width
        stack = [keras.Input((config.latent_dim,))]
        stack += [layers.Dense(dim * 4 * 4 * 10, name="fc", **initialization(config, config.latent_dim))]
        stack += [layers.Reshape((4, 4, dim * 10), name="reshape")]  # out.view(bs, conv_dim * 10, 4, 4)
        shapes = ((dim * 8, 1, 0), (dim * 4, 2, 1), (dim * 2, 2, 1), (dim, 1, 0))
        for i, ((width, stride, padding), slope) in enumerate(zip(shapes, config.slopes(4)), start=1):
            stack += _torch_transposed(f"t_conv{i}", width, 4, stride, padding, config, use_bias=False)
            stack += [batch_norm(f"bn{i}", config), leaky(slope, f"lrelu{i}")]  # 7, 14, 28, 31
        stack += _torch_transposed("t_conv5", config.channels, 4, 1, 1, config, use_bias=False)  # 31 -> 34 -> 32
        stack += [layers.Activation("tanh", name="tanh")]  # (N, 32, 32, 3)
        super().__init__(stack, config, name, **kwargs)


@keras.saving.register_keras_serializable(package="gan_parity")
class Face32Discriminator(Network):
    """Image (N, 32, 32, 3) -> logit (N, 1); conv_dim = width. Four k4 s2 convs and a k2 s1 one to (1, 1, 512), no
    bias, BatchNorm after all but the first, LeakyReLU 0.2; flatten, Dropout, Dense(1)."""

    def __init__(self, config: PublishedConfig, name: str = "discriminator", **kwargs):
        dim = config.width
        stack = [keras.Input((config.image_size, config.image_size, config.channels))]
        in_channels = config.channels
        for i, width in enumerate((dim, dim * 2, dim * 4, dim * 8, dim * 16), start=1):
            kernel, stride, padding = (2, 1, "valid") if i == 5 else (4, 2, "same")  # torch's padding 0 and 1
            stack += [layers.Conv2D(width, kernel, strides=stride, padding=padding, use_bias=False, name=f"conv{i}",
                                    **initialization(config, in_channels * kernel * kernel))]
            stack += [batch_norm(f"bn{i}", config)] if i > 1 else []
            stack += [leaky(config.leaky_slope, f"lrelu{i}")]
            in_channels = width  # (N, 16, 16, width), 8, 4, 2, then (N, 1, 1, 512)
        stack += [layers.Flatten(name="flatten"), layers.Dropout(config.dropout, name="drop")]  # (N, 512)
        stack += [layers.Dense(1, name="fc", **initialization(config, dim * 16))]  # (N, 1)
        super().__init__(stack, config, name, **kwargs)


# ------------------------------------------------------------------------------- Networks: TF1 SVHN DCGAN


@keras.saving.register_keras_serializable(package="gan_parity")
class SVHNGenerator(Network):
    """generator(z): dense to 4 * 4 * 512 (width 64), reshape, BN, ReLU; k5 s2 "same" transposed convs to 256, 128
    (BN, ReLU) and to the image, tanh: (N, 32, 32, 3). tf.layers are Keras layers: the tutorial's code, layer by
    layer."""

    def __init__(self, config: PublishedConfig, name: str = "generator", **kwargs):
        widths = (config.width * 8, config.width * 4, config.width * 2)
        stack = [keras.Input((config.latent_dim,))]
        stack += [layers.Dense(widths[0] * 4 * 4, name="fc1", **initialization(config, config.latent_dim))]
        stack += [layers.Reshape((4, 4, widths[0]), name="reshape")]  # (N, 4, 4, 512)
        stack += [batch_norm("fc1_bn", config), layers.ReLU(name="fc1_relu")]
        for i, width in enumerate(widths[1:], start=1):
            stack += [layers.Conv2DTranspose(width, 5, strides=2, padding="same", name=f"t_conv{i}",
                                             **initialization(config, width * 5 * 5))]  # doubles H, W: 8, 16
            stack += [batch_norm(f"t_conv{i}_bn", config), layers.ReLU(name=f"t_conv{i}_relu")]
        stack += [layers.Conv2DTranspose(config.channels, 5, strides=2, padding="same", name="logits",
                                         **initialization(config, config.channels * 5 * 5))]  # (N, 32, 32, 3)
        stack += [layers.Activation("tanh", name="out")]
        super().__init__(stack, config, name, **kwargs)


@keras.saving.register_keras_serializable(package="gan_parity")
class SVHNDiscriminator(Network):
    """discriminator(x): k5 s2 "same" convs to 64 (LeakyReLU 0.2, tf.maximum(alpha * x, x)), 128 and 256 (BN,
    LeakyReLU), flatten the (4, 4, 256), dense to the logit (N, 1)."""

    def __init__(self, config: PublishedConfig, name: str = "discriminator", **kwargs):
        stack = [keras.Input((config.image_size, config.image_size, config.channels))]
        in_channels, size = config.channels, config.image_size
        for i, width in enumerate((config.width, config.width * 2, config.width * 4), start=1):
            stack += [layers.Conv2D(width, 5, strides=2, padding="same", name=f"conv{i}",
                                    **initialization(config, in_channels * 5 * 5))]  # halves H, W: 16, 8, 4
            stack += [batch_norm(f"conv{i}_bn", config)] if i > 1 else []
            stack += [leaky(config.leaky_slope, f"conv{i}_lrelu")]
            in_channels, size = width, size // 2
        stack += [layers.Flatten(name="flat")]  # (N, 4 * 4 * 256)
        stack += [layers.Dense(1, name="logits", **initialization(config, in_channels * size * size))]  # (N, 1)
        super().__init__(stack, config, name, **kwargs)


# ---------------------------------------------------------------------------- Networks: Keras CelebA DCGAN


@keras.saving.register_keras_serializable(package="gan_parity")
class CelebAGenerator(Network):
    """build_generator: Dense to 4 * 4 * (8 * start_filters), BatchNormalization, Reshape; four k5 s2 "same"
    transposed-conv blocks (4, 2, 1, 1 times start_filters; BN, LeakyReLU); a k5 conv to 3 channels, tanh (the
    post's Conv2D(..., activation='tanh'), its activation written as a layer of its own, as torch writes it)."""

    def __init__(self, config: PublishedConfig, name: str = "generator", **kwargs):
        start = config.width
        stack = [keras.Input((config.latent_dim,))]
        stack += [layers.Dense(start * 8 * 4 * 4, name="dense", **initialization(config, config.latent_dim))]
        stack += [batch_norm("dense_bn", config), layers.Reshape((4, 4, start * 8), name="reshape")]
        for i, width in enumerate((start * 4, start * 2, start, start), start=1):
            stack += [layers.Conv2DTranspose(width, 5, strides=2, padding="same", name=f"deconv{i}",
                                             **initialization(config, width * 5 * 5))]  # doubles H, W: 8, ..., 64
            stack += [batch_norm(f"deconv{i}_bn", config), leaky(config.leaky_slope, f"deconv{i}_lrelu")]
        stack += [layers.Conv2D(config.channels, 5, padding="same", name="conv",
                                **initialization(config, start * 5 * 5))]
        stack += [layers.Activation("tanh", name="tanh")]  # (N, 64, 64, 3)
        super().__init__(stack, config, name, **kwargs)


@keras.saving.register_keras_serializable(package="gan_parity")
class CelebADiscriminator(Network):
    """build_discriminator: four blocks of k5 conv -> BN -> k5 stride-2 conv -> BN -> LeakyReLU (start_filters 16,
    32, 64, 128), global average pooling, Dense(1) (its sigmoid is the loss's): logit (N, 1). The pooling keeps its
    (1, 1) axes and a Flatten drops them, as torch's AdaptiveAvgPool2d(1) and Flatten do."""

    def __init__(self, config: PublishedConfig, name: str = "discriminator", **kwargs):
        start = config.width
        stack = [keras.Input((config.image_size, config.image_size, config.channels))]
        in_channels = config.channels
        for i, width in enumerate((start, start * 2, start * 4, start * 8), start=1):
            stack += [layers.Conv2D(width, 5, padding="same", name=f"conv{i}a",
                                    **initialization(config, in_channels * 5 * 5)), batch_norm(f"bn{i}a", config)]
            stack += [layers.Conv2D(width, 5, strides=2, padding="same", name=f"conv{i}b",
                                    **initialization(config, width * 5 * 5))]  # halves H, W: 32, 16, 8, 4
            stack += [batch_norm(f"bn{i}b", config), leaky(config.leaky_slope, f"lrelu{i}")]
            in_channels = width
        stack += [layers.GlobalAveragePooling2D(keepdims=True, name="pool"), layers.Flatten(name="flatten")]
        stack += [layers.Dense(1, name="dense", **initialization(config, in_channels))]  # (N, 1)
        super().__init__(stack, config, name, **kwargs)


# ------------------------------------------------------------------------------------------------------ Trainer

NETWORKS = {
    "pytorch-examples": (ExamplesGenerator, ExamplesDiscriminator),
    "pytorch-gan-mlp": (MLPGenerator, MLPDiscriminator),
    "face32": (Face32Generator, Face32Discriminator),
    "svhn-tf1": (SVHNGenerator, SVHNDiscriminator),
    "celeba-keras": (CelebAGenerator, CelebADiscriminator),
}


class PublishedDCGAN(DCGAN):
    """The DCGAN trainer (keras_impl/dcgan.py: losses, label targets, both update orders) on the networks of the
    configuration's architecture."""

    def build_networks(self, config: PublishedConfig) -> tuple[keras.Model, keras.Model]:
        generator, discriminator = NETWORKS[config.architecture]
        return generator(config), discriminator(config)
