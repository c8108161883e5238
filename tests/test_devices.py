"""--device and --precision in both command lines, on this CPU machine: explicit cpu, auto, a GPU refused in one
line, bfloat16 (and float16) runs of every model, what mixed precision computes in float32 and what it writes, and
the loss scaling of float16 combined with the trainers' own gradients and optimisers.

Runs are in-process (`<backend>_impl.train.main`) on the `fake` data set with tiny models (16x16, width 4).
"""


import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch

import keras_impl.checkpoint as keras_checkpoint
import keras_impl.train as keras_train
import parity.__main__ as parity_main
import torch_impl.checkpoint as torch_checkpoint
import torch_impl.train as torch_train
from keras_impl import devices as keras_devices
from keras_impl.trainers import build_trainer as build_keras_trainer
from parity import checks
from specs.models import get_config
from specs.runs import sample_inputs
from torch_impl import devices as torch_devices
from torch_impl.trainers import build_trainer as build_torch_trainer

BACKENDS = {"torch": torch_train, "keras": keras_train}
CHECKPOINTS = {"torch": torch_checkpoint, "keras": keras_checkpoint}
TINY = ["--dataset", "fake", "--image-size", "16", "--width", "4", "--latent-dim", "8", "--batch-size", "64"]
TINY_CONFIG = {"image_size": 16, "width": 4, "latent_dim": 8, "batch_size": 8}
ONE_EPOCH = ["--batch-size", "128", "--quiet"]  # fake's 256 images: 2 steps


def train(backend: str, model: str, out, *flags: str, epochs: int = 1) -> int:
    argv = ["train", model, *TINY, "--epochs", str(epochs), "--out", str(out), "--cache-dir", str(out.parent / "c"),
            *flags]
    return BACKENDS[backend].main(argv)


def last_losses(run) -> dict[str, float]:
    header, *rows = (run / "losses.csv").read_text().splitlines()
    return dict(zip(header.split(","), map(float, rows[-1].split(","))))


@pytest.fixture(params=list(BACKENDS))
def backend(request) -> str:
    return request.param


# ------------------------------------------------------------------------------------------------------ Devices


def test_explicit_cpu_trains_and_says_where(backend, tmp_path, capsys):
    assert train(backend, "dcgan", tmp_path / "run", "--device", "cpu") == 0
    err = capsys.readouterr().err
    where = {"torch": "training on cpu (", "keras": "training on /CPU:0 in float32"}[backend]
    assert where in err
    assert (tmp_path / "run" / CHECKPOINTS[backend].CHECKPOINT).is_file()


def test_auto_is_the_cpu_here():
    assert not torch.cuda.is_available() and not tf.config.list_physical_devices("GPU")  # this machine
    assert torch_devices.select_device("auto") == torch.device("cpu")
    assert keras_devices.select_device("auto") == "/CPU:0"


@pytest.mark.parametrize("word", ["cuda", "cuda:1", "mps"])
def test_a_missing_gpu_is_one_line_and_writes_nothing(backend, word, tmp_path, capsys):
    assert train(backend, "dcgan", tmp_path / "run", "--device", word) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"gan-{backend}: error: --device {word}: ") and "--device cpu" in lines[0]
    assert not (tmp_path / "run").exists()


def test_sample_refuses_a_missing_gpu_too(backend, tmp_path, capsys):
    argv = ["sample", "dcgan", "--checkpoint", str(tmp_path), "--device", "cuda", "--out", str(tmp_path / "x.png")]
    assert BACKENDS[backend].main(argv) == 2
    assert "--device cuda: " in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_an_unknown_device_word_is_refused_by_the_parser(backend, capsys):
    with pytest.raises(SystemExit) as exit_info:
        BACKENDS[backend].main(["train", "dcgan", "--device", "gpu"])
    assert exit_info.value.code == 2
    assert "expected auto, cpu, cuda, cuda:N or mps, got 'gpu'" in capsys.readouterr().err


def test_parity_checks_refuse_a_missing_gpu_and_run_without_tf32(capsys):
    assert parity_main.main(["check", "dcgan", "--device", "cuda"]) == 2
    assert "gan-parity: error: --device cuda: " in capsys.readouterr().err
    torch.backends.cuda.matmul.allow_tf32 = True
    tf.config.experimental.enable_tensor_float_32_execution(True)
    config = get_config("dcgan", "digits", **TINY_CONFIG)
    [result] = checks.run_checks("dcgan", config, "float32", batch_size=4, checks=("losses",))
    assert result.passed
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert not tf.config.experimental.tensor_float_32_execution_enabled()


# ---------------------------------------------------------------------------------------------------- Precision


@pytest.mark.parametrize("preset", ["pytorch-gan-mlp", "face32"])
def test_a_published_generator_draws_its_bfloat16_grid_in_float32(preset):
    """Keras draws a mixed-precision run's grids from a float32 copy of the run's own generator class (a published
    network here, not the book's generator, whose weights would not fit)."""
    config = get_config("published", preset)
    trainer = build_keras_trainer("published", config, precision="bfloat16")
    images = keras_checkpoint.generate(trainer, sample_inputs(config, seed=0, count=4))
    assert images.dtype == np.float32 and np.isfinite(images).all()
    assert images.shape == (4, config.image_size, config.image_size, config.channels)


@pytest.mark.parametrize("model", ["dcgan", "wgan_gp", "cgan"])
def test_bfloat16_trains_an_epoch_with_finite_losses(backend, model, tmp_path):
    run = tmp_path / "run"
    assert train(backend, model, run, "--precision", "bfloat16", *ONE_EPOCH) == 0
    losses = last_losses(run)
    assert all(np.isfinite(value) for value in losses.values()), losses
    state = CHECKPOINTS[backend].load_checkpoint(run / CHECKPOINTS[backend].CHECKPOINT)
    assert state["meta"]["precision"] == "bfloat16"
    tensors = state["networks"].values() if backend == "torch" else state["arrays"].values()
    assert {str(tensor.dtype).replace("torch.", "") for tensor in tensors} <= {"float32", "int64", "uint32"}
    assert (run / "samples" / "epoch_0001.png").is_file()


def test_mixed_networks_compute_low_and_return_float32():
    """Under bfloat16 the layers compute in bfloat16, the outputs (images, logits, scores) and the penalty's inner
    gradient are float32, in both backends; the sample grid is drawn in float32 (equal to a float32 trainer's)."""
    config = get_config("cgan", "digits", **TINY_CONFIG, num_classes=3)
    z = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    one_hot = np.eye(3, dtype=np.float32)[np.arange(8) % 3]
    images = np.random.default_rng(1).uniform(-1, 1, (8, 1, 16, 16)).astype(np.float32)
    mixed, plain = (build_torch_trainer("cgan", config, precision=p) for p in ("bfloat16", "float32"))
    mixed.train()
    seen = []
    hook = mixed.critic.conv2.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    fake = mixed.generate(torch.from_numpy(z), torch.from_numpy(one_hot))
    scores = mixed.score(torch.from_numpy(images), torch.from_numpy(one_hot))
    penalty = mixed.penalty(torch.from_numpy(images), fake.detach(), torch.full((8, 1, 1, 1), 0.5),
                            torch.from_numpy(one_hot))
    hook.remove()
    assert seen[0] == torch.bfloat16 and fake.dtype == scores.dtype == penalty.dtype == torch.float32
    keras_mixed = build_keras_trainer("cgan", config, precision="bfloat16")
    assert keras_mixed.critic.get_layer("conv2").compute_dtype == "bfloat16"
    keras_fake = keras_mixed.generate(z, one_hot)
    keras_scores = keras_mixed.score(np.moveaxis(images, 1, -1), one_hot)
    with tf.GradientTape():
        keras_penalty = keras_mixed.penalty(np.moveaxis(images, 1, -1), keras_fake, np.full((8, 1, 1, 1), 0.5,
                                                                                             np.float32), one_hot)
    assert keras_fake.dtype == keras_scores.dtype == keras_penalty.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the policy is set for the building only
    # samples in float32: the mixed trainer's grid equals that of a float32 trainer holding the same weights
    grid_inputs = sample_inputs(config, seed=0, count=8)
    plain.load_state_dict(mixed.state_dict())
    assert np.array_equal(torch_checkpoint.generate(mixed, grid_inputs), torch_checkpoint.generate(plain, grid_inputs))
    keras_plain = build_keras_trainer("cgan", config)
    keras_plain.set_weights(keras_mixed.get_weights())
    assert np.array_equal(keras_checkpoint.generate(keras_mixed, grid_inputs),
                          keras_checkpoint.generate(keras_plain, grid_inputs))


def test_float16_scales_the_loss_and_a_run_resumes_in_another_precision(backend, tmp_path):
    """float16 keeps a dynamic loss scale per optimiser in the checkpoint; the run resumes in bfloat16 (the scale
    is dropped; the other way round, a scale starts afresh), with finite losses throughout."""
    run = tmp_path / "run"
    assert train(backend, "wgan_gp", run, "--precision", "float16", *ONE_EPOCH) == 0
    state = CHECKPOINTS[backend].load_checkpoint(run / CHECKPOINTS[backend].CHECKPOINT)
    if backend == "torch":
        scale = state["optimizers"]["c_optimizer"]["loss_scale"]["scale"]
    else:
        scale = float(state["arrays"]["optimizers/c_optimizer/dynamic_scale"])
    assert 1 <= scale <= 2.0**16  # started at 2^16, halved at each non-finite step
    other = "keras" if backend == "torch" else "torch"  # gan-parity convert carries it (the loss scale stays behind)
    converted = tmp_path / "converted" / CHECKPOINTS[other].CHECKPOINT
    assert parity_main.main(["convert", str(run), "--to", other, "--out", str(converted)]) == 0
    assert CHECKPOINTS[other].load_checkpoint(converted)["meta"]["precision"] == "float16"
    assert train(backend, "wgan_gp", run, "--precision", "bfloat16", "--resume", *ONE_EPOCH, epochs=2) == 0
    losses = last_losses(run)
    assert losses["epoch"] == 2 and all(np.isfinite(value) for value in losses.values()), losses


# -------------------------------------------------------------------------------------------------- Loss scaling


def wgan_gp_step_inputs(config):
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (8, 1, 16, 16)).astype(np.float32)
    z = rng.standard_normal((config.critic_steps + 1, 8, config.latent_dim)).astype(np.float32)
    alpha = rng.uniform(0, 1, (config.critic_steps, 8, 1, 1, 1)).astype(np.float32)
    return real, z, alpha


def test_torch_loss_scaling_takes_the_unscaled_keras_rule_steps():
    """Loss scaling around the autograd.grad trainers and the Keras-rule Adam: with a power-of-two scale, a float32
    WGAN-GP step (the penalty's double backward included) gives bit-identical weights and moments with and
    without it; a non-finite gradient skips the step (weights, moments and step count unchanged) and halves the
    scale, as Keras's LossScaleOptimizer does."""
    config = get_config("wgan_gp", "digits", **TINY_CONFIG, dropout=0.0)  # no masks: the same step twice
    real, z, alpha = (torch.from_numpy(array) for array in wgan_gp_step_inputs(config))
    plain, scaled = build_torch_trainer("wgan_gp", config), build_torch_trainer("wgan_gp", config)
    for name in ("c_optimizer", "g_optimizer"):
        getattr(scaled, name).loss_scale = True
    for trainer in (plain, scaled):
        trainer.train()
        trainer.train_step(real, z=z, alpha=alpha)
    assert scaled.c_optimizer.grad_scaler.get_scale() == 2.0**16
    for name, value in plain.state_dict().items():
        assert torch.equal(value, scaled.state_dict()[name]), name
    for name in ("c_optimizer", "g_optimizer"):
        for key, state in getattr(plain, name).state_dict()["state"].items():
            for field, value in state.items():
                assert torch.equal(value, getattr(scaled, name).state_dict()["state"][key][field]), (name, field)
    before = {name: value.clone() for name, value in scaled.state_dict().items()}
    scaled.train_step(real.fill_(float("inf")), z=z, alpha=alpha)
    assert scaled.c_optimizer.grad_scaler.get_scale() == 2.0**16 / 2**config.critic_steps
    assert all(torch.equal(value, before[f"critic.{name}"]) for name, value in scaled.critic.state_dict().items())
    assert int(next(iter(scaled.c_optimizer.state.values()))["step"]) == config.critic_steps  # the first step's


def test_keras_loss_scaling_takes_the_unscaled_steps():
    """The same for Keras: a LossScaleOptimizer around each Adam, the losses scaled inside the tapes
    (`optimizer.scale_loss`), gives weights identical to the plain Adam's after a WGAN-GP step."""
    config = get_config("wgan_gp", "digits", **TINY_CONFIG, dropout=0.0)
    real, z, alpha = wgan_gp_step_inputs(config)
    real = np.moveaxis(real, 1, -1)
    plain = build_keras_trainer("wgan_gp", config)
    scaled = build_keras_trainer("wgan_gp", config)
    scaled.compile(c_optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(
        config.learning_rate, np.float64(config.beta_1), np.float64(config.beta_2), config.adam_epsilon)),
        g_optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(
            config.learning_rate, np.float64(config.beta_1), np.float64(config.beta_2), config.adam_epsilon)))
    for trainer in (plain, scaled):
        trainer.train_step(tf.constant(real), z=tf.constant(z), alpha=tf.constant(alpha))
    for variable, other in zip(plain.critic.variables + plain.generator.variables,
                               scaled.critic.variables + scaled.generator.variables):
        assert np.array_equal(variable.numpy(), other.numpy()), variable.path
    assert float(scaled.c_optimizer.dynamic_scale) == 2.0**15  # Keras's initial scale, unchanged


@pytest.mark.slow  # the GPU check's own processes: .ci/run runs it after make test
def test_the_gpu_check_stops_at_once_without_a_gpu():
    """`make gpu-check` on a machine without CUDA: one line naming what is missing, status 2, nothing written."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHON=sys.executable, GPU_CHECK_OUT=str(root / "runs" / "gpu-check-never-written"))
    done = subprocess.run([str(root / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("gpu-check: error: torch "), done.stderr
    assert "sees no CUDA GPU" in done.stderr and "TensorFlow" in done.stderr
    assert not Path(env["GPU_CHECK_OUT"]).exists()
