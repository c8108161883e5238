"""Model configurations shared by torch_impl and keras_impl: every hyperparameter lives here.

One frozen dataclass per model, a comment on every field. Values that the two frameworks spell differently
(BatchNorm momentum, epsilons, LeakyReLU slope) are stored once, in one stated meaning, and converted by the
helpers at the bottom, so no model file carries a hyperparameter literal.
Presets: `book` is exactly chapter 4 of Generative Deep Learning (2nd ed.); `digits` is the same family at 32x32
for the offline default data set.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

UPDATE_ORDERS = ("simultaneous", "alternating")
MAX_CRITIC_STEPS = 100  # the paper takes 5; the book 3
ALPHA_DISTRIBUTIONS = ("uniform", "normal")


class ConfigError(ValueError):
    """A configuration that cannot be built; the message says which field and why."""


@dataclass(frozen=True)
class GANConfig:
    """What every model of the family shares: image, networks, optimiser, normalisation."""

    image_size: int = 32  # side of the square images: a power of two, at least 16
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
        blocks = math.log2(self.image_size) if self.image_size > 0 else 0
        if self.image_size < 16 or blocks != int(blocks):
            raise ConfigError(f"image_size must be a power of two of at least 16, got {self.image_size}")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout}")
        for name in ("latent_dim", "width", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        check_numbers(self)

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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.update_order not in UPDATE_ORDERS:
            raise ConfigError(f"update_order must be one of {UPDATE_ORDERS}, got {self.update_order!r}")
        if self.label_noise < 0:
            raise ConfigError(f"label_noise must not be negative, got {self.label_noise}")


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
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{field.name} must be a finite number, got {value}")
    if config.learning_rate <= 0:
        raise ConfigError(f"learning_rate must be positive, got {config.learning_rate}")
    for name in ("beta_1", "beta_2", "bn_momentum"):
        if not 0 <= getattr(config, name) < 1:
            raise ConfigError(f"{name} must lie in [0, 1), got {getattr(config, name)}")
    for name in ("adam_epsilon", "bn_epsilon", "max_width", "leaky_slope", "second_slope"):
        if getattr(config, name, 0) < 0:  # Keras's LeakyReLU takes no negative slope
            raise ConfigError(f"{name} must not be negative, got {getattr(config, name)}")


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

PRESETS = {"dcgan": DCGAN_PRESETS, "wgan_gp": WGAN_GP_PRESETS, "cgan": CGAN_PRESETS}


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


def torch_leaky_slope(slope: float) -> float:
    """The slope TensorFlow really multiplies by: its LeakyRelu kernel holds the slope in a float32 attribute.

    Keras's LeakyReLU(0.2) computes x * 0.20000000298... even in float64; torch is given the same number, so the
    two agree to round-off in float64 too (the change, 1.5e-8 relative, is far below float32 resolution).
    """
    return float(np.float32(slope))
