"""CGAN: label planes, the penalty on the image alone, book shapes, one-step smoke tests, the class-aware CLI."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch
from PIL import Image

import keras_impl.cgan as keras_cgan
import keras_impl.train as keras_train
import torch_impl.cgan as torch_cgan
import torch_impl.train as torch_train
from specs.models import get_config

BOOK = get_config("cgan", "book")
SMALL = dataclasses.replace(get_config("cgan", "digits"), width=8, image_size=16, latent_dim=8, num_classes=3)
BACKENDS = {"torch": torch_train, "keras": keras_train}


def test_book_shapes():
    assert BOOK.generator_input_dim == 34 and BOOK.critic_input_channels == 5
    keras_trainer = keras_cgan.CGAN(BOOK)
    generator, critic = keras_trainer.generator, keras_trainer.critic
    conv_shapes = [tuple(layer.output.shape[1:]) for layer in generator.layers if layer.name.startswith("conv")]
    assert conv_shapes == [(4, 4, 128), (8, 8, 128), (16, 16, 128), (32, 32, 64), (64, 64, 3)]
    conv_shapes = [tuple(layer.output.shape[1:]) for layer in critic.layers if layer.name.startswith("conv")]
    assert conv_shapes == [(32, 32, 64), (16, 16, 128), (8, 8, 128), (4, 4, 128), (1, 1, 1)]
    torch_trainer = torch_cgan.CGAN(BOOK)
    assert tuple(torch_trainer.generator(torch.zeros(2, 34)).shape) == (2, 3, 64, 64)
    assert tuple(torch_trainer.critic(torch.zeros(2, 5, 64, 64)).shape) == (2, 1)
    assert [m.out_channels for m in torch_trainer.critic if isinstance(m, torch.nn.Conv2d)] == [64, 128, 128, 128, 1]


def test_label_planes_are_built_identically():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (4, 3, 5, 6)).astype(np.float32)
    one_hot = np.eye(3, dtype=np.float32)[[0, 2, 1, 2]]
    torch_planes = torch_cgan.with_label_planes(torch.from_numpy(images), torch.from_numpy(one_hot)).numpy()
    keras_planes = keras.ops.convert_to_numpy(keras_cgan.with_label_planes(images.transpose(0, 2, 3, 1), one_hot))
    assert np.array_equal(torch_planes.transpose(0, 2, 3, 1), keras_planes)
    assert np.array_equal(torch_planes[:, :3], images)
    assert np.array_equal(torch_planes[:, 3:], np.broadcast_to(one_hot[:, :, None, None], (4, 3, 5, 6)))
    z = rng.normal(size=(4, 8)).astype(np.float32)
    assert np.array_equal(torch_cgan.generator_input(torch.from_numpy(z), torch.from_numpy(one_hot)).numpy(),
                          keras.ops.convert_to_numpy(keras_cgan.generator_input(z, one_hot)))


def test_penalty_is_taken_on_the_image_alone():
    """With a critic linear in (image, label planes), only the image weights enter the penalty."""
    rng = np.random.default_rng(1)
    w_image, w_planes = rng.normal(size=(1, 5, 6)), rng.normal(size=(3, 5, 6)) * 10
    real, fake = rng.normal(size=(4, 1, 5, 6)), rng.normal(size=(4, 1, 5, 6))
    alpha, one_hot = rng.uniform(size=(4, 1, 1, 1)), np.eye(3)[[0, 1, 2, 1]]
    expected = (np.sqrt(np.sum(w_image**2) + SMALL.gp_epsilon) - 1) ** 2
    w = np.concatenate([w_image, w_planes])

    class LinearCritic(torch.nn.Module):
        def forward(self, x):
            return (x * torch.from_numpy(w)).sum(dim=(1, 2, 3)).unsqueeze(1)

    torch_trainer = torch_cgan.CGAN(SMALL)
    torch_trainer.critic = LinearCritic()
    torch_gp = torch_trainer.penalty(*map(torch.from_numpy, (real, fake, alpha, one_hot)))
    keras_trainer = keras_cgan.CGAN(SMALL)
    w_nhwc = w.transpose(1, 2, 0)
    keras_trainer.critic = lambda x, training=True: keras.ops.sum(x * w_nhwc, axis=(1, 2, 3))[:, None]
    keras_gp = keras_trainer.penalty(*(x.transpose(0, 2, 3, 1) for x in (real, fake, alpha)), one_hot)
    assert float(torch_gp.detach()) == pytest.approx(expected, rel=1e-12)
    assert float(keras_gp) == pytest.approx(expected, rel=1e-12)


def batch(backend, batch_size=4):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (batch_size, 1, 16, 16)).astype(np.float32)
    one_hot = np.eye(SMALL.num_classes, dtype=np.float32)[rng.integers(0, SMALL.num_classes, batch_size)]
    if backend == "torch":
        return torch.from_numpy(images), torch.from_numpy(one_hot)
    return tf.constant(images.transpose(0, 2, 3, 1)), tf.constant(one_hot)


def test_one_step_torch():
    trainer = torch_cgan.CGAN(SMALL, seed=1)
    logs = trainer.train_step(batch("torch"))
    assert sorted(logs) == ["c_gp", "c_loss", "c_wass_loss", "g_loss"]
    assert all(np.isfinite(float(v)) for v in logs.values())


def test_one_step_keras():
    trainer = keras_cgan.CGAN(SMALL, seed=1)
    trainer.compile()
    logs = trainer.train_step(batch("keras"))
    assert sorted(logs) == ["c_gp", "c_loss", "c_wass_loss", "g_loss"]
    assert all(np.isfinite(float(v)) for v in logs.values())


TINY = ["--dataset", "fake", "--image-size", "16", "--width", "4", "--latent-dim", "8", "--batch-size", "32",
        "--epochs", "1", "--quiet"]


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_cli_trains_and_samples_chosen_classes(backend, tmp_path, capsys):
    run = tmp_path / "run"
    assert BACKENDS[backend].main(["train", "cgan", *TINY, "--out", str(run)]) == 0
    grid = np.asarray(Image.open(run / "samples" / "epoch_0001.png"))
    assert grid.shape == (10 * 18 + 2, 8 * 18 + 2)  # one row per class of `fake` (10), 8 columns of 16 px
    assert BACKENDS[backend].main(["sample", "cgan", "--checkpoint", str(run), "--label", "3", "--num", "4",
                                   "--out", str(tmp_path / "three.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "three.png")).shape == (2 * 18 + 2, 2 * 18 + 2)
    capsys.readouterr()
    assert BACKENDS[backend].main(["sample", "cgan", "--checkpoint", str(run), "--label", "10",
                                   "--out", str(tmp_path / "ten.png")]) == 2
    err = capsys.readouterr().err
    assert "no class '10': this model knows 10 classes: 0 (0)" in err and "Traceback" not in err
    assert not (tmp_path / "ten.png").exists()
