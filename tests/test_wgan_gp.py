"""WGAN-GP: the gradient penalty's mathematics in both frameworks, book shapes, one-step smoke tests."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import keras_impl.wgan_gp as keras_wgan
import torch_impl.wgan_gp as torch_wgan
from specs.models import get_config

BOOK = get_config("wgan_gp", "book")
SMALL = dataclasses.replace(get_config("wgan_gp", "digits"), width=8, image_size=16, latent_dim=16)
EPSILON = BOOK.gp_epsilon


def torch_linear_critic(w):
    """f(x) = <w, x> per sample; w of shape (C, H, W)."""
    return lambda x: (x * w).sum(dim=(1, 2, 3)).unsqueeze(1)


def keras_linear_critic(w):
    """f(x) = <w, x> per sample; w of shape (H, W, C)."""
    return lambda x, training=False: keras.ops.sum(x * w, axis=(1, 2, 3))[:, None]


def penalty_inputs(seed, shape=(2, 3, 4, 5)):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape), rng.normal(size=shape), rng.uniform(size=(shape[0], 1, 1, 1))


@settings(max_examples=25, deadline=None)
@given(w=arrays(np.float64, (3, 4, 5), elements=st.floats(-2, 2)), seed=st.integers(0, 2**16))
def test_penalty_of_a_linear_critic_is_norm_minus_one_squared(w, seed):
    real, fake, alpha = penalty_inputs(seed)
    expected = (np.sqrt(np.sum(w**2) + EPSILON) - 1) ** 2
    torch_gp = torch_wgan.gradient_penalty(torch_linear_critic(torch.from_numpy(w)), *map(torch.from_numpy,
                                           (real, fake, alpha)), EPSILON)
    as_nhwc = [x.transpose(0, 2, 3, 1) for x in (real, fake, alpha)]
    keras_gp = keras_wgan.gradient_penalty(keras_linear_critic(w.transpose(1, 2, 0)), *as_nhwc, EPSILON)
    assert float(torch_gp) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert float(keras_gp) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # The epsilon inside the square root moves the norm by at most sqrt(epsilon) = 1e-6 (at w = 0).
    assert float(torch_gp) == pytest.approx((np.linalg.norm(w) - 1) ** 2, abs=2 * np.sqrt(EPSILON))


def test_penalty_is_zero_gradient_safe():
    real, fake, alpha = penalty_inputs(0)
    for epsilon, finite in ((EPSILON, True), (0.0, False)):  # without the epsilon, sqrt'(0) makes NaN
        w = torch.zeros(3, 4, 5, dtype=torch.float64, requires_grad=True)
        gp = torch_wgan.gradient_penalty(torch_linear_critic(w), *map(torch.from_numpy, (real, fake, alpha)), epsilon)
        (grad,) = torch.autograd.grad(gp, w)
        assert bool(torch.isfinite(grad).all()) is finite
        w_keras = tf.Variable(np.zeros((4, 5, 3)))
        with tf.GradientTape() as tape:
            gp_keras = keras_wgan.gradient_penalty(keras_linear_critic(w_keras),
                                                   *[x.transpose(0, 2, 3, 1) for x in (real, fake, alpha)], epsilon)
        assert bool(np.isfinite(tape.gradient(gp_keras, w_keras).numpy()).all()) is finite
        assert float(gp.detach()) == pytest.approx(1.0, abs=1e-5) and float(gp_keras) == pytest.approx(1.0, abs=1e-5)


@pytest.fixture(scope="module")
def trainers():
    torch_trainer = torch_wgan.WGANGP(SMALL, seed=3)
    keras_trainer = keras_wgan.WGANGP(SMALL, seed=3)
    keras_trainer.compile()
    book = dataclasses.replace(SMALL, alpha_distribution="normal")
    return torch_trainer, keras_trainer, torch_wgan.WGANGP(book), keras_wgan.WGANGP(book)


@settings(max_examples=10, deadline=None)
@given(batch_size=st.integers(1, 64))
def test_alpha_sampler_stays_in_unit_interval(trainers, batch_size):
    torch_trainer, keras_trainer, _, _ = trainers
    for trainer in (torch_trainer, keras_trainer):
        z, alpha = trainer.sample_noise(batch_size)
        alpha = np.asarray(alpha)
        assert alpha.shape == (SMALL.critic_steps, batch_size, 1, 1, 1)
        assert tuple(np.shape(z)) == (SMALL.critic_steps + 1, batch_size, SMALL.latent_dim)
        assert alpha.min() >= 0 and alpha.max() <= 1


def test_book_alpha_is_the_normal_distribution(trainers):
    _, _, torch_book, keras_book = trainers
    for trainer in (torch_book, keras_book):
        alpha = np.asarray(trainer.sample_noise(2000)[1])
        outside = np.mean((alpha < 0) | (alpha > 1))
        assert 0.6 < outside < 0.75  # N(0, 1) puts about 66% of its draws outside [0, 1]


BOOK_CRITIC_SHAPES = [
    ("conv1", (32, 32, 64)), ("act1", (32, 32, 64)),
    ("conv2", (16, 16, 128)), ("act2", (16, 16, 128)), ("drop2", (16, 16, 128)),
    ("conv3", (8, 8, 256)), ("act3", (8, 8, 256)), ("drop3", (8, 8, 256)),
    ("conv4", (4, 4, 512)), ("act4", (4, 4, 512)), ("drop4", (4, 4, 512)),
    ("conv5", (1, 1, 1)), ("flatten", (1,)),
]


def test_book_critic_and_generator_shapes():
    keras_critic = keras_wgan.Critic(BOOK)
    assert [(layer.name, tuple(layer.output.shape[1:])) for layer in keras_critic.layers] == BOOK_CRITIC_SHAPES
    assert tuple(keras_wgan.Generator(BOOK).outputs[0].shape) == (None, 64, 64, 3)
    torch_critic, x, shapes = torch_wgan.Critic(BOOK).eval(), torch.zeros(2, 3, 64, 64), []
    for name, layer in torch_critic.named_children():
        x = layer(x)
        shapes.append((name, tuple(x.shape[2:]) + tuple(x.shape[1:2]) if x.ndim == 4 else tuple(x.shape[1:])))
    assert shapes == BOOK_CRITIC_SHAPES
    assert tuple(torch_wgan.Generator(BOOK)(torch.zeros(2, 128)).shape) == (2, 3, 64, 64)


def test_book_critic_slopes_and_biases():
    """The book's quirk (Keras default 0.3 after conv2), biases on every critic conv, none on BatchNorm."""
    torch_critic, keras_critic = torch_wgan.Critic(BOOK), keras_wgan.Critic(BOOK)
    slopes = [0.2, 0.3, 0.2, 0.2]
    assert [round(m.negative_slope, 6) for m in torch_critic if isinstance(m, torch.nn.LeakyReLU)] == slopes
    assert [round(float(layer.negative_slope), 6) for layer in keras_critic.layers if "act" in layer.name] == slopes
    assert all(m.bias is not None for m in torch_critic if isinstance(m, torch.nn.Conv2d))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in torch_critic)
    assert torch_wgan.Generator(BOOK).conv5.bias is not None  # the generator's last convT keeps its bias


def test_one_step_torch():
    trainer = torch_wgan.WGANGP(SMALL, seed=1)
    before = [p.detach().clone() for p in trainer.parameters()]
    logs = trainer.train_step(torch.rand(4, 1, 16, 16) * 2 - 1)
    assert sorted(logs) == ["c_gp", "c_loss", "c_wass_loss", "g_loss"]
    assert all(np.isfinite(float(v)) for v in logs.values())
    unchanged = [name for (name, p), b in zip(trainer.named_parameters(), before) if torch.equal(p, b)]
    # The Wasserstein loss is blind to a shift of every score, and the penalty to any bias of the last layer:
    # the critic's output bias gets an exactly zero gradient, so Adam never moves it.
    assert unchanged == [f"critic.conv{SMALL.num_blocks + 1}.bias"]


def test_one_step_keras():
    trainer = keras_wgan.WGANGP(SMALL, seed=1)
    trainer.compile()
    before = [v.numpy().copy() for v in trainer.trainable_variables]
    logs = trainer.train_step(np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 1)).astype("float32"))
    assert sorted(logs) == ["c_gp", "c_loss", "c_wass_loss", "g_loss"]
    assert all(np.isfinite(float(v)) for v in logs.values())
    unchanged = [v.path for a, v in zip(before, trainer.trainable_variables) if np.array_equal(a, v.numpy())]
    assert unchanged == [f"critic/conv{SMALL.num_blocks + 1}/bias"]
    assert int(trainer.c_optimizer.iterations) == SMALL.critic_steps and int(trainer.g_optimizer.iterations) == 1


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_cli_trains_one_epoch_on_fake(backend, tmp_path):
    import keras_impl.train as keras_train
    import torch_impl.train as torch_train

    main = {"torch": torch_train.main, "keras": keras_train.main}[backend]
    run = tmp_path / "run"
    flags = ["--dataset", "fake", "--image-size", "16", "--width", "4", "--latent-dim", "8", "--batch-size", "64",
             "--epochs", "1", "--quiet", "--out", str(run)]
    assert main(["train", "wgan_gp", *flags]) == 0
    header, row = (run / "losses.csv").read_text().splitlines()
    assert header == "epoch,step,c_gp,c_loss,c_wass_loss,g_loss" and row.startswith("1,4,")
    assert (run / "samples" / "epoch_0001.png").is_file() and (run / ("checkpoint.pt" if backend == "torch"
                                                                       else "checkpoint.npz")).is_file()
    assert (run / ("critic.pt" if backend == "torch" else "critic.weights.h5")).is_file()  # the network's own file


def test_the_penalty_epsilon_moves_a_real_critic_by_round_off_only():
    """The book's sqrt has no epsilon; ours adds 1e-12 inside it. On a digits critic (float64) the penalty and its
    gradient change at round-off level only (the README's table of deviations from the book)."""
    config = dataclasses.replace(get_config("wgan_gp", "digits"), width=8, dropout=0.0)
    torch.manual_seed(0)
    critic = torch_wgan.Critic(config).double()
    rng = np.random.default_rng(0)
    real, fake = (torch.from_numpy(rng.uniform(-1, 1, (8, 1, 32, 32))) for _ in range(2))
    alpha = torch.from_numpy(rng.uniform(0, 1, (8, 1, 1, 1)))
    parameters = [p for name, p in critic.named_parameters() if name.endswith("weight")]  # the biases: none (the
    # input gradient does not depend on them)
    penalties, gradients = [], []
    for epsilon in (config.gp_epsilon, 0.0):
        gp = torch_wgan.gradient_penalty(critic, real, fake, alpha, epsilon)
        penalties.append(float(gp))
        gradients.append(torch.autograd.grad(gp, parameters))
    assert abs(penalties[0] - penalties[1]) <= 1e-9 * abs(penalties[1])
    for ours, book in zip(*gradients):
        assert float((ours - book).abs().max()) <= 1e-8 * float(book.abs().max())


@pytest.mark.parametrize("model", ["wgan_gp", "cgan"])
def test_the_written_out_input_gradient_is_autograds(model, monkeypatch):
    """The penalty's input gradient is written out layer by layer (torch_impl/loop.py, input_gradient): the penalty
    and its gradient in every critic weight equal autograd's double backward's to round-off in float64, with dropout
    (the same masks) and, for the CGAN, the label planes held fixed."""
    from torch_impl.loop import Network
    from torch_impl.trainers import build_trainer

    config = dataclasses.replace(get_config(model, "digits"), width=8, image_size=16, latent_dim=16, dropout=0.3)
    trainer = build_trainer(model, config, seed=0).to(torch.float64).train()
    for module in trainer.critic.modules():  # slopes no float32 holds (on Keras's JAX and torch backends, the
        if isinstance(module, torch.nn.LeakyReLU):  # parity checks set the Python float): the masks must keep them
            module.negative_slope = float(np.float64(module.negative_slope) + 1e-9)
    generator = torch.Generator().manual_seed(1)
    real, fake = (torch.rand(6, 1, 16, 16, generator=generator, dtype=torch.float64) * 2 - 1 for _ in range(2))
    alpha = torch.rand(6, 1, 1, 1, generator=generator, dtype=torch.float64)
    labels = torch.eye(10, dtype=torch.float64)[torch.arange(6)] if model == "cgan" else None
    written = []
    monkeypatch.setattr(Network, "input_gradient", lambda self, x, original=Network.input_gradient: written.append(
        x.shape) or original(self, x))

    def penalty_and_gradients():
        torch.manual_seed(2)  # the same dropout masks
        gp = trainer.penalty(real, fake, alpha, labels)
        return [gp, *torch.autograd.grad(gp, list(trainer.critic.parameters()), allow_unused=True)]

    ours = penalty_and_gradients()
    assert written == [(6, 1 + (10 if labels is not None else 0), 16, 16)]  # the critic's own input, written out
    trainer.critic.written_out = lambda: False  # autograd's double backward
    theirs = penalty_and_gradients()
    assert len(written) == 1 and float(ours[0]) > 0
    for mine, autograd, param in zip(ours, theirs, [ours[0], *trainer.critic.parameters()]):
        mine, autograd = (torch.zeros_like(param) if grad is None else grad for grad in (mine, autograd))  # a bias:
        # the input gradient does not depend on it (autograd's double backward carries zeros to it)
        assert float((mine - autograd).abs().max()) <= 1e-12 * max(1.0, float(autograd.abs().max()))
