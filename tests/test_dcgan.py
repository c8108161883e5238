"""DCGAN networks and train steps, each backend on its own: book shapes, one-step smoke tests."""

import dataclasses

import numpy as np
import pytest
import torch

import keras_impl.dcgan as keras_dcgan  # keras_impl imports torch before TensorFlow
import torch_impl.dcgan as torch_dcgan
from specs.models import get_config

BOOK = get_config("dcgan", "book")
SMALL = dataclasses.replace(get_config("dcgan", "digits"), width=8, image_size=16, latent_dim=16)

# The book's LEGO DCGAN at 64x64x1, layer by layer, in Keras layout (N, H, W, C).
BOOK_GENERATOR_SHAPES = [
    ("reshape", (1, 1, 100)),
    ("conv1", (4, 4, 512)), ("bn1", (4, 4, 512)), ("act1", (4, 4, 512)),
    ("conv2", (8, 8, 256)), ("bn2", (8, 8, 256)), ("act2", (8, 8, 256)),
    ("conv3", (16, 16, 128)), ("bn3", (16, 16, 128)), ("act3", (16, 16, 128)),
    ("conv4", (32, 32, 64)), ("bn4", (32, 32, 64)), ("act4", (32, 32, 64)),
    ("conv5", (64, 64, 1)), ("tanh", (64, 64, 1)),
]
BOOK_DISCRIMINATOR_SHAPES = [
    ("conv1", (32, 32, 64)), ("act1", (32, 32, 64)), ("drop1", (32, 32, 64)),
    ("conv2", (16, 16, 128)), ("bn2", (16, 16, 128)), ("act2", (16, 16, 128)), ("drop2", (16, 16, 128)),
    ("conv3", (8, 8, 256)), ("bn3", (8, 8, 256)), ("act3", (8, 8, 256)), ("drop3", (8, 8, 256)),
    ("conv4", (4, 4, 512)), ("bn4", (4, 4, 512)), ("act4", (4, 4, 512)), ("drop4", (4, 4, 512)),
    ("conv5", (1, 1, 1)), ("flatten", (1,)),
]


def torch_shapes(network, x):
    shapes = []
    network.eval()
    with torch.no_grad():
        for name, layer in network.named_children():
            x = layer(x)
            shape = tuple(x.shape[1:])
            shapes.append((name, shape[1:] + shape[:1] if len(shape) == 3 else shape))
    return shapes


@pytest.mark.parametrize("network", ["Generator", "Discriminator"])
def test_book_shapes_torch(network):
    expected = BOOK_GENERATOR_SHAPES if network == "Generator" else BOOK_DISCRIMINATOR_SHAPES
    x = torch.zeros(2, 100) if network == "Generator" else torch.zeros(2, 1, 64, 64)
    assert torch_shapes(getattr(torch_dcgan, network)(BOOK), x) == expected


@pytest.mark.parametrize("network", ["Generator", "Discriminator"])
def test_book_shapes_keras(network):
    expected = BOOK_GENERATOR_SHAPES if network == "Generator" else BOOK_DISCRIMINATOR_SHAPES
    model = getattr(keras_dcgan, network)(BOOK)
    assert [(layer.name, tuple(layer.output.shape[1:])) for layer in model.layers] == expected


def test_book_parameter_counts_agree():
    torch_nets = (torch_dcgan.Generator(BOOK), torch_dcgan.Discriminator(BOOK))
    keras_nets = (keras_dcgan.Generator(BOOK), keras_dcgan.Discriminator(BOOK))
    torch_counts = [sum(p.numel() for p in net.parameters()) for net in torch_nets]
    keras_counts = [sum(int(np.prod(v.shape)) for v in net.trainable_weights) for net in keras_nets]
    assert torch_counts == keras_counts == [3_574_656, 2_763_520]  # no biases anywhere in the book DCGAN


@pytest.mark.parametrize("order", ["simultaneous", "alternating"])
def test_one_step_torch(order):
    config = dataclasses.replace(SMALL, update_order=order)
    trainer = torch_dcgan.DCGAN(config, seed=1)
    before = [p.detach().clone() for p in trainer.parameters()]
    logs = trainer.train_step(torch.rand(4, 1, 16, 16) * 2 - 1)
    assert sorted(logs) == ["d_fake", "d_loss", "d_real", "g_loss"]
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert all(not torch.equal(a, b) for a, b in zip(before, trainer.parameters()))


@pytest.mark.parametrize("order", ["simultaneous", "alternating"])
def test_one_step_keras(order):
    config = dataclasses.replace(SMALL, update_order=order)
    trainer = keras_dcgan.DCGAN(config, seed=1)
    trainer.compile()
    before = [v.numpy().copy() for v in trainer.trainable_variables]
    logs = trainer.train_step(np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 1)).astype("float32"))
    assert sorted(logs) == ["d_fake", "d_loss", "d_real", "g_loss"]
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert all(not np.array_equal(a, b.numpy()) for a, b in zip(before, trainer.trainable_variables))


@pytest.mark.parametrize("backend", [torch_dcgan, keras_dcgan])
def test_label_targets(backend):
    noise = np.full((2, 3, 1), 0.5)
    book = dataclasses.replace(SMALL, book_label_noise=True, label_noise=0.1)
    inside = dataclasses.replace(SMALL, book_label_noise=False, label_noise=0.1)
    as_input = torch.from_numpy(noise) if backend is torch_dcgan else noise
    real, fake = (np.asarray(t) for t in backend.label_targets(as_input, book))
    np.testing.assert_allclose([real.max(), fake.min()], [1.05, -0.05])  # the book: outside [0, 1]
    real, fake = (np.asarray(t) for t in backend.label_targets(as_input, inside))
    np.testing.assert_allclose([real.max(), fake.min()], [0.95, 0.05])  # the default: inside [0, 1]


def test_losses_from_logits_are_stable():
    logits = np.array([[30.0], [-30.0]])
    targets = np.array([[0.0], [1.0]])
    torch_loss = float(torch_dcgan.binary_crossentropy(torch.from_numpy(targets), torch.from_numpy(logits)))
    keras_loss = float(keras_dcgan.binary_crossentropy(targets, logits))
    assert torch_loss == pytest.approx(30.0) and keras_loss == pytest.approx(30.0)  # no clipping at 1e-7 or -100


def test_the_books_sigmoid_then_bce_is_the_logits_loss():
    """The book ends its discriminator in a sigmoid and takes BCE on the probabilities; ours returns the logit and
    takes BCE from logits. Keras reads a Keras sigmoid's output through its logit, so the two are one loss; only
    plain probabilities, which Keras clips to [1e-7, 1 - 1e-7], saturate (the README's table of deviations)."""
    import keras

    logits = np.array([[0.5], [5.0], [16.0], [30.0]])
    targets = np.zeros_like(logits)
    ours = keras.ops.convert_to_numpy(keras.losses.binary_crossentropy(targets, logits, from_logits=True))
    books = keras.ops.convert_to_numpy(keras.losses.binary_crossentropy(
        targets, keras.activations.sigmoid(keras.ops.convert_to_tensor(logits))))
    plain = keras.ops.convert_to_numpy(keras.losses.binary_crossentropy(targets, 1 / (1 + np.exp(-logits))))
    torch_book = torch.nn.functional.binary_cross_entropy(torch.sigmoid(torch.from_numpy(logits)),
                                                          torch.from_numpy(targets), reduction="none").numpy().ravel()
    np.testing.assert_allclose(books, ours, rtol=1e-12)
    np.testing.assert_allclose(ours, [0.974077, 5.006715, 16.0, 30.0], rtol=1e-6)
    np.testing.assert_allclose(torch_book, ours, rtol=1e-4)  # torch's BCELoss: 30.001 at logit 30
    assert plain[-1] == pytest.approx(16.118, abs=1e-3) and plain[:3] == pytest.approx(ours[:3], rel=1e-6)
