"""parity/convert.py: strict, name-based weight tables; exact round trips; Flatten/Reshape orders handled."""

import dataclasses
from collections import OrderedDict

import keras
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import layers
from torch import nn

import keras_impl.dcgan as keras_dcgan  # keras_impl imports torch before TensorFlow
import torch_impl.dcgan as torch_dcgan
from parity import convert
from specs.models import get_config

CONFIG = dataclasses.replace(get_config("dcgan", "digits"), width=8)


def dcgan_pair(seed=0, config=CONFIG):
    torch.manual_seed(seed)
    torch_trainer, keras_trainer = torch_dcgan.DCGAN(config), keras_dcgan.DCGAN(config)
    table = convert.trainer_table(torch_trainer, keras_trainer, ("generator", "discriminator"))
    return torch_trainer, keras_trainer, table


def test_every_tensor_mapped_once():
    torch_trainer, keras_trainer, table = dcgan_pair()
    torch_names = {k for k in torch_trainer.state_dict() if not k.endswith("num_batches_tracked")}
    assert sorted(port.name for port in table) == sorted(torch_names)
    assert len({id(port.keras_variable) for port in table}) == len(table) == len(keras_trainer.generator.weights) + len(
        keras_trainer.discriminator.weights)


def test_round_trip_is_byte_identical():
    source, keras_trainer, table = dcgan_pair(seed=1)
    with torch.no_grad():  # running statistics that are not the initial ones
        for name, buffer in source.named_buffers():
            if "running" in name:
                buffer.uniform_(0.5, 1.5)
    convert.torch_to_keras(table)
    target = torch_dcgan.DCGAN(CONFIG)
    torch.manual_seed(2)
    target = torch_dcgan.DCGAN(CONFIG)
    convert.keras_to_torch(convert.trainer_table(target, keras_trainer, ("generator", "discriminator")))
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        if not name.endswith("num_batches_tracked"):
            assert a.numpy().tobytes() == b.numpy().tobytes(), name


def test_shape_mismatch_is_refused():
    torch_trainer = torch_dcgan.DCGAN(CONFIG)
    wider = keras_dcgan.DCGAN(dataclasses.replace(CONFIG, width=16))
    with pytest.raises(convert.ConversionError, match=r"generator.conv1.weight: torch \(100, 32, 4, 4\) maps to"):
        convert.trainer_table(torch_trainer, wider, ("generator", "discriminator"))


def test_missing_layer_is_refused():
    module = nn.Sequential(OrderedDict(dense1=nn.Linear(3, 2), extra=nn.Linear(2, 2)))
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2, name="dense1")])
    with pytest.raises(convert.ConversionError, match="torch layer 'extra' has no Keras layer"):
        convert.weight_table(module, model)


def test_keras_only_weights_are_refused():
    module = nn.Sequential(OrderedDict(dense1=nn.Linear(3, 2, bias=False)))
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2, name="dense1")])
    with pytest.raises(convert.ConversionError, match="present in only one framework"):
        convert.weight_table(module, model)


def probe_pair(channels, height, width, hidden):
    """Conv -> Flatten -> Dense -> Dense -> Reshape -> ConvTranspose, in both frameworks with the same names."""
    torch.manual_seed(0)
    module = nn.Sequential(OrderedDict(
        conv=nn.Conv2d(2, channels, 3, padding=1),
        flatten=nn.Flatten(),
        dense1=nn.Linear(channels * height * width, hidden),
        dense2=nn.Linear(hidden, channels * height * width),
        reshape=nn.Unflatten(1, (channels, height, width)),
        deconv=nn.ConvTranspose2d(channels, 3, 4, stride=2, padding=1),
    )).double()
    model = keras.Sequential([
        keras.Input((height, width, 2), dtype="float64"),
        layers.Conv2D(channels, 3, padding="same", name="conv", dtype="float64"),
        layers.Flatten(name="flatten", dtype="float64"),
        layers.Dense(hidden, name="dense1", dtype="float64"),
        layers.Dense(channels * height * width, name="dense2", dtype="float64"),
        layers.Reshape((height, width, channels), name="reshape", dtype="float64"),
        layers.Conv2DTranspose(3, 4, strides=2, padding="same", name="deconv", dtype="float64"),
    ])
    return module, model


@settings(max_examples=8, deadline=None)
@given(channels=st.integers(1, 5), height=st.integers(1, 5), width=st.integers(1, 5), hidden=st.integers(1, 6))
def test_probe_network_converts_exactly(channels, height, width, hidden):
    module, model = probe_pair(channels, height, width, hidden)
    table = convert.weight_table(module, model)
    convert.torch_to_keras(table)
    x = np.random.default_rng(0).normal(size=(3, 2, height, width))
    expected = module(torch.from_numpy(x)).detach().numpy().transpose(0, 2, 3, 1)
    actual = keras.ops.convert_to_numpy(model(x.transpose(0, 2, 3, 1)))
    assert np.max(np.abs(expected - actual)) < 1e-12
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    convert.keras_to_torch(table)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_plain_transpose_after_flatten_would_be_wrong():
    """The row permutation matters: the same weights, transposed only, give a different network."""
    module, model = probe_pair(3, 4, 5, 6)
    table = convert.weight_table(module, model)
    convert.torch_to_keras(table)
    dense1 = model.get_layer("dense1")
    dense1.kernel.assign(module.dense1.weight.detach().numpy().T)
    x = np.random.default_rng(0).normal(size=(2, 2, 4, 5))
    expected = module(torch.from_numpy(x)).detach().numpy().transpose(0, 2, 3, 1)
    actual = keras.ops.convert_to_numpy(model(x.transpose(0, 2, 3, 1)))
    assert np.max(np.abs(expected - actual)) > 1e-3
