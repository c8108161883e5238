"""The torch trainers' Adam steps by Keras's rule, and the trainer that `gan-torch train` builds is the one the parity
checks prove: same construction, same optimiser, no hook, identical steps."""

import dataclasses
import io

import keras
import numpy as np
import pytest
import torch
import torch.optim.optimizer as torch_optimizer

import torch_impl.loop
import torch_impl.train as torch_train
from parity import checks
from specs.models import get_config
from torch_impl.optim import Adam

TINY = ["--dataset", "fake", "--image-size", "16", "--width", "4", "--latent-dim", "8", "--batch-size", "32"]


def gradients(steps: int, size: int = 64, scale: float = 1e-6) -> np.ndarray:
    """Small gradients, where epsilon is a large part of a step and the two rules differ most."""
    return np.random.default_rng(0).standard_normal((steps, size)) * scale


def torch_weights_after(optimizer_class, grads: np.ndarray, **options) -> np.ndarray:
    weight = torch.nn.Parameter(torch.ones(grads.shape[1], dtype=torch.float64))
    optimizer = optimizer_class([weight], lr=2e-4, betas=(0.5, 0.999), **options)
    for grad in grads:
        weight.grad = torch.from_numpy(grad)
        optimizer.step()
    return weight.detach().numpy()


def keras_weights_after(grads: np.ndarray) -> np.ndarray:
    with checks.keras_dtype("float64"):
        weight = keras.Variable(np.ones(grads.shape[1]), dtype="float64")
        optimizer = keras.optimizers.Adam(2e-4, beta_1=np.float64(0.5), beta_2=np.float64(0.999), epsilon=1e-7)
        for grad in grads:
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(grad), weight)])
    return keras.ops.convert_to_numpy(weight)


def test_adam_takes_keras_steps_and_plain_torch_adam_does_not():
    grads = gradients(50)
    ours = torch_weights_after(Adam, grads, epsilon=1e-7)
    plain = torch_weights_after(torch.optim.Adam, grads, eps=1e-7)  # the same number, torch's placement
    reference = keras_weights_after(grads)
    movement = np.abs(reference - 1).max()
    assert np.abs(ours - reference).max() <= 1e-15 * movement + 1e-18
    assert np.abs(plain - reference).max() > 0.01 * movement  # where epsilon enters matters at small gradients


def test_adam_state_dict_round_trips_and_keeps_its_epsilon():
    grads = gradients(3)
    weight = torch.nn.Parameter(torch.ones(grads.shape[1], dtype=torch.float64))
    optimizer = Adam([weight], lr=2e-4, betas=(0.5, 0.999), epsilon=1e-7)
    for grad in grads[:2]:
        weight.grad = torch.from_numpy(grad)
        optimizer.step()
    other_weight = torch.nn.Parameter(weight.detach().clone())
    other = Adam([other_weight], lr=2e-4, betas=(0.5, 0.999), epsilon=1e-7)
    saved = io.BytesIO()
    torch.save(optimizer.state_dict(), saved)  # as a checkpoint holds it (a state_dict shares the live tensors)
    saved.seek(0)
    other.load_state_dict(torch.load(saved, weights_only=True))
    for param, opt in ((weight, optimizer), (other_weight, other)):
        param.grad = torch.from_numpy(grads[2])
        opt.step()
    assert torch.equal(weight, other_weight)
    assert other.epsilon == 1e-7


def test_adam_refuses_parameters_at_different_steps():
    first, second = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = Adam([first, second], lr=1e-3, betas=(0.5, 0.999), epsilon=1e-7)
    first.grad = torch.ones(2)
    optimizer.step()  # second had no gradient: it stays at step 0
    second.grad = torch.ones(2)
    with pytest.raises(ValueError, match="different steps"):
        optimizer.step()


def test_the_cli_trainer_and_the_checks_trainer_take_identical_steps(tmp_path, monkeypatch):
    """`gan-torch train` builds its trainer; `fit` is intercepted to keep that very object, untrained. The parity
    harness builds its own from the same configuration and seed: same weights, same optimiser class and settings,
    no hook on either, and one train step on the same inputs gives bit-identical weights and Adam moments."""
    captured = []
    monkeypatch.setattr(torch_impl.loop.Trainer, "fit", lambda self, *args, **kwargs: captured.append(self) or {})
    assert torch_train.main(["train", "dcgan", *TINY, "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    [cli_trainer] = captured
    harness = checks.Harness("dcgan", cli_trainer.config, "float32", batch_size=4, seed=0)
    checks_trainer = harness.torch_trainer
    assert (cli_trainer.config.image_size, cli_trainer.config.width, cli_trainer.config.latent_dim) == (16, 4, 8)
    for name, value in cli_trainer.state_dict().items():
        assert torch.equal(value, checks_trainer.state_dict()[name]), name
    for name in ("d_optimizer", "g_optimizer"):
        ours, theirs = getattr(cli_trainer, name), getattr(checks_trainer, name)
        assert type(ours) is type(theirs) is Adam
        assert [{k: v for k, v in g.items() if k != "params"} for g in ours.param_groups] == \
               [{k: v for k, v in g.items() if k != "params"} for g in theirs.param_groups]
        assert not ours._optimizer_step_pre_hooks and not theirs._optimizer_step_pre_hooks
        assert not ours._optimizer_step_post_hooks and not theirs._optimizer_step_post_hooks
    assert not torch_optimizer._global_optimizer_pre_hooks and not torch_optimizer._global_optimizer_post_hooks
    real, noise = harness.real_batch(), harness.step_inputs()
    for trainer in (cli_trainer, checks_trainer):
        torch.manual_seed(1)  # the same dropout masks (torch's global generator draws them)
        trainer.train()
        trainer.train_step(torch.from_numpy(real), **{key: torch.from_numpy(value) for key, value in noise.items()})
    for name, value in cli_trainer.state_dict().items():
        assert torch.equal(value, checks_trainer.state_dict()[name]), name
    for name in ("d_optimizer", "g_optimizer"):
        ours, theirs = getattr(cli_trainer, name).state_dict(), getattr(checks_trainer, name).state_dict()
        for key, state in ours["state"].items():
            for field, value in state.items():
                assert torch.equal(value, theirs["state"][key][field]), (name, key, field)


def test_the_trajectory_check_passes_with_the_production_optimiser_alone():
    """Nothing patches torch's optimiser any more: the trajectory agrees with the configured epsilon, and with
    torch's own Adam in its place (the old unpatched state of affairs) it does not."""
    config = dataclasses.replace(get_config("wgan_gp", "digits"), width=8)
    [clean] = checks.run_checks("wgan_gp", config, "float64", batch_size=4, checks=("trajectory",))
    assert clean.passed and clean.max_scaled_diff <= 1e-10

    def plain_torch_adam(h):
        for name in ("g_optimizer", "c_optimizer"):
            group = getattr(h.torch_trainer, name).param_groups[0]
            setattr(h.torch_trainer, name, torch.optim.Adam(group["params"], lr=group["lr"], betas=group["betas"],
                                                            eps=h.config.adam_epsilon))

    [bugged] = checks.run_checks("wgan_gp", config, "float64", batch_size=4, checks=("trajectory",),
                                 mutate=plain_torch_adam)
    assert not bugged.passed and bugged.max_scaled_diff > 1e-6
