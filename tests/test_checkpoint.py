"""`gan-parity convert` (parity/checkpoint.py): a checkpoint of one backend serves the other, for all three models.

Each backend trains each model once for one epoch on the `fake` data set (16x16, width 4, latent 8: 4 batches of 64)
and every test reads those runs. The command runs in-process through `register` and `run`, on a parser of its own,
as `gan-parity` (parity/__main__.py) builds it.
"""

import argparse
import contextlib
import io
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import torch
from torch import nn

import keras_impl.checkpoint as keras_checkpoint  # conftest.py has imported torch first
import keras_impl.train as keras_train
import keras_impl.trainers as keras_trainers
import torch_impl.checkpoint as torch_checkpoint
import torch_impl.train as torch_train
import torch_impl.trainers as torch_trainers
from parity import checkpoint, checks
from specs.models import config_from_dict
from specs.runs import sample_inputs

BACKENDS = {"torch": torch_checkpoint, "keras": keras_checkpoint}  # each backend's checkpoint files
CLI = {"torch": torch_train, "keras": keras_train}
BUILD = {"torch": torch_trainers.build_trainer, "keras": keras_trainers.build_trainer}
MODELS = ["dcgan", "wgan_gp", "cgan"]  # the published models' files: tests/test_published.py
DIRECTIONS = [("keras", "torch"), ("torch", "keras")]
TINY = ["--dataset", "fake", "--image-size", "16", "--width", "4", "--latent-dim", "8", "--batch-size", "64",
        "--epochs", "1", "--quiet"]
STEPS = 256 // 64  # train steps in the epoch: fake_size // batch size

# --------------------------------------------------------------------------------------------------- Helpers


def convert(*argv: str) -> int:
    """`gan-parity convert ...`, with the parser that parity/__main__.py builds for this command."""
    parser = argparse.ArgumentParser(prog="gan-parity")
    checkpoint.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["convert", *map(str, argv)])
    return args.func(args)


def quietly(function, *args):
    """Call function(*args), keeping what it prints out of the calling test's capsys; return (result, printed)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        result = function(*args)
    return result, printed.getvalue()


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """trained(backend, model): the checkpoint file of a finished 1-epoch run, made once per session; read-only."""
    runs: dict[tuple[str, str], Path] = {}

    def get(backend: str, model: str) -> Path:
        if (backend, model) not in runs:
            out = tmp_path_factory.mktemp(f"trained-{backend}-{model}") / "run"
            argv = ["train", model, *TINY, "--cache-dir", str(out.parent / "cache"), "--out", str(out)]
            status, printed = quietly(CLI[backend].main, argv)
            assert status == 0, printed
            runs[backend, model] = out / BACKENDS[backend].CHECKPOINT
        return runs[backend, model]

    return get


@pytest.fixture(scope="session")
def converted(trained, tmp_path_factory):
    """converted(source, model): the checkpoint file of trained(source, model) converted to the other backend,
    written into a run folder of its own; read-only. converted.printed[source, model]: what the command printed."""
    files: dict[tuple[str, str], Path] = {}

    def get(source: str, model: str) -> Path:
        if (source, model) not in files:
            target = checkpoint.other(source)
            out = tmp_path_factory.mktemp(f"converted-{source}-{model}") / "run"
            status, printed = quietly(convert, trained(source, model), "--to", target, "--out", out)
            assert status == 0, printed
            files[source, model] = out / BACKENDS[target].CHECKPOINT
            get.printed[source, model] = printed
        return files[source, model]

    get.printed = {}  # what each conversion printed
    return get


def load(path: Path) -> tuple[str, dict]:
    backend = "torch" if path.suffix == ".pt" else "keras"
    return backend, BACKENDS[backend].load_checkpoint(path)


def trainer(path: Path):
    """The trainer of a checkpoint, networks, optimisers and RNG states restored (compiled, for Keras)."""
    backend, state = load(path)
    model = state["meta"]["model"]
    result = BUILD[backend](model, config_from_dict(model, state["meta"]["config"]))
    BACKENDS[backend].restore(result, state)
    return result


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gan-parity: error: "), err
    return lines[0]


# ---------------------------------------------------------------------------------------------- Sample


@pytest.mark.parametrize("source, target", DIRECTIONS, ids=[f"{s}-to-{t}" for s, t in DIRECTIONS])
@pytest.mark.parametrize("model", MODELS)
def test_converted_checkpoint_samples_the_same_images(model, source, target, trained, converted, tmp_path):
    """The target's generator, from the converted checkpoint, draws the source's images from the same z (and labels):
    float32 inference, within 1e-5. The target's own `sample` command reads the converted checkpoint."""
    images = {}
    for backend, path in ((source, trained(source, model)), (target, converted(source, model))):
        generator_of = trainer(path)
        inputs = sample_inputs(generator_of.config, seed=0)
        images[backend] = BACKENDS[backend].generate(generator_of, inputs)
    difference = float(np.max(np.abs(images[source] - images[target])))
    print(f"{model} {source} -> {target}: max |image difference| {difference:.3g} over {images[source].shape}")
    assert difference <= 1e-5
    grid = tmp_path / "grid.png"
    argv = ["sample", model, "--checkpoint", str(converted(source, model)), "--out", str(grid), "--num", "4"]
    assert quietly(CLI[target].main, argv)[0] == 0 and grid.stat().st_size > 0


# ----------------------------------------------------------------------------------------- Round trips


@pytest.mark.parametrize("model", MODELS)
def test_keras_round_trip_is_identical(model, trained, converted, tmp_path):
    """keras -> torch -> keras: every weight, running statistic, Adam moment and step count comes back as the same
    array (bytes and dtype); only the seed generators' states, which cannot travel, start afresh."""
    original = trained("keras", model)
    back = tmp_path / "back.npz"
    assert quietly(convert, converted("keras", model), "--to", "keras", "--out", back)[0] == 0
    (_, before), (_, after) = load(original), load(back)
    assert sorted(before["arrays"]) == sorted(after["arrays"])
    keras_trainer = trainer(back)
    rng = {key for key in before["arrays"] if key.endswith("/seed_generator_state")}
    assert len(rng) == 1 + sum(isinstance(layer, keras.layers.Dropout) for _, network in
                               keras_checkpoint.networks(keras_trainer) for layer in network.layers)
    for key, array in before["arrays"].items():
        if key not in rng:
            assert array.dtype == after["arrays"][key].dtype and array.tobytes() == after["arrays"][key].tobytes(), key
    optimizers = dict(keras_checkpoint.optimizers(keras_trainer))
    assert int(optimizers["g_optimizer"].iterations) == STEPS  # a real Adam state: one G update per train step
    expected = {key: value for key, value in before["meta"].items() if key != "converted_from"}
    assert {key: value for key, value in after["meta"].items() if key != "converted_from"} == expected
    assert after["meta"]["converted_from"] == {"backend": "torch", "path": str(converted("keras", model).resolve())}


@pytest.mark.parametrize("model", MODELS)
def test_torch_round_trip_is_identical(model, trained, converted, tmp_path):
    """torch -> keras -> torch: state_dict (num_batches_tracked included: the converter sets what torch counts) and
    optimiser states come back identical; the converted checkpoint's meta names its backend and its source."""
    original = trained("torch", model)
    _, middle = load(converted("torch", model))
    assert middle["meta"]["backend"] == "keras"
    assert middle["meta"]["converted_from"] == {"backend": "torch", "path": str(original.resolve())}
    back = tmp_path / "back.pt"
    assert quietly(convert, converted("torch", model), "--to", "torch", "--out", back)[0] == 0
    (_, before), (_, after) = load(original), load(back)
    assert list(before["networks"]) == list(after["networks"])
    for key, tensor in before["networks"].items():
        assert tensor.dtype == after["networks"][key].dtype and torch.equal(tensor, after["networks"][key]), key
    assert all(int(count) > 0 for key, count in after["networks"].items() if key.endswith("num_batches_tracked"))
    for name, optimizer in before["optimizers"].items():
        other = after["optimizers"][name]
        assert optimizer["param_groups"] == other["param_groups"]
        assert sorted(optimizer["state"]) == sorted(other["state"]) and optimizer["state"], name
        for index, state in optimizer["state"].items():
            for key, tensor in state.items():
                assert tensor.dtype == other["state"][index][key].dtype, (name, index, key)
                assert torch.equal(tensor, other["state"][index][key]), (name, index, key)


# ------------------------------------------------------------------------------------------- Training on


def dropout_off(model: str, torch_trainer, keras_trainer) -> None:
    """Dropout masks can never agree across frameworks (parity/checks.py trains with dropout 0 for that reason)."""
    for module in torch_trainer.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    for network in checks.MODELS[model].networks:
        for layer in getattr(keras_trainer, network).layers:
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0


def next_step(model: str, paths: dict[str, Path], change=None):
    """One train step of each backend from its checkpoint, with the same batch and injected z, label noise and
    alpha (parity.checks.Harness draws them, and gives torch's Adam Keras's epsilon rule); `change(torch trainer,
    Keras trainer)` may alter the state first. Returns the comparison of every weight and running statistic, of
    every weight's update scaled by the update's size, and both trainers."""
    states = {backend: load(path)[1] for backend, path in paths.items()}
    harness = checks.Harness(model, config_from_dict(model, states["torch"]["meta"]["config"]), "float32", 8, seed=1)
    torch_trainer, keras_trainer = harness.torch_trainer, harness.keras_trainer
    torch_checkpoint.restore(torch_trainer, states["torch"])
    keras_checkpoint.restore(keras_trainer, states["keras"])
    dropout_off(model, torch_trainer, keras_trainer)
    if change is not None:
        change(torch_trainer, keras_trainer)
    before = {port.name: checks.to_numpy(port.torch_tensor).copy() for port in harness.table}
    real, step = harness.real_batch(), harness.step_inputs()
    torch_trainer.train()
    torch_trainer.train_step(checks.both(real)[0], **{key: checks.both(value)[0] for key, value in step.items()})
    keras_trainer.train_step(checks.both(real)[1], **{key: checks.both(value)[1] for key, value in step.items()})
    rows, update_rows = [], []
    for port in harness.table:
        torch_value = checks.to_numpy(port.torch_tensor)
        keras_value = port.to_torch(checks.to_numpy(port.keras_variable))
        rows.append((port.name, torch_value, keras_value))
        if port.trainable:
            torch_update, keras_update = torch_value - before[port.name], keras_value - before[port.name]
            scale = max(float(np.max(np.abs(keras_update))), 1e-12)
            update_rows.append((port.name, torch_update / scale, keras_update / scale))
    weights = checks.compare("trajectory", checks.TOLERANCES["float32"]["trajectory"], rows, finite=True)
    updates = checks.compare("updates", checks.TOLERANCES["float32"]["gradients"], update_rows, finite=True)
    return weights, updates, torch_trainer, keras_trainer


@pytest.mark.parametrize("source, target", DIRECTIONS, ids=[f"{s}-to-{t}" for s, t in DIRECTIONS])
@pytest.mark.parametrize("model", MODELS)
def test_next_step_from_the_converted_state(model, source, target, trained, converted):
    """One train step from the converted checkpoint lands where the source backend's own next step lands: every
    weight and running statistic within the float32 trajectory tolerance of parity/checks.py, and every weight's
    update within its float32 gradient tolerance, relative to the update's size (Adam's step is a normalised
    gradient; a lost step count or moment changes it by up to 2x); the Adam step counts agree afterwards."""
    weights, updates, torch_trainer, keras_trainer = next_step(
        model, {source: trained(source, model), target: converted(source, model)})
    print(f"{model} {source} -> {target}: after one step max scaled diff {weights.max_scaled_diff:.3g} "
          f"({weights.worst}); updates {updates.max_scaled_diff:.3g} of their size ({updates.worst})")
    assert weights.passed and updates.passed
    keras_steps = {name: int(adam.iterations) for name, adam in keras_checkpoint.optimizers(keras_trainer)}
    for name, adam in torch_checkpoint.optimizers(torch_trainer):
        assert {int(state["step"]) for state in adam.state.values()} == {keras_steps[name]}, name


def test_next_step_catches_a_lost_step_count(trained, converted):
    """The comparison above can fail: the same converted state with Keras's Adam step count reset to 0."""

    def reset_steps(torch_trainer, keras_trainer):
        for _, adam in keras_checkpoint.optimizers(keras_trainer):
            adam.iterations.assign(0)

    paths = {"torch": trained("torch", "dcgan"), "keras": converted("torch", "dcgan")}
    weights, updates, _, _ = next_step("dcgan", paths, reset_steps)
    print(f"dcgan torch -> keras, Keras's step count reset: updates {updates.max_scaled_diff:.3g} of their size")
    assert weights.passed and not updates.passed


RESUMED = [("dcgan", "torch", "keras"), ("wgan_gp", "keras", "torch")]  # each target once: a training run each


@pytest.mark.parametrize("model, source, target", RESUMED, ids=[f"{m}-{s}-to-{t}" for m, s, t in RESUMED])
def test_resume_in_the_target_backend(model, source, target, converted, tmp_path):
    """`gan-<target> train --resume` accepts the converted checkpoint and trains epoch 2 with finite losses."""
    run = tmp_path / "run"
    shutil.copytree(converted(source, model).parent, run)
    argv = ["train", model, *TINY, "--epochs", "2", "--cache-dir", str(tmp_path / "cache"), "--out", str(run),
            "--resume"]
    status, printed = quietly(CLI[target].main, argv)
    assert status == 0, printed
    header, *rows = (run / "losses.csv").read_text().splitlines()
    assert len(rows) == 1 and rows[0].startswith(f"2,{2 * STEPS},")
    assert all(np.isfinite(float(value)) for value in rows[0].split(","))
    _, state = load(run / BACKENDS[target].CHECKPOINT)
    assert (state["meta"]["backend"], state["meta"]["epoch"], state["meta"]["step"]) == (target, 1, 2 * STEPS)


# ------------------------------------------------------------------------------------------------ The command


def test_command_says_what_it_did(converted):
    path = converted("keras", "dcgan")
    out = converted.printed["keras", "dcgan"]
    assert f"(keras dcgan, epoch 1, step {STEPS}) converted to {path} (torch)" in out
    assert "the RNG state cannot be converted" in out and "seed 0" in out
    assert f"gan-torch train dcgan --out {path.parent} --resume" in out


def bad_inputs(trained, tmp: Path) -> dict:
    """case: (argv, words the one-line message must hold)."""
    keras_file, torch_file = trained("keras", "dcgan"), trained("torch", "dcgan")
    (tmp / "notes.npz").write_text("not a checkpoint")
    (tmp / "empty").mkdir()
    torch.save({"weights": torch.zeros(2)}, tmp / "foreign.pt")
    (tmp / "taken.pt").write_bytes(b"someone else's file")
    return {
        "missing file": ([tmp / "nothing.npz", "--to", "torch", "--out", tmp / "out"], ["no checkpoint at"]),
        "folder without checkpoint": ([tmp / "empty", "--to", "torch", "--out", tmp / "out"], ["no checkpoint in"]),
        "not a checkpoint": ([tmp / "notes.npz", "--to", "torch", "--out", tmp / "out"], ["is not a checkpoint"]),
        "no run metadata": ([tmp / "foreign.pt", "--to", "keras", "--out", tmp / "out"], ["no run metadata"]),
        "already the target": ([torch_file, "--to", "torch", "--out", tmp / "out"], ["already is a torch checkpoint"]),
        "run folder of the target": ([torch_file.parent, "--to", "torch", "--out", tmp / "out"], ["already is"]),
        "suffix of the other backend": ([keras_file, "--to", "torch", "--out", tmp / "x.npz"], ["a .pt file"]),
        "unknown suffix": ([keras_file, "--to", "torch", "--out", tmp / "x.ckpt"], ["a torch checkpoint is a .pt"]),
        "existing output": ([keras_file, "--to", "torch", "--out", tmp / "taken.pt"], ["already exists"]),
        "onto the source": ([keras_file, "--to", "keras", "--out", keras_file], ["already exists"]),
    }


CASES = ["missing file", "folder without checkpoint", "not a checkpoint", "no run metadata", "already the target",
         "run folder of the target", "suffix of the other backend", "unknown suffix", "existing output",
         "onto the source"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, trained, tmp_path, capsys):
    """One line on stderr, exit status 2, nothing written and no source changed."""
    argv, expected = bad_inputs(trained, tmp_path)[case]
    sources = {path: path.read_bytes() for path in map(Path, argv[:1]) if path.is_file()}
    listing = sorted(tmp_path.rglob("*"))
    assert convert(*argv) == 2
    message = one_line_error(capsys)
    for words in expected:
        assert words in message, message
    assert sorted(tmp_path.rglob("*")) == listing
    assert all(path.read_bytes() == content for path, content in sources.items())
