"""The settings check's vocabulary: effective padding and crops agree with what the layers really compute, equal
ports describe alike, and a port that differs in one field is named by that field."""

import keras
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import layers
from torch import nn

from parity import checks
from parity.settings import (
    describe_keras,
    describe_torch,
    difference,
    keras_crop,
    keras_padding,
    network_rows,
    torch_crop,
)
from specs.models import PRESETS, get_config

SIZES = st.integers(5, 12)  # at least the largest kernel: a "valid" conv has an output
KERNELS = st.integers(1, 5)
STRIDES = st.integers(1, 3)


def keras_net(stack, size: int, channels: int = 2) -> keras.Sequential:
    return keras.Sequential([keras.Input((size, size, channels)), *stack])


@settings(max_examples=25, deadline=None)
@given(size=SIZES, kernel=KERNELS, stride=STRIDES, padding=st.sampled_from(["same", "valid"]))
def test_keras_conv_padding_gives_its_output_size(size, kernel, stride, padding):
    layer = layers.Conv2D(3, kernel, strides=stride, padding=padding)
    keras_net([layer], size)
    top, bottom, left, right = keras_padding(layer)
    assert layer.output.shape[1] == (size + top + bottom - kernel) // stride + 1
    assert layer.output.shape[2] == (size + left + right - kernel) // stride + 1
    assert top <= bottom <= top + 1  # TensorFlow puts the odd pixel at the bottom


@settings(max_examples=25, deadline=None)
@given(size=SIZES, kernel=KERNELS, stride=STRIDES, padding=st.sampled_from(["same", "valid"]))
def test_keras_transposed_crop_gives_its_output_size(size, kernel, stride, padding):
    layer = layers.Conv2DTranspose(3, kernel, strides=stride, padding=padding)
    keras_net([layer], size)
    top, bottom, _, _ = keras_crop(layer)
    assert layer.output.shape[1] == (size - 1) * stride + kernel - top - bottom


@settings(max_examples=25, deadline=None)
@given(size=SIZES, kernel=st.integers(2, 5), stride=STRIDES, data=st.data())
def test_torch_transposed_crop_gives_its_output_size(size, kernel, stride, data):
    padding = data.draw(st.integers(0, kernel - 1))
    extra = data.draw(st.integers(0, stride - 1))
    module = nn.ConvTranspose2d(2, 3, kernel, stride=stride, padding=padding, output_padding=extra)
    top, bottom, _, _ = torch_crop(module)
    assert module(torch.zeros(1, 2, size, size)).shape[2] == (size - 1) * stride + kernel - top - bottom


def rows_differing(torch_net, keras_model):
    return [label for label, a, b in network_rows("net", torch_net, keras_model) if difference(a, b)[1] > 1e-6]


def test_the_ports_that_compute_the_same_describe_alike():
    torch_net = nn.Sequential()
    torch_net.add_module("conv1", nn.Conv2d(2, 4, 4, stride=2, padding=1))
    torch_net.add_module("act1", nn.LeakyReLU(0.2))
    torch_net.add_module("pad2", nn.ZeroPad2d((1, 2, 1, 2)))  # k5 s2 "same": TensorFlow's asymmetric padding
    torch_net.add_module("conv2", nn.Conv2d(4, 4, 5, stride=2))
    torch_net.add_module("bn2", nn.BatchNorm2d(4, eps=1e-3, momentum=0.1))
    torch_net.add_module("up", nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1))
    torch_net.add_module("tanh", nn.Tanh())
    keras_model = keras_net([
        layers.Conv2D(4, 4, strides=2, padding="same", name="conv1"), layers.LeakyReLU(0.2, name="act1"),
        layers.Conv2D(4, 5, strides=2, padding="same", name="conv2"),
        layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name="bn2"),
        layers.Conv2DTranspose(3, 4, strides=2, padding="same", name="up"), layers.Activation("tanh", name="tanh"),
    ], 16)
    assert rows_differing(torch_net, keras_model) == []


def test_a_field_that_differs_is_named():
    torch_net = nn.Sequential()
    torch_net.add_module("conv", nn.Conv2d(2, 4, 5, stride=2, padding=2))  # symmetric: not TensorFlow's "same"
    torch_net.add_module("bn", nn.BatchNorm2d(4, eps=1e-3, momentum=0.9))  # Keras's momentum copied literally
    torch_net.add_module("drop", nn.Dropout(0.3))
    keras_model = keras_net([
        layers.Conv2D(4, 5, strides=2, padding="same", name="conv"),
        layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name="bn"), layers.Dropout(0.5, name="drop"),
    ], 16)
    assert rows_differing(torch_net, keras_model) == ["net.conv padding", "net.bn momentum", "net.drop rate"]


def test_a_layer_on_one_side_only_fails():
    torch_net = nn.Sequential()
    torch_net.add_module("conv", nn.Conv2d(2, 4, 3, padding=1))
    torch_net.add_module("act", nn.ReLU())
    keras_model = keras_net([layers.Conv2D(4, 3, padding="same", name="conv")], 8)
    assert rows_differing(torch_net, keras_model) == ["net.act: a relu layer in torch only"]


def test_descriptions_use_the_keras_meaning():
    assert describe_torch(nn.BatchNorm2d(3, momentum=0.1))["momentum"] == 0.9
    assert describe_torch(nn.Unflatten(1, (8, 4, 4)))["shape"] == (8, 4, 4)
    assert describe_keras(layers.Reshape((4, 4, 8)))["shape"] == (8, 4, 4)  # torch's (C, H, W) order
    assert describe_keras(layers.ReLU(negative_slope=0.2)) == {"kind": "leaky_relu", "negative_slope": 0.2}
    assert describe_torch(nn.Hardswish())["kind"] == "torch Hardswish"  # a kind the table lacks never matches


def test_numbers_compare_relatively_and_the_rest_exactly():
    assert difference(2e-4, 1e-4)[1] == 0.5
    assert difference(0.0, 0.0) == (0.0, 0.0)
    assert difference(None, 1.0)[1] == float("inf")
    assert difference(True, 1)[1] == float("inf")  # a flag is not a number
    assert difference((1, 2), (1, 2)) == (0.0, 0.0)


def test_the_settings_of_every_model_agree():
    for model in ("dcgan", "wgan_gp", "cgan"):
        for preset in ("digits", "book"):
            [result] = checks.run_checks(model, get_config(model, preset), "float32", batch_size=2,
                                         checks=("settings",))
            assert result.passed and result.compared > 150, (model, preset, result)
    for preset in PRESETS["published"]:  # the layers are the published ones; their widths do not matter here
        [result] = checks.run_checks("published", get_config("published", preset, width=4), "float32",
                                     batch_size=2, checks=("settings",))
        assert result.passed and result.compared > 100, (preset, result)


def test_settings_compare_the_optimisers_and_the_configuration():
    def other_beta(h):
        h.keras_trainer.d_optimizer.beta_1 = np.float64(0.9)

    def other_critic_steps(h):
        h.keras_trainer.config = h.keras_trainer.config.__class__(**{**h.config.__dict__, "critic_steps": 5})

    [result] = checks.run_checks("dcgan", get_config("dcgan", "digits"), "float64", batch_size=2,
                                 checks=("settings",), mutate=other_beta)
    assert not result.passed and result.worst.startswith("d_optimizer beta_1: torch 0.5, Keras 0.9")
    [result] = checks.run_checks("wgan_gp", get_config("wgan_gp", "digits"), "float64", batch_size=2,
                                 checks=("settings",), mutate=other_critic_steps)
    assert not result.passed and result.worst.startswith("trainer.config critic_steps: torch 3, Keras 5")
