"""Model configurations shared by torch_impl and keras_impl: every hyperparameter lives here.

One frozen dataclass per model, a comment on every field. Values that the two frameworks spell differently
(BatchNorm momentum, epsilons, LeakyReLU slope) are stored once, in one stated meaning, and converted by the
helpers at the bottom, so no model file carries a hyperparameter literal.
Presets: `book` is exactly chapter 4 of Generative Deep Learning (2nd ed.); `digits` is the same family at 32x32
for the offline default data set. The `published` model's presets are five GANs as their authors published them
(ARCHITECTURES below), each on its own networks (torch_impl/published.py, keras_impl/published.py).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

UPDATE_ORDERS = ("simultaneous", "alternating")
MAX_CRITIC_STEPS = 100  # the paper takes 5; the book 3
ALPHA_DISTRIBUTIONS = ("uniform", "normal")
LATENT_DISTRIBUTIONS = ("normal", "uniform")
D_LOSS_REDUCTIONS = ("mean", "sum")
INITIALIZATIONS = ("normal", "torch", "glorot")


class ConfigError(ValueError):
    """A configuration that cannot be built; the message says which field and why."""


@dataclass(frozen=True)
class GANConfig:
    """What every model of the family shares: image, networks, optimiser, normalisation."""

    image_size: int = 32  # side of the square images: a power of two, at least 16 (published: the original's)
    channels: int = 1  # 1 grayscale, 3 RGB
    latent_dim: int = 100  # size of z ~ N(0, 1)
    width: int = 64  # filters of the first discriminator conv; doubles with every stride-2 block
    max_width: int = 0  # cap on the filters of any conv (0: no cap); the book's CGAN stays at 128
    batch_size: int = 64  # images per train step: the global batch, split evenly over processes or replicas
    epochs: int = 20  # passes over the data set
    learning_rate: float = 2e-4  # Adam, both networks
    beta_1: float = 0.5  # Adam first-moment decay
    beta_2: float = 0.999  # Adam second-moment decay
    adam_epsilon: float = 1e-7  # Keras's default, which the book trains with; passed explicitly to both sides
    bn_momentum: float = 0.9  # Keras meaning: moving = m * moving + (1 - m) * batch (torch momentum = 1 - m)
    bn_epsilon: float = 1e-3  # Keras's default, which the book trains with (torch's default would be 1e-5)
    leaky_slope: float = 0.2  # LeakyReLU negative slope
    dropout: float = 0.3  # discriminator / critic dropout rate
    output_bias: bool = False  # whether the generator's last convT has a bias

    def __post_init__(self) -> None:
        self.check_image_size()
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout}")
        for name in ("latent_dim", "width", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        check_numbers(self)

    def check_image_size(self) -> None:
        """The sizes these networks take (each model its own): stride-2 blocks from 4x4, so a power of two >= 16."""
        blocks = math.log2(self.image_size) if self.image_size > 0 else 0
        if self.image_size < 16 or blocks != int(blocks):
            raise ConfigError(f"image_size must be a power of two of at least 16, got {self.image_size}")

    @property
    def num_blocks(self) -> int:
        """Stride-2 blocks between the image and the 4x4 seed: 4 at 64x64, 3 at 32x32, 2 at 16x16."""
        return int(math.log2(self.image_size)) - 2

    def discriminator_widths(self) -> tuple[int, ...]:
        """Filters of the stride-2 discriminator convs: (64, 128, 256, 512) at 64x64 and width 64."""
        widths = (self.width * 2**i for i in range(self.num_blocks))
        return tuple(min(width, self.max_width) if self.max_width else width for width in widths)

    def generator_widths(self) -> tuple[int, ...]:
        """Filters of the hidden generator convTs, the discriminator's in reverse: (512, 256, 128, 64) at 64x64."""
        return tuple(reversed(self.discriminator_widths()))

    @property
    def conditional(self) -> bool:
        """Whether the model is told a class: batches then carry one-hot labels."""
        return False

    @property
    def generator_input_dim(self) -> int:
        """Size of the generator's input vector: z, and a one-hot label for conditional models."""
        return self.latent_dim

    @property
    def critic_input_channels(self) -> int:
        """Channels the discriminator or critic sees: the image's, and one plane per class when conditional."""
        return self.channels


@dataclass(frozen=True)
class DCGANConfig(GANConfig):
    """DCGAN (Radford et al. 2015) as in the book: BCE from logits, noisy targets."""

    label_noise: float = 0.1  # amplitude a of the uniform noise U(0, 1) added to the targets
    book_label_noise: bool = False  # True: targets 1 + a*U and -a*U (the book; they leave [0, 1]); else 1 - a*U, a*U
    update_order: str = "alternating"  # "simultaneous" (the book: D and G from one forward pass) or "alternating"
    label_smoothing: float = 0.0  # one-sided smoothing s: real targets 1 - s (before the label noise), fake ones 0
    d_loss_reduction: str = "mean"  # D loss: "mean" (BCE(real) + BCE(fake)) / 2, as in the book; "sum": their sum
    latent_distribution: str = "normal"  # z ~ "normal" N(0, 1) or "uniform" U(-1, 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        choices = {"update_order": UPDATE_ORDERS, "d_loss_reduction": D_LOSS_REDUCTIONS,
                   "latent_distribution": LATENT_DISTRIBUTIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.label_noise < 0:
            raise ConfigError(f"label_noise must not be negative, got {self.label_noise}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")


@dataclass(frozen=True)
class WGANGPConfig(GANConfig):
    """WGAN-GP (Gulrajani et al. 2017) as in the book: a critic without normalisation, a gradient penalty."""

    latent_dim: int = 128  # size of z ~ N(0, 1)
    beta_2: float = 0.9  # Adam second-moment decay (the book's notebook overrides 0.999 with 0.9)
    output_bias: bool = True  # the book's WGAN-GP generator keeps the bias of its last convT
    critic_steps: int = 3  # critic updates per generator update, each with fresh z
    gp_weight: float = 10.0  # lambda: critic loss = mean C(fake) - mean C(real) + lambda * GP
    second_slope: float = 0.3  # LeakyReLU slope after the critic's second conv: the book leaves Keras's default
    alpha_distribution: str = "uniform"  # GP mixing weights: "uniform" U(0, 1) (the paper); "normal" N(0, 1) (book bug)
    gp_epsilon: float = 1e-12  # inside the sqrt of the gradient norm, so a zero gradient gives no NaN

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alpha_distribution not in ALPHA_DISTRIBUTIONS:
            raise ConfigError(f"alpha_distribution must be one of {ALPHA_DISTRIBUTIONS}, "
                              f"got {self.alpha_distribution!r}")
        if not 1 <= self.critic_steps <= MAX_CRITIC_STEPS:
            raise ConfigError(f"critic_steps must lie in 1..{MAX_CRITIC_STEPS} (Keras unrolls them in its compiled "
                              f"train step), got {self.critic_steps}")
        if self.gp_weight < 0 or self.gp_epsilon < 0:
            raise ConfigError(f"gp_weight and gp_epsilon must not be negative, got {self.gp_weight} and "
                              f"{self.gp_epsilon}")


@dataclass(frozen=True)
class CGANConfig(WGANGPConfig):
    """A conditional WGAN-GP as in the book: G sees concat(z, one-hot label), C sees the label as K extra planes."""

    num_classes: int = 10  # K: set from the data set (10 digits; 2 for a CelebA attribute)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 2:
            raise ConfigError(f"a conditional GAN needs at least 2 classes, got {self.num_classes} (a folder data "
                              "set needs one subfolder per class)")

    @property
    def conditional(self) -> bool:
        return True

    @property
    def generator_input_dim(self) -> int:
        return self.latent_dim + self.num_classes

    @property
    def critic_input_channels(self) -> int:
        return self.channels + self.num_classes


def check_numbers(config) -> None:
    """ConfigError for a number no optimiser or layer takes: NaN or infinite, a learning rate that is not
    positive, a decay outside [0, 1), a negative epsilon, slope or width cap."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        values = value if isinstance(value, tuple) else (value,)
        if any(isinstance(item, float) and not math.isfinite(item) for item in values):
            raise ConfigError(f"{field.name} must be a finite number, got {value}")
    if config.learning_rate <= 0:
        raise ConfigError(f"learning_rate must be positive, got {config.learning_rate}")
    for name in ("beta_1", "beta_2", "bn_momentum"):
        if not 0 <= getattr(config, name) < 1:
            raise ConfigError(f"{name} must lie in [0, 1), got {getattr(config, name)}")
    for name in ("adam_epsilon", "bn_epsilon", "max_width", "leaky_slope", "second_slope", "init_std", "bn_gamma_std",
                 "generator_slopes"):
        value = getattr(config, name, 0)
        if min(value, default=0) < 0 if isinstance(value, tuple) else value < 0:  # Keras's LeakyReLU: no negative slope
            raise ConfigError(f"{name} must not be negative, got {value}")


@dataclass(frozen=True)
class Architecture:
    """A published GAN that people port: where its code is, the framework it was written in, what its networks take."""

    title: str  # what people call it
    origin: str  # where its code is published
    framework: str  # the framework of the original: "torch", "tensorflow" or "keras"
    sizes: tuple[int, ...]  # image sizes its networks take; () for any size (an MLP)
    dropout: bool  # whether its discriminator has a dropout layer

    @property
    def direction(self) -> str:
        """Which way the parity layer copies weights: from the original into the port."""
        return "torch-to-keras" if self.framework == "torch" else "keras-to-torch"


ARCHITECTURES = {
    "pytorch-examples": Architecture(
        "pytorch/examples DCGAN", "github.com/pytorch/examples, dcgan/main.py", "torch", (64,), False),
    "pytorch-gan-mlp": Architecture(
        "PyTorch-GAN's vanilla GAN (MLP)", "github.com/eriklindernoren/PyTorch-GAN, implementations/gan/gan.py",
        "torch", (), False),
    "face32": Architecture(
        "the Udacity course's face generator, as a student published it",
        "artgor, \"PyTorch Deep Learning Nanodegree: Generative Adversarial Networks\" (Medium, 2019), on the project "
        "of github.com/udacity/deep-learning-v2-pytorch (project-face-generation)", "torch", (32,), True),
    "svhn-tf1": Architecture(
        "the TensorFlow 1 SVHN DCGAN of the freeCodeCamp tutorial",
        "T. Silva, \"An intuitive introduction to Generative Adversarial Networks\" (freeCodeCamp, 2018); "
        "github.com/sthalles/blog-resources, dcgan/DCGAN.ipynb", "tensorflow", (32,), False),
    "celeba-keras": Architecture(
        "the Keras CelebA DCGAN of \"GAN for dummies\"",
        "M. Kana, \"Generative Adversarial Network (GAN) for Dummies: A Step By Step Tutorial\" (Towards Data "
        "Science, 2019)", "keras", (64,), False),
}


@dataclass(frozen=True)
class PublishedConfig(DCGANConfig):
    """A published GAN on its own networks (torch_impl/published.py, keras_impl/published.py), trained by the DCGAN
    trainer: BCE from logits (each original ends in a sigmoid), its update order, label smoothing and z as fields."""

    architecture: str = "pytorch-examples"  # whose networks: one of ARCHITECTURES (pytorch-examples, face32, ...)
    init: str = "normal"  # "normal": weights N(0, init_std), biases 0; "torch", "glorot": the framework's defaults
    init_std: float = 0.02  # standard deviation of the "normal" initialisation (the DCGAN paper's)
    bn_gamma_std: float = 0.0  # BatchNorm gamma ~ N(1, bn_gamma_std) (pytorch/examples' weights_init: 0.02); 0: ones
    generator_slopes: tuple[float, ...] = ()  # LeakyReLU slope of each hidden generator layer (face32); (): leaky_slope
    bn_positional_epsilon: bool = False  # True: PyTorch-GAN as published, BatchNorm1d(n, 0.8): eps 0.8, momentum 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "generator_slopes", tuple(float(slope) for slope in self.generator_slopes))
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"architecture must be one of {tuple(ARCHITECTURES)}, got {self.architecture!r}")
        super().__post_init__()
        original = ARCHITECTURES[self.architecture]
        if self.init not in INITIALIZATIONS:
            raise ConfigError(f"init must be one of {INITIALIZATIONS}, got {self.init!r}")
        if self.dropout and not original.dropout:
            raise ConfigError(f"{self.architecture} has no dropout layer: dropout must be 0, got {self.dropout}")
        slopes = GENERATOR_SLOPES.get(self.architecture, 0)
        if self.generator_slopes and len(self.generator_slopes) != slopes:
            expected = f"{slopes} values (one per hidden generator layer)" if slopes else "none"
            raise ConfigError(f"generator_slopes of {self.architecture}: {expected}, got {self.generator_slopes}")
        if self.bn_positional_epsilon and self.architecture != "pytorch-gan-mlp":
            raise ConfigError("bn_positional_epsilon reproduces PyTorch-GAN's BatchNorm1d(n, 0.8): only "
                              f"pytorch-gan-mlp has it, not {self.architecture}")

    def check_image_size(self) -> None:
        """The original's size: its networks take no other (the MLP takes any)."""
        sizes = ARCHITECTURES[self.architecture].sizes
        if sizes and self.image_size not in sizes:
            raise ConfigError(f"{self.architecture} takes images of size {' or '.join(map(str, sizes))} only, got "
                              f"{self.image_size}")
        if self.image_size < 4:
            raise ConfigError(f"image_size must be at least 4, got {self.image_size}")

    def slopes(self, count: int) -> tuple[float, ...]:
        """The LeakyReLU slopes of `count` hidden generator layers: generator_slopes, or leaky_slope for each."""
        return self.generator_slopes or (self.leaky_slope,) * count


GENERATOR_SLOPES = {"face32": 4}  # architectures whose hidden generator layers each have a slope of their own


DCGAN_PRESETS = {
    # The book's LEGO-bricks model: 64x64x1, 300 epochs, one forward pass for both updates, targets outside [0, 1].
    "book": DCGANConfig(
        image_size=64, channels=1, batch_size=128, epochs=300, update_order="simultaneous", book_label_noise=True
    ),
    # The offline default: the same family at 32x32x1 on scikit-learn's digits.
    "digits": DCGANConfig(),
}

WGAN_GP_PRESETS = {
    # The book's CelebA model: 64x64x3, batch 512. The book trains fit(epochs=200, steps_per_epoch=2), i.e. only
    # 400 generator steps; here an epoch is a full pass. alpha_distribution="normal" reproduces the book's N(0, 1).
    "book": WGANGPConfig(image_size=64, channels=3, batch_size=512, epochs=200),
    # The offline default: the same family at 32x32x1 on scikit-learn's digits.
    "digits": WGANGPConfig(),
}

CGAN_PRESETS = {
    # The book's CelebA model conditioned on Blond_Hair: 64x64x3, batch 128, latent 32, a 128-wide critic.
    "book": CGANConfig(image_size=64, channels=3, batch_size=128, epochs=20, latent_dim=32, max_width=128,
                       learning_rate=5e-5, num_classes=2),
    # The offline default: the same family at 32x32x1 on scikit-learn's digits, one class per digit.
    "digits": CGANConfig(latent_dim=32, max_width=128),
}

# torch's BatchNorm defaults, momentum 0.1 and eps 1e-5, in the stated meaning (Keras's momentum 0.9).
TORCH_BN = {"bn_momentum": 0.9, "bn_epsilon": 1e-5}

PUBLISHED_PRESETS = {
    # pytorch/examples dcgan/main.py: 64x64x3, nz 100, ngf = ndf = 64, batch 64, 25 epochs (niter); weights_init
    # (conv weights N(0, 0.02), BatchNorm weight N(1, 0.02), bias 0); BCELoss on a sigmoid (here: from the logit);
    # Adam 2e-4, betas (0.5, 0.999), torch's eps 1e-8; errD = errD_real + errD_fake, then G through the updated D.
    "pytorch-examples": PublishedConfig(
        architecture="pytorch-examples", image_size=64, channels=3, width=64, batch_size=64, epochs=25,
        adam_epsilon=1e-8, **TORCH_BN, dropout=0.0, label_noise=0.0, d_loss_reduction="sum", init="normal",
        bn_gamma_std=0.02),
    # PyTorch-GAN implementations/gan/gan.py: an MLP on 28x28x1 (hidden 128, 256, 512, 1024; D 512, 256), batch 64,
    # 200 epochs, Adam 2e-4 (0.5, 0.999), torch's default initialisation. Its loop takes G's step, then D's on the
    # same fakes: both gradients come from the weights before either step, i.e. the simultaneous order. Its
    # BatchNorm1d(out_feat, 0.8) puts 0.8 into eps: meant is the Keras-GAN original's momentum 0.8
    # (bn_momentum 0.8, torch's eps); --bn-positional-epsilon true builds the published slip.
    "pytorch-gan-mlp": PublishedConfig(
        architecture="pytorch-gan-mlp", image_size=28, channels=1, width=128, batch_size=64, epochs=200,
        adam_epsilon=1e-8, bn_momentum=0.8, bn_epsilon=1e-5, dropout=0.0, label_noise=0.0,
        update_order="simultaneous", init="torch"),
    # The face generator (32x32x3, conv_dim 32) of the post named in ARCHITECTURES, trained as the course's own
    # DCGAN solution trains (the post gives the networks only): z ~ U(-1, 1) of size 100, BCE from logits without
    # smoothing, d_loss = real + fake, Adam 2e-4 (0.5, 0.999); weights N(0, 0.02) as the project asks, biases 0;
    # batch 128 and 20 epochs are this project's choice. The course's loop draws a second z for the G step; here
    # the G step reuses the D step's fakes (the alternating order).
    "face32": PublishedConfig(
        architecture="face32", image_size=32, channels=3, width=32, batch_size=128, epochs=20, adam_epsilon=1e-8,
        **TORCH_BN, dropout=0.1, label_noise=0.0, d_loss_reduction="sum", latent_distribution="uniform",
        init="normal", generator_slopes=(0.19, 0.18, 0.17, 0.16)),
    # The TF1 tutorial's notebook: 32x32x3, z ~ U(-1, 1) of size 100, batch 128, 1 epoch (its value); kernels
    # N(0, 0.02), biases 0; its batch_norm helper passes momentum 0.9 and epsilon 1e-5 to
    # tf.layers.batch_normalization (whose defaults are 0.99 and 1e-3); real labels smoothed to 0.9; d_loss = real +
    # fake; tf.train.AdamOptimizer(2e-4, beta1=0.5): eps 1e-8, placed as Keras places it. Its loop runs the D step,
    # then the G step twice on the same z; here once (the alternating order).
    "svhn-tf1": PublishedConfig(
        architecture="svhn-tf1", image_size=32, channels=3, width=64, batch_size=128, epochs=1, adam_epsilon=1e-8,
        bn_momentum=0.9, bn_epsilon=1e-5, dropout=0.0, label_noise=0.0, label_smoothing=0.1,
        d_loss_reduction="sum", latent_distribution="uniform", init="normal"),
    # The post's Keras code: 64x64x3, NET_CAPACITY 16 (D blocks 16, 32, 64, 128; G 128 at 4x4, then 64, 32, 16,
    # 16), FILTER_SIZE 5, LeakyReLU 0.3, LATENT_DIM 100 ~ N(0, 1), batch 32; Keras's defaults everywhere else:
    # Glorot-uniform kernels, BatchNormalization (0.99, 1e-3), Adam(lr=0.0002) with beta_1 0.9, eps 1e-7. Its 500
    # "epochs" of 200 random batches are 3.2M images, 16 passes over CelebA's 202,599. Its combined model (D set
    # trainable = False before compiling it) takes D's steps, then G's through the updated D: the alternating order
    # (the post takes two D steps, one on the real batch and one on the fakes; here one on both).
    "celeba-keras": PublishedConfig(
        architecture="celeba-keras", image_size=64, channels=3, width=16, batch_size=32, epochs=16,
        learning_rate=2e-4, beta_1=0.9, adam_epsilon=1e-7, bn_momentum=0.99, bn_epsilon=1e-3, leaky_slope=0.3,
        dropout=0.0, label_noise=0.0, init="glorot"),
}

PRESETS = {"dcgan": DCGAN_PRESETS, "wgan_gp": WGAN_GP_PRESETS, "cgan": CGAN_PRESETS, "published": PUBLISHED_PRESETS}


def default_preset(model: str) -> str:
    """The preset a command line takes without --preset: digits for the book's models, the first for the others."""
    return "digits" if "digits" in PRESETS[model] else next(iter(PRESETS[model]))


def conditioned_on(config, num_classes: int):
    """The configuration with the data set's number of classes, for conditional models; others unchanged."""
    if not config.conditional:
        return config
    return dataclasses.replace(config, num_classes=num_classes)


def get_config(model: str, preset: str, **overrides):
    """The preset's configuration with the given fields replaced (None values are ignored)."""
    if model not in PRESETS:
        raise ConfigError(f"unknown model {model!r}; known: {', '.join(PRESETS)}")
    if preset not in PRESETS[model]:
        raise ConfigError(f"unknown preset {preset!r} for {model}; known: {', '.join(PRESETS[model])}")
    return dataclasses.replace(PRESETS[model][preset], **{k: v for k, v in overrides.items() if v is not None})


def config_from_dict(model: str, fields: dict):
    """Rebuild a configuration saved with `dataclasses.asdict` (checkpoints store it)."""
    config_class = type(next(iter(PRESETS[model].values())))
    return config_class(**fields)


def config_record(config) -> dict:
    """A configuration as JSON-ready data that names its model, {"model": "dcgan", "fields": {...}}: what a
    saved network (keras_impl's generator.keras) carries to rebuild itself."""
    model = next(name for name, presets in PRESETS.items() if type(next(iter(presets.values()))) is type(config))
    return {"model": model, "fields": dataclasses.asdict(config)}


def config_from_record(record: dict):
    """The configuration that `config_record` wrote."""
    return config_from_dict(record["model"], record["fields"])


# Conversions from the one stated meaning to each framework's own argument.


def torch_bn_momentum(keras_momentum: float) -> float:
    """torch running = (1 - m) * running + m * batch; Keras moving = m * moving + (1 - m) * batch."""
    return 1.0 - keras_momentum


def batch_norm_settings(config) -> tuple[float, float]:
    """(Keras momentum, epsilon) of the networks' BatchNorm layers: the configured ones, or with bn_positional_epsilon
    what PyTorch-GAN's BatchNorm1d(n, 0.8) builds: the 0.8 meant as momentum lands in eps, and the momentum stays
    torch's default 0.1 (Keras's 0.9)."""
    if getattr(config, "bn_positional_epsilon", False):
        return TORCH_BN["bn_momentum"], config.bn_momentum
    return config.bn_momentum, config.bn_epsilon


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) zeros of TensorFlow's "same" convolution on `size` pixels: the odd one goes after, so a k5 s2
    conv on an even size pads (1, 2), which torch's symmetric padding=2 cannot say."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def tf_same_crop(kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) rows that a "same" transposed convolution crops from its full output (in - 1) * stride +
    kernel, to leave in * stride, by the rule Keras states for every backend (keras/src/backend/common/
    backend_utils.py): k4 s2 crops (1, 1), which is torch's padding=1; k5 s2 crops (1, 2), which no padding is."""
    total = stride + kernel - 2
    before = min(total // 2 + total % 2, kernel - 1)
    return kernel - 1 - before, kernel - 1 - (total - before)


def torch_leaky_slope(slope: float) -> float:
    """The slope TensorFlow really multiplies by: its LeakyRelu kernel holds the slope in a float32 attribute.

    Keras's LeakyReLU(0.2) computes x * 0.20000000298... even in float64; torch is given the same number, so the
    two agree to round-off in float64 too (the change, 1.5e-8 relative, is far below float32 resolution).
    """
    return float(np.float32(slope))
