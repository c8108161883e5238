"""pytorch/examples' DCGAN (examples/dcgan_port/torch_dcgan.py) ported to Keras 3 by hand, as a learner first
writes it: with three mistakes, each marked below and undone when its name is in `fixed`.

  batch_norm  `layers.BatchNormalization()`: Keras's defaults, momentum 0.99 and epsilon 1e-3, where torch's
              BatchNorm2d has momentum 0.1 (Keras's 0.9) and eps 1e-5
  padding     `ConvTranspose2d(c_in, c_out, 4, 2, 1)` written as `Conv2DTranspose(c_out, 4, strides=2)`: the
              "valid" transposed conv, without the crop that torch's padding=1 is (10x10, 22x22, 46x46 and 94x94
              where torch has 8x8, 16x16, 32x32 and 64x64)
  leaky_relu  `layers.LeakyReLU()`: Keras's default slope 0.3 where torch has 0.2

`gan-parity compare examples/dcgan_port/torch_dcgan.py:Generator examples/dcgan_port/keras_dcgan.py:generator
--input 100,1,1` points at each in turn (docs/compare.html after `make docs`).
"""

import keras
from keras import layers

nz, ngf, ndf, nc = 100, 64, 64, 3  # as in the torch file
MISTAKES = ("batch_norm", "padding", "leaky_relu")


def batch_norm(fixed):
    if "batch_norm" in fixed:
        return layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    return layers.BatchNormalization()  # mistake: momentum 0.99, epsilon 1e-3


def upsample(filters, fixed):
    """torch: ConvTranspose2d(c_in, filters, 4, 2, 1, bias=False), which doubles H and W."""
    if "padding" in fixed:
        return layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False)
    return layers.Conv2DTranspose(filters, 4, strides=2, use_bias=False)  # mistake: "valid", padding=1 not cropped


def leaky_relu(fixed):
    if "leaky_relu" in fixed:
        return layers.LeakyReLU(negative_slope=0.2)
    return layers.LeakyReLU()  # mistake: negative_slope 0.3


def generator(fixed=(), nz=nz, ngf=ngf, nc=nc):
    return keras.Sequential([
        keras.Input((1, 1, nz)),
        layers.Conv2DTranspose(ngf * 8, 4, strides=1, padding="valid", use_bias=False),  # (4, 4, ngf*8)
        batch_norm(fixed), layers.ReLU(),
        upsample(ngf * 4, fixed), batch_norm(fixed), layers.ReLU(),  # (8, 8, ngf*4)
        upsample(ngf * 2, fixed), batch_norm(fixed), layers.ReLU(),  # (16, 16, ngf*2)
        upsample(ngf, fixed), batch_norm(fixed), layers.ReLU(),  # (32, 32, ngf)
        upsample(nc, fixed), layers.Activation("tanh"),  # (64, 64, nc)
    ], name="generator")


def discriminator(fixed=(), ndf=ndf, nc=nc):
    return keras.Sequential([
        keras.Input((64, 64, nc)),
        layers.Conv2D(ndf, 4, strides=2, padding="same", use_bias=False), leaky_relu(fixed),  # (32, 32, ndf)
        layers.Conv2D(ndf * 2, 4, strides=2, padding="same", use_bias=False), batch_norm(fixed), leaky_relu(fixed),
        layers.Conv2D(ndf * 4, 4, strides=2, padding="same", use_bias=False), batch_norm(fixed), leaky_relu(fixed),
        layers.Conv2D(ndf * 8, 4, strides=2, padding="same", use_bias=False), batch_norm(fixed), leaky_relu(fixed),
        layers.Conv2D(1, 4, strides=1, padding="valid", use_bias=False), layers.Activation("sigmoid"),  # (1, 1, 1)
        layers.Flatten(),
    ], name="discriminator")


def generator_fixed():
    return generator(MISTAKES)


def discriminator_fixed():
    return discriminator(MISTAKES)
