"""The published models (specs/models.py ARCHITECTURES): each architecture as published, proven by its parameter
counts and its original's initialisation in both frameworks; what the originals need of the DCGAN trainer (label
smoothing, a summed D loss, uniform z, TensorFlow's "same"); the parity checks of every preset in float64 at small
widths (the full matrix, at the published sizes and in float32 too: `make parity`); and short runs from both
command lines, with sample, export and convert.
"""

import argparse
import contextlib
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

import keras_impl.train as keras_train
import torch_impl.train as torch_train
from parity import checkpoint, checks
from parity.settings import keras_crop, keras_padding
from specs.models import ARCHITECTURES, PRESETS, ConfigError, get_config, tf_same_crop, tf_same_padding
from torch_impl import dcgan as torch_dcgan
from torch_impl.trainers import build_trainer as build_torch

# isort: split
import keras  # after torch_impl: torch before TensorFlow
from keras import layers

from keras_impl import dcgan as keras_dcgan
from keras_impl.trainers import build_trainer as build_keras

PUBLISHED = list(PRESETS["published"])
CLI = {"torch": torch_train, "keras": keras_train}

# Trainable parameters (generator, discriminator), counted from the published code at its published widths:
PUBLISHED_COUNTS = {
    # dcgan/main.py, nz 100, ngf = ndf = 64, nc 3, no biases. G: ConvT 100*512*16 + 512*256*16 + 256*128*16
    # + 128*64*16 + 64*3*16 = 3,574,784, BatchNorm 2 * (512 + 256 + 128 + 64) = 1,920. D: Conv 3*64*16 + 64*128*16
    # + 128*256*16 + 256*512*16 + 512*1*16 = 2,763,776, BatchNorm 2 * (128 + 256 + 512) = 1,792.
    "pytorch-examples": (3_576_704, 2_765_568),
    # gan.py, latent 100, 28x28x1. G: Linear 100*128+128 + 128*256+256 + 256*512+512 + 512*1024+1024
    # + 1024*784+784 = 1,506,448, BatchNorm1d 2 * (256 + 512 + 1024) = 3,584. D: 784*512+512 + 512*256+256 + 257.
    "pytorch-gan-mlp": (1_510_032, 533_505),
    # z 100, conv_dim 32. G: fc 100*5120+5120; ConvT 320*256*16 + 256*128*16 + 128*64*16 + 64*32*16 + 32*3*16
    # (no bias); BatchNorm 2 * (256 + 128 + 64 + 32). D: Conv 3*32*16 + 32*64*16 + 64*128*16 + 128*256*16
    # + 256*512*4 (no bias); BatchNorm 2 * (64 + 128 + 256 + 512); fc 512 + 1.
    "face32": (2_518_464, 1_216_385),
    # z 100, tf.layers with biases. G: dense 100*8192+8192; ConvT k5 512*256*25+256, 256*128*25+128, 128*3*25+3;
    # BatchNorm 2 * (512 + 256 + 128). D: Conv k5 3*64*25+64, 64*128*25+128, 128*256*25+256; BatchNorm
    # 2 * (128 + 256); dense 4096 + 1.
    "svhn-tf1": (4_935_171, 1_034_113),
    # NET_CAPACITY 16, FILTER_SIZE 5, latent 100, Keras layers with biases. G: Dense 100*2048+2048, BatchNorm 2*2048;
    # ConvT k5 128*64*25+64, 64*32*25+32, 32*16*25+16, 16*16*25+16, BatchNorm 2 * (64 + 32 + 16 + 16); Conv k5
    # 16*3*25+3. D: per block f (16, 32, 64, 128) from c: c*f*25+f + f*f*25+f and BatchNorm 4f; Dense 128 + 1.
    "celeba-keras": (487_731, 815_569),
}


def trainable(network) -> int:
    if isinstance(network, torch.nn.Module):
        return sum(parameter.numel() for parameter in network.parameters())
    return sum(int(np.prod(variable.shape)) for variable in network.trainable_weights)


def small(preset: str, **fields):
    """The preset at width 2 and latent 8: every layer of the original, few numbers."""
    return get_config("published", preset, width=2, latent_dim=8, **fields)


# --------------------------------------------------------------------------------------- The architectures


@pytest.mark.parametrize("preset", PUBLISHED)
def test_the_networks_are_the_published_ones(preset):
    """Parameter counts as published, in both frameworks; image and logit shapes; the original's initialisation."""
    config = get_config("published", preset)
    torch_trainer, keras_trainer = build_torch("published", config), build_keras("published", config)
    for trainer in (torch_trainer, keras_trainer):
        assert (trainable(trainer.generator), trainable(trainer.discriminator)) == PUBLISHED_COUNTS[preset]
    z = np.random.default_rng(0).uniform(-1, 1, (2, config.latent_dim)).astype(np.float32)
    with torch.no_grad():
        images = torch_trainer.generator.eval()(torch.from_numpy(z))
        assert tuple(images.shape) == (2, config.channels, config.image_size, config.image_size)
        assert tuple(torch_trainer.discriminator.eval()(images).shape) == (2, 1)
    images = keras_trainer.generator(z, training=False)
    assert tuple(images.shape) == (2, config.image_size, config.image_size, config.channels)
    assert tuple(keras_trainer.discriminator(images, training=False).shape) == (2, 1)
    kernels = [variable for variable in keras_trainer.generator.trainable_weights if "kernel" in variable.path]
    first = keras.ops.convert_to_numpy(kernels[0]).ravel()
    if config.init == "normal":  # N(0, 0.02) in both frameworks (torch: the first weight alike)
        torch_first = next(torch_trainer.generator.parameters()).detach().numpy().ravel()
        for values in (first, torch_first):
            assert abs(values.std() - 0.02) < 0.002 and abs(values.mean()) < 0.002
    elif config.init == "torch":  # Kaiming-uniform, a = sqrt(5): U(+-1 / sqrt(fan_in)), fan_in = latent_dim
        bound = 1 / math.sqrt(config.latent_dim)
        assert first.max() <= bound and abs(first.std() - bound / math.sqrt(3)) < 0.01 * bound
    else:  # Keras's Glorot-uniform: U(+-sqrt(6 / (fan_in + fan_out)))
        bound = math.sqrt(6 / sum(kernels[0].shape))
        assert first.max() <= bound and abs(first.std() - bound / math.sqrt(3)) < 0.02 * bound


def test_pytorch_examples_draws_batchnorm_weights_around_one():
    """weights_init: BatchNorm weight N(1, 0.02) and bias 0, in both frameworks."""
    config = get_config("published", "pytorch-examples")
    torch_gamma = build_torch("published", config).generator.bn1.weight.detach().numpy()
    keras_layer = build_keras("published", config).generator.get_layer("bn1")
    keras_gamma = keras.ops.convert_to_numpy(keras_layer.gamma)
    for gamma in (torch_gamma, keras_gamma):
        assert abs(gamma.mean() - 1) < 0.005 and abs(gamma.std() - 0.02) < 0.003
    assert not keras.ops.convert_to_numpy(keras_layer.beta).any()


def test_batchnorm_settings_of_the_mlp_as_meant_and_as_published():
    meant = build_torch("published", small("pytorch-gan-mlp")).generator.bn2
    assert (meant.eps, meant.momentum) == (1e-5, pytest.approx(0.2))  # Keras momentum 0.8, torch's eps
    config = small("pytorch-gan-mlp", bn_positional_epsilon=True)
    published = build_torch("published", config).generator.bn2
    assert (published.eps, published.momentum) == (0.8, pytest.approx(0.1))  # BatchNorm1d(out_feat, 0.8)
    layer = build_keras("published", config).generator.get_layer("bn2")
    assert (layer.epsilon, layer.momentum) == (0.8, pytest.approx(0.9))


def test_tf_same_padding_and_crop_are_what_keras_does():
    """The torch ports' explicit paddings and crops (specs.models) against Keras's own "same" (parity.settings reads
    it off the layers), over kernels, strides and sizes."""
    for kernel in (1, 2, 3, 4, 5):
        for stride in (1, 2, 3):
            conv = layers.Conv2D(1, kernel, strides=stride, padding="same")
            transposed = layers.Conv2DTranspose(1, kernel, strides=stride, padding="same")
            assert tf_same_crop(kernel, stride) * 2 == keras_crop(transposed), (kernel, stride)
            for size in (4, 7, 8, 28, 32):
                assert tf_same_padding(size, kernel, stride) * 2 == keras_padding(conv, (1, size, size, 1))
    assert tf_same_padding(32, 5, 2) == (1, 2) and tf_same_crop(5, 2) == (1, 2) and tf_same_crop(4, 2) == (1, 1)


@pytest.mark.parametrize(("preset", "fields", "message"), [
    ("face32", {"image_size": 64}, "face32 takes images of size 32 only, got 64"),
    ("svhn-tf1", {"dropout": 0.3}, "svhn-tf1 has no dropout layer"),
    ("face32", {"generator_slopes": (0.2,)}, "generator_slopes of face32: 4 values"),
    ("face32", {"bn_positional_epsilon": True}, "only pytorch-gan-mlp has it"),
    ("svhn-tf1", {"latent_distribution": "cauchy"}, "latent_distribution must be one of"),
    ("svhn-tf1", {"architecture": "dcgan"}, "architecture must be one of"),
])
def test_configurations_each_original_cannot_build_are_refused(preset, fields, message):
    with pytest.raises(ConfigError, match=message):
        get_config("published", preset, **fields)
    assert get_config("published", "pytorch-gan-mlp", image_size=30).image_size == 30  # an MLP takes any size


# --------------------------------------------------------------------------------------------- The trainer


def test_label_smoothing_and_the_summed_loss_in_both_frameworks():
    """The TF1 tutorial's real labels 0.9 and d_loss = d_loss_real + d_loss_fake, against BCE written out."""
    config = get_config("published", "svhn-tf1")
    noise = np.zeros((2, 3, 1), np.float32)
    logits = np.array([[0.5], [-1.0], [2.0]], np.float32), np.array([[-0.3], [1.5], [0.2]], np.float32)

    def bce(target, x):
        return float(np.mean(np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))))

    expected = bce(0.9, logits[0]) + bce(0.0, logits[1])
    real, fake = torch_dcgan.label_targets(torch.from_numpy(noise), config)
    assert torch.all(real == 0.9) and torch.all(fake == 0)
    loss = torch_dcgan.discriminator_loss(*map(torch.from_numpy, logits), real, fake, config)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    book = get_config("dcgan", "digits", label_noise=0.0, label_smoothing=0.1)  # the book's mean of the two
    assert float(torch_dcgan.discriminator_loss(*map(torch.from_numpy, logits), real, fake, book)) == pytest.approx(
        expected / 2, rel=1e-6)
    real, fake = keras_dcgan.label_targets(noise, config)
    loss = keras_dcgan.discriminator_loss(*logits, real, fake, config)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("build", [build_torch, build_keras], ids=["torch", "keras"])
def test_uniform_z_is_drawn_in_minus_one_one(build):
    trainer = build("published", small("face32"))
    z, _ = trainer.sample_noise(4096)
    z = np.asarray(keras.ops.convert_to_numpy(z)) if not torch.is_tensor(z) else z.numpy()
    assert z.min() >= -1 and z.max() <= 1 and abs(z.std() - 1 / math.sqrt(3)) < 0.01


# ------------------------------------------------------------------------------------------------- Parity

FAST = ("settings", "initialization", "forward", "gradients")  # the rest below for some presets; all: make parity


def exact(result) -> bool:
    return result.passed and result.compared > 0 and (result.name in checks.OWN_SCALES or
                                                      result.max_scaled_diff <= 1e-10)


@pytest.mark.parametrize("preset", PUBLISHED)
def test_every_preset_agrees_in_float64(preset):
    results = checks.run_checks("published", small(preset), "float64", batch_size=2, checks=FAST)
    assert [result.name for result in results] == list(FAST)
    assert all(exact(result) for result in results), results


@pytest.mark.parametrize(("preset", "names"), [
    ("pytorch-gan-mlp", ("losses", "trajectory", "data")),  # the simultaneous order; a 28x28 cache
    ("svhn-tf1", ("shapes", "losses", "trajectory", "randomness")),  # Keras -> torch; smoothing, sum, uniform z
    ("face32", ("dropout",)),
])
def test_losses_trajectory_randomness_data_and_dropout(preset, names):
    results = checks.run_checks("published", small(preset), "float64", batch_size=2, checks=names, steps=2)
    assert [result.name for result in results] == list(names) and all(exact(result) for result in results), results


def test_the_weights_are_copied_from_the_original():
    """torch originals into Keras, the TensorFlow and Keras originals into torch (parity.checks.Harness)."""
    for preset, original in (("face32", "torch"), ("svhn-tf1", "keras"), ("celeba-keras", "keras")):
        assert ARCHITECTURES[preset].direction == f"{original}-to-{'keras' if original == 'torch' else 'torch'}"
        with checks.keras_dtype("float64"):
            harness = checks.Harness("published", small(preset), "float64", 2, seed=0)
        own = build_torch("published", small(preset)) if original == "keras" else None
        for port in harness.table:
            assert np.array_equal(port.to_torch(keras.ops.convert_to_numpy(port.keras_variable)),
                                  port.torch_tensor.detach().numpy())
        if own is not None:  # torch's own fresh weights were replaced by Keras's
            state = own.state_dict()
            assert any(not np.allclose(state[port.name].double().numpy(), port.torch_tensor.detach().numpy())
                       for port in harness.table if port.trainable)


# --------------------------------------------------------------------------------------------- Command line


def run(backend: str, *argv) -> int:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        status = CLI[backend].main([*map(str, argv), "--quiet"] if argv[0] == "train" else list(map(str, argv)))
    assert status == 0, printed.getvalue()
    return status


TINY = ["--dataset", "fake", "--width", "2", "--latent-dim", "8", "--batch-size", "64", "--epochs", "1"]
def test_face32_trains_from_the_torch_command_line(tmp_path):
    """A run of the published model's own size (32x32) writes its folder as every model's run does; the other
    presets train in the parity checks' steps, svhn-tf1 from the Keras command line below."""
    out = tmp_path / "run"
    run("torch", "train", "published", "--preset", "face32", *TINY, "--cache-dir", tmp_path / "cache", "--out", out)
    lines = (out / "losses.csv").read_text().splitlines()
    assert len(lines) == 2 and all(math.isfinite(float(value)) for value in lines[1].split(","))
    with Image.open(out / "samples" / "epoch_0001.png") as grid:  # 64 images of 32x32, 2 px apart
        assert grid.size == (8 * 34 + 2,) * 2


def test_sample_export_and_convert(tmp_path):
    """svhn-tf1 (uniform z, TensorFlow's "same" written out in torch): a Keras run, converted to torch, where it
    samples the same images and exports; Keras exports its own."""
    out = tmp_path / "keras"
    run("keras", "train", "published", "--preset", "svhn-tf1", *TINY, "--cache-dir", tmp_path / "cache", "--out", out)
    torch_run = tmp_path / "torch"
    parser = argparse.ArgumentParser(prog="gan-parity")  # `gan-parity convert`, as parity/__main__.py builds it
    checkpoint.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["convert", str(out), "--to", "torch", "--out", str(torch_run)])
    with contextlib.redirect_stdout(io.StringIO()):
        assert args.func(args) == 0
    grids = {backend: tmp_path / f"{backend}.png" for backend in CLI}
    run("keras", "sample", "published", "--checkpoint", out, "--out", grids["keras"], "--num", "16")
    run("torch", "sample", "published", "--checkpoint", torch_run, "--out", grids["torch"], "--num", "16")
    keras_grid, torch_grid = (np.asarray(Image.open(grids[backend]), np.int16) for backend in ("keras", "torch"))
    assert np.abs(keras_grid - torch_grid).max() <= 1  # the same generator, float32 in both
    run("torch", "export", "published", "--checkpoint", torch_run, "--out", tmp_path / "generator.pt2")
    run("keras", "export", "published", "--checkpoint", out, "--out", tmp_path / "generator.keras")
    program = torch.export.load(tmp_path / "generator.pt2").module()
    exported = keras.models.load_model(tmp_path / "generator.keras")
    z = np.random.default_rng(0).uniform(-1, 1, (3, 8)).astype(np.float32)
    assert np.abs(program(torch.from_numpy(z)).permute(0, 2, 3, 1).detach().numpy()
                  - keras.ops.convert_to_numpy(exported(z))).max() <= 1e-5
