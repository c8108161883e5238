"""Every model's trainer, built the one way `gan-keras` builds it (mirror: torch_impl/trainers.py).

The command line, the checkpoint loaders, the parity checks and the benchmarks all call `build_trainer`, so what
the parity layer proves is what users train: the same classes, the same initialisation, the same optimisers.
"""

from __future__ import annotations

import keras

from keras_impl import cgan, dcgan, published, wgan_gp
from keras_impl.devices import precision_policy

TRAINERS = {"dcgan": dcgan.DCGAN, "wgan_gp": wgan_gp.WGANGP, "cgan": cgan.CGAN, "published": published.PublishedDCGAN}

# ----------------------------------------------------------------------------------------------------- Trainers


def build_trainer(model: str, config, seed: int = 0, precision: str = "float32") -> keras.Model:
    """The trainer of `model`: weights initialised from `seed` (Keras's global seed), noise drawn from its own
    seed generator seeded with `seed`, compiled with its two Adam optimisers (built, so their state exists), all
    built under the precision policy (keras_impl/devices.py). TensorFlow places it on the device
    `devices.select_device` left visible."""
    keras.utils.set_random_seed(seed)
    with precision_policy(precision):
        trainer = TRAINERS[model](config, seed=seed)
        trainer.compile()
    return trainer
