"""Five published GANs in PyTorch: the networks of the GANs people port, trained by the DCGAN trainer (mirror:
keras_impl/published.py).

Each section below holds one original's generator and discriminator, with its layer names (or clear equivalents),
its initialisation and its framework's BatchNorm settings (specs/models.py ARCHITECTURES, PUBLISHED_PRESETS):
  pytorch-examples  pytorch/examples' DCGAN (torch, 64x64): transposed convs k4, BatchNorm, ReLU; N(0, 0.02)
  pytorch-gan-mlp   PyTorch-GAN's vanilla GAN (torch, 28x28): Linear blocks with BatchNorm1d(n, 0.8)
  face32            the Udacity course's face generator (torch, 32x32): Linear -> (320, 4, 4), padded convTs
  svhn-tf1          the TensorFlow 1 SVHN DCGAN (TensorFlow, 32x32): k5 s2 "same" convs, Dense <-> (H, W, C)
  celeba-keras      the Keras CelebA DCGAN (Keras, 64x64): Conv -> BN -> stride-2 Conv -> BN, global pooling
Every original ends its discriminator in a sigmoid; here it returns the logit, and the trainer takes BCE from
logits (the same loss, computed stably). For svhn-tf1 and celeba-keras this file is the port: TensorFlow's "same"
padding is written out (`_same_conv`, `_same_transposed`: the odd pixel goes after), and the Dense that TensorFlow
reshapes to (H, W, C) is reshaped to (C, H, W) here, its weights permuted by the converter (parity/convert.py).
Layout NCHW; layer names equal those of the Keras file, plus the explicit paddings and crops of the ports.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from specs.models import (
    PublishedConfig,
    batch_norm_settings,
    tf_same_crop,
    tf_same_padding,
    torch_bn_momentum,
    torch_leaky_slope,
)
from torch_impl.dcgan import DCGAN
from torch_impl.loop import keras_default_init

Layers = list[tuple[str, nn.Module]]

# ------------------------------------------------------------------------------------------------------ Layers


def batch_norm(features: int, config: PublishedConfig, dims: int = 2) -> nn.Module:
    """BatchNorm2d (or BatchNorm1d over features) with the configuration's momentum and epsilon; with
    bn_positional_epsilon, PyTorch-GAN's BatchNorm1d(n, 0.8) as published (specs.models.batch_norm_settings)."""
    momentum, epsilon = batch_norm_settings(config)
    kind = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return kind(features, eps=epsilon, momentum=torch_bn_momentum(momentum))


def leaky(slope: float) -> nn.LeakyReLU:
    return nn.LeakyReLU(torch_leaky_slope(slope))


def _same_conv(name: str, in_channels: int, out_channels: int, kernel: int, stride: int, size: int,
              bias: bool = True) -> Layers:
    """TensorFlow's padding="same" conv on `size` pixels: torch's padding when it is symmetric, else an explicit
    ZeroPad2d (k5 s2 on an even size pads 1 before and 2 after; torch's padding=2 would pad 2 and 2)."""
    before, after = tf_same_padding(size, kernel, stride)
    if before == after:
        return [(name, nn.Conv2d(in_channels, out_channels, kernel, stride, before, bias=bias))]
    pad = nn.ZeroPad2d((before, after, before, after))  # (left, right, top, bottom)
    return [(f"{name}_pad", pad), (name, nn.Conv2d(in_channels, out_channels, kernel, stride, 0, bias=bias))]


def _same_transposed(name: str, in_channels: int, out_channels: int, kernel: int, stride: int,
                    bias: bool = True) -> Layers:
    """TensorFlow's padding="same" transposed conv: torch's padding crops the same rows on both sides, so the rest
    of an uneven crop is a ZeroPad2d of negative padding (k5 s2 crops 1 before and 2 after: padding=1, then 1)."""
    before, after = tf_same_crop(kernel, stride)
    common = min(before, after)
    layers = [(name, nn.ConvTranspose2d(in_channels, out_channels, kernel, stride, common, bias=bias))]
    if before != after:
        top, bottom = before - common, after - common
        layers.append((f"{name}_crop", nn.ZeroPad2d((-top, -bottom, -top, -bottom))))  # negative: crops
    return layers


def initialization(network: nn.Module, config: PublishedConfig) -> None:
    """The original's initialisation. "normal": conv, transposed-conv and Linear weights N(0, init_std), biases 0,
    BatchNorm weight N(1, bn_gamma_std) (or 1) and bias 0 (pytorch/examples' weights_init, the course's
    weights_init_normal, TensorFlow's random_normal_initializer); "glorot": Keras's defaults; "torch": as torch's
    layers initialise themselves (Kaiming-uniform with a = sqrt(5): U(+-1 / sqrt(fan_in)), biases alike)."""
    for module in network.modules():
        if config.init == "glorot":
            keras_default_init(module)
        elif config.init == "normal" and isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(module.weight, 0.0, config.init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif config.init == "normal" and isinstance(module, nn.modules.batchnorm._BatchNorm):
            if config.bn_gamma_std:
                nn.init.normal_(module.weight, 1.0, config.bn_gamma_std)
            nn.init.zeros_(module.bias)


class Network(nn.Sequential):
    """A network of named layers, initialised as its original initialises it."""

    def __init__(self, layers: Layers, config: PublishedConfig):
        super().__init__(OrderedDict(layers))
        initialization(self, config)


# --------------------------------------------------------------------------- Networks: pytorch/examples DCGAN


class ExamplesGenerator(Network):
    """netG: z (N, nz) -> image (N, nc, 64, 64); ngf = width. Transposed convs without bias, BatchNorm, ReLU."""

    def __init__(self, config: PublishedConfig):
        ngf = config.width
        layers: Layers = [("reshape", nn.Unflatten(1, (config.latent_dim, 1, 1)))]  # input is Z, into a convolution
        in_channels = config.latent_dim
        for i, width in enumerate((ngf * 8, ngf * 4, ngf * 2, ngf), start=1):
            stride, padding = (1, 0) if i == 1 else (2, 1)
            layers += [(f"conv{i}", nn.ConvTranspose2d(in_channels, width, 4, stride, padding, bias=False))]
            layers += [(f"bn{i}", batch_norm(width, config)), (f"relu{i}", nn.ReLU())]
            in_channels = width  # (N, width, 4 * 2 ** (i - 1), 4 * 2 ** (i - 1)): 4, 8, 16, 32
        layers += [("conv5", nn.ConvTranspose2d(ngf, config.channels, 4, 2, 1, bias=False)), ("tanh", nn.Tanh())]
        super().__init__(layers, config)  # (N, nc, 64, 64)


class ExamplesDiscriminator(Network):
    """netD: image (N, nc, 64, 64) -> logit (N, 1); ndf = width. Its nn.Sigmoid is the loss's (BCE from logits)."""

    def __init__(self, config: PublishedConfig):
        ndf = config.width
        layers: Layers = []
        in_channels = config.channels
        for i, width in enumerate((ndf, ndf * 2, ndf * 4, ndf * 8), start=1):
            layers += [(f"conv{i}", nn.Conv2d(in_channels, width, 4, 2, 1, bias=False))]  # halves H, W
            layers += [(f"bn{i}", batch_norm(width, config))] if i > 1 else []
            layers += [(f"lrelu{i}", leaky(config.leaky_slope))]
            in_channels = width  # (N, width, 64 / 2 ** i, 64 / 2 ** i): 32, 16, 8, 4
        layers += [("conv5", nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False)), ("flatten", nn.Flatten())]  # (N, 1)
        super().__init__(layers, config)


# ---------------------------------------------------------------------------- Networks: PyTorch-GAN MLP GAN


class MLPGenerator(Network):
    """z (N, latent_dim) -> image (N, C, S, S): Linear 128, then Linear -> BatchNorm1d -> LeakyReLU blocks of 256,
    512 and 1024 (width 128), Linear to C * S * S, Tanh, img.view(N, C, S, S)."""

    def __init__(self, config: PublishedConfig):
        widths = (config.width, config.width * 2, config.width * 4, config.width * 8)
        layers: Layers = []
        in_features = config.latent_dim
        for i, width in enumerate(widths, start=1):
            layers += [(f"fc{i}", nn.Linear(in_features, width))]
            layers += [(f"bn{i}", batch_norm(width, config, dims=1))] if i > 1 else []  # block(..., normalize)
            layers += [(f"lrelu{i}", leaky(config.leaky_slope))]
            in_features = width  # (N, width)
        size, channels = config.image_size, config.channels
        layers += [("fc5", nn.Linear(in_features, channels * size * size)), ("tanh", nn.Tanh())]
        layers += [("reshape", nn.Unflatten(1, (channels, size, size)))]  # (N, C, S, S)
        super().__init__(layers, config)


class MLPDiscriminator(Network):
    """Image (N, C, S, S) -> logit (N, 1): img.view(N, -1), Linear 512, LeakyReLU, Linear 256, LeakyReLU, Linear 1."""

    def __init__(self, config: PublishedConfig):
        features = config.channels * config.image_size**2
        layers: Layers = [("flatten", nn.Flatten())]  # (N, C * S * S)
        for i, width in enumerate((config.width * 4, config.width * 2), start=1):
            layers += [(f"fc{i}", nn.Linear(features, width)), (f"lrelu{i}", leaky(config.leaky_slope))]
            features = width  # (N, width)
        layers += [("fc3", nn.Linear(features, 1))]  # (N, 1); its nn.Sigmoid is the loss's
        super().__init__(layers, config)


# --------------------------------------------------------------------------- Networks: Udacity face generator


class Face32Generator(Network):
    """z (N, z_size) -> image (N, 3, 32, 32); conv_dim = width. fc to (conv_dim * 10, 4, 4), then transposed convs
    (4 -> 7 -> 14 -> 28 -> 31 -> 32), each but the last with BatchNorm and its own LeakyReLU slope."""

    def __init__(self, config: PublishedConfig):
        dim = config.width
        layers: Layers = [("fc", nn.Linear(config.latent_dim, dim * 4 * 4 * 10))]
        layers += [("reshape", nn.Unflatten(1, (dim * 10, 4, 4)))]  # out.view(bs, conv_dim * 10, 4, 4)
        shapes = ((dim * 10, dim * 8, 1, 0), (dim * 8, dim * 4, 2, 1), (dim * 4, dim * 2, 2, 1), (dim * 2, dim, 1, 0))
        for i, ((in_channels, width, stride, padding), slope) in enumerate(zip(shapes, config.slopes(4)), start=1):
            layers += [(f"t_conv{i}", nn.ConvTranspose2d(in_channels, width, 4, stride, padding, bias=False))]
            layers += [(f"bn{i}", batch_norm(width, config)), (f"lrelu{i}", leaky(slope))]  # 7, 14, 28, 31
        layers += [("t_conv5", nn.ConvTranspose2d(dim, config.channels, 4, 1, 1, bias=False))]  # 31 -> 32: crops 1
        layers += [("tanh", nn.Tanh())]  # (N, 3, 32, 32)
        super().__init__(layers, config)


class Face32Discriminator(Network):
    """Image (N, 3, 32, 32) -> logit (N, 1); conv_dim = width. Four k4 s2 convs and a k2 s1 one to (512, 1, 1), no
    bias, BatchNorm after all but the first, LeakyReLU 0.2; flatten, Dropout, Linear(512, 1)."""

    def __init__(self, config: PublishedConfig):
        dim = config.width
        layers: Layers = []
        in_channels = config.channels
        for i, width in enumerate((dim, dim * 2, dim * 4, dim * 8, dim * 16), start=1):
            kernel, stride, padding = (2, 1, 0) if i == 5 else (4, 2, 1)
            layers += [(f"conv{i}", nn.Conv2d(in_channels, width, kernel, stride, padding, bias=False))]
            layers += [(f"bn{i}", batch_norm(width, config))] if i > 1 else []
            layers += [(f"lrelu{i}", leaky(config.leaky_slope))]
            in_channels = width  # (N, width, 16, 16), 8, 4, 2, then (N, 512, 1, 1)
        layers += [("flatten", nn.Flatten()), ("drop", nn.Dropout(config.dropout))]  # (N, 512)
        layers += [("fc", nn.Linear(dim * 16, 1))]  # (N, 1)
        super().__init__(layers, config)


# ------------------------------------------------------------------------------- Networks: TF1 SVHN DCGAN


class SVHNGenerator(Network):
    """generator(z): dense to 4 * 4 * 512 (width 64), reshape, BN, ReLU; k5 s2 "same" transposed convs to 256, 128
    (BN, ReLU) and to the image, tanh: (N, 3, 32, 32). TensorFlow reshapes to (4, 4, 512), torch to (512, 4, 4)."""

    def __init__(self, config: PublishedConfig):
        widths = (config.width * 8, config.width * 4, config.width * 2)
        layers: Layers = [("fc1", nn.Linear(config.latent_dim, widths[0] * 4 * 4))]
        layers += [("reshape", nn.Unflatten(1, (widths[0], 4, 4)))]  # (N, 512, 4, 4)
        layers += [("fc1_bn", batch_norm(widths[0], config)), ("fc1_relu", nn.ReLU())]
        for i, (in_channels, width) in enumerate(zip(widths, widths[1:]), start=1):
            layers += _same_transposed(f"t_conv{i}", in_channels, width, 5, 2)  # doubles H, W: 8, 16
            layers += [(f"t_conv{i}_bn", batch_norm(width, config)), (f"t_conv{i}_relu", nn.ReLU())]
        layers += _same_transposed("logits", widths[-1], config.channels, 5, 2)  # (N, 3, 32, 32)
        layers += [("out", nn.Tanh())]
        super().__init__(layers, config)


class SVHNDiscriminator(Network):
    """discriminator(x): k5 s2 "same" convs to 64 (LeakyReLU 0.2), 128 and 256 (BN, LeakyReLU), flatten the
    (256, 4, 4), dense to the logit (N, 1). TensorFlow pads 1 before and 2 after: an explicit ZeroPad2d here."""

    def __init__(self, config: PublishedConfig):
        layers: Layers = []
        in_channels, size = config.channels, config.image_size
        for i, width in enumerate((config.width, config.width * 2, config.width * 4), start=1):
            layers += _same_conv(f"conv{i}", in_channels, width, 5, 2, size)  # halves H, W: 16, 8, 4
            layers += [(f"conv{i}_bn", batch_norm(width, config))] if i > 1 else []
            layers += [(f"conv{i}_lrelu", leaky(config.leaky_slope))]
            in_channels, size = width, size // 2
        layers += [("flat", nn.Flatten()), ("logits", nn.Linear(in_channels * size * size, 1))]  # (N, 1)
        super().__init__(layers, config)


# ---------------------------------------------------------------------------- Networks: Keras CelebA DCGAN


class CelebAGenerator(Network):
    """build_generator: Dense to 4 * 4 * (8 * start_filters), BatchNormalization, Reshape; four k5 s2 "same"
    transposed-conv blocks (4, 2, 1, 1 times start_filters; BN, LeakyReLU); a k5 conv to 3 channels, tanh.
    The BatchNorm normalises the flat features, before the reshape: its weights are permuted with the Dense's."""

    def __init__(self, config: PublishedConfig):
        start = config.width
        features = start * 8 * 4 * 4
        layers: Layers = [("dense", nn.Linear(config.latent_dim, features))]
        layers += [("dense_bn", batch_norm(features, config, dims=1)), ("reshape", nn.Unflatten(1, (start * 8, 4, 4)))]
        in_channels = start * 8
        for i, width in enumerate((start * 4, start * 2, start, start), start=1):
            layers += _same_transposed(f"deconv{i}", in_channels, width, 5, 2)  # doubles H, W: 8, 16, 32, 64
            layers += [(f"deconv{i}_bn", batch_norm(width, config)), (f"deconv{i}_lrelu", leaky(config.leaky_slope))]
            in_channels = width
        layers += _same_conv("conv", in_channels, config.channels, 5, 1, config.image_size)
        layers += [("tanh", nn.Tanh())]  # (N, 3, 64, 64)
        super().__init__(layers, config)


class CelebADiscriminator(Network):
    """build_discriminator: four blocks of k5 conv -> BN -> k5 stride-2 conv -> BN -> LeakyReLU (start_filters 16,
    32, 64, 128), global average pooling, Dense(1) (its sigmoid is the loss's): logit (N, 1)."""

    def __init__(self, config: PublishedConfig):
        start = config.width
        layers: Layers = []
        in_channels, size = config.channels, config.image_size
        for i, width in enumerate((start, start * 2, start * 4, start * 8), start=1):
            layers += _same_conv(f"conv{i}a", in_channels, width, 5, 1, size)
            layers += [(f"bn{i}a", batch_norm(width, config))]
            layers += _same_conv(f"conv{i}b", width, width, 5, 2, size)  # halves H, W: 32, 16, 8, 4
            layers += [(f"bn{i}b", batch_norm(width, config)), (f"lrelu{i}", leaky(config.leaky_slope))]
            in_channels, size = width, size // 2
        layers += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]  # (N, 128)
        layers += [("dense", nn.Linear(in_channels, 1))]  # (N, 1)
        super().__init__(layers, config)


# ------------------------------------------------------------------------------------------------------ Trainer

NETWORKS = {
    "pytorch-examples": (ExamplesGenerator, ExamplesDiscriminator),
    "pytorch-gan-mlp": (MLPGenerator, MLPDiscriminator),
    "face32": (Face32Generator, Face32Discriminator),
    "svhn-tf1": (SVHNGenerator, SVHNDiscriminator),
    "celeba-keras": (CelebAGenerator, CelebADiscriminator),
}


class PublishedDCGAN(DCGAN):
    """The DCGAN trainer (torch_impl/dcgan.py: losses, label targets, both update orders) on the networks of the
    configuration's architecture."""

    def build_networks(self, config: PublishedConfig) -> tuple[nn.Module, nn.Module]:
        generator, discriminator = NETWORKS[config.architecture]
        return generator(config), discriminator(config)
