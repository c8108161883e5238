"""The training command line of both backends: run folder, resume, sampling, NaN stop, and user mistakes.

Everything runs in-process through `<backend>_impl.train.main([...])` on the `fake` data set with a tiny DCGAN
(16x16, width 4, 8 batches of 32 per epoch); only the console scripts' --help crosses a process boundary.
"""

import dataclasses
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import specs.cli
import specs.runs
import torch_impl.checkpoint as torch_checkpoint
import torch_impl.commands as torch_commands
import torch_impl.train as torch_train
from specs.datasets import DATASETS, DatasetSpec
from specs.models import PRESETS

# isort: split
import keras_impl.checkpoint as keras_checkpoint  # after torch_impl: torch before TensorFlow
import keras_impl.commands as keras_commands
import keras_impl.train as keras_train

# isort: split
import tensorflow as tf

BACKENDS = {"torch": torch_train, "keras": keras_train}
CHECKPOINTS = {"torch": torch_checkpoint, "keras": keras_checkpoint}
COMMANDS = {"torch": torch_commands, "keras": keras_commands}
NETWORK_FILES = {"torch": ["discriminator.pt", "generator.pt"],
                 "keras": ["discriminator.weights.h5", "generator.keras", "generator.weights.h5"]}
TINY = ["--dataset", "fake", "--image-size", "16", "--width", "4", "--latent-dim", "8", "--batch-size", "32", "--quiet"]
STEPS_PER_EPOCH = 256 // 32  # fake_size // batch size
HEADER = "epoch,step,d_fake,d_loss,d_real,g_loss"

# --------------------------------------------------------------------------------------------------- Helpers


def train(backend: str, out: Path, *flags: str, epochs: int = 1) -> int:
    """`gan-<backend> train dcgan` with the tiny configuration; flags given later override TINY's."""
    cache = out.parent / "cache"  # fake is never cached; this keeps any cache out of the user's home
    argv = ["train", "dcgan", *TINY, "--epochs", str(epochs), "--cache-dir", str(cache), "--out", str(out), *flags]
    return BACKENDS[backend].main(argv)


def files(folder: Path) -> dict[str, bytes]:
    """Every file under the folder, by relative path, with its bytes."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def csv_lines(run: Path) -> list[str]:
    return (run / "losses.csv").read_text().splitlines()


def one_line_error(capsys, backend: str) -> str:
    """The captured stderr, asserted to be one line `gan-<backend>: error: ...` without a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gan-{backend}: error: "), err
    return lines[0]


@pytest.fixture(params=list(BACKENDS))
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def trained(made_once):
    """trained(backend): the folder of a finished 1-epoch run of that backend, made once per session; read-only
    (copy it with `copy_run` before changing it)."""
    return lambda backend: made_once(f"cli-{backend}", lambda out: train(backend, out))


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


# ------------------------------------------------------------------------------------------------------ Train


def test_train_writes_the_run_folder(backend, trained):
    run = trained(backend)  # the fixture asserts exit code 0
    lines = csv_lines(run)
    assert len(lines) == 2 and lines[0] == HEADER
    row = dict(zip(HEADER.split(","), lines[1].split(",")))
    assert (row["epoch"], row["step"]) == ("1", str(STEPS_PER_EPOCH))
    assert all(np.isfinite(float(value)) for value in row.values())
    with Image.open(run / "samples" / "epoch_0001.png") as grid:  # 64 images of 16x16: 8x8 tiles, 2 px apart
        assert grid.size == (8 * 18 + 2, 8 * 18 + 2) and grid.mode == "L"
    assert sorted(path.name for path in (run / "samples").iterdir()) == ["epoch_0001.png"]
    with Image.open(run / "losses.png") as plot:
        assert plot.format == "PNG"
    assert [path for path in (run / "tensorboard").rglob("events.out.tfevents.*") if path.stat().st_size > 0]
    checkpoint = run / CHECKPOINTS[backend].CHECKPOINT
    assert checkpoint.name == {"torch": "checkpoint.pt", "keras": "checkpoint.npz"}[backend]
    assert checkpoint.is_file() and checkpoint.stat().st_size > 0
    written = sorted(path.name for path in run.iterdir() if path.is_file())
    assert written == sorted([checkpoint.name, "losses.csv", "losses.png", *NETWORK_FILES[backend]])
    assert not (run / "checkpoints").exists()  # --keep-checkpoints 1: the latest only
    assert not [path.name for path in run.rglob(".*")]  # no temp file or folder of an atomic write is left behind


def test_resume_continues_exactly(backend, trained, tmp_path):
    """Epoch 2 of an uninterrupted run equals epoch 2 after a resume, bit for bit (CPU, one seed): the checkpoint
    holds every state that matters (weights, BatchNorm statistics, Adam moments and step, the RNG states: torch's
    generators, Keras's seed generators, which are variables). Exact in both backends: the CPU kernels these
    networks use give the same bits for the same inputs in one process, so no tolerance is needed."""
    full = tmp_path / "full"
    assert train(backend, full, epochs=2) == 0
    resumed = copy_run(trained(backend), tmp_path / "resumed")
    assert train(backend, resumed, "--resume", epochs=2) == 0
    assert len(csv_lines(full)) == len(csv_lines(resumed)) == 3
    assert csv_lines(resumed) == csv_lines(full)  # the float reprs, so exact equality
    assert (resumed / "samples" / "epoch_0002.png").read_bytes() == (full / "samples" / "epoch_0002.png").read_bytes()


def test_keep_checkpoints_keeps_the_last_epochs(tmp_path, capsys):
    """--keep-checkpoints 2 over 3 epochs: checkpoints/ holds the training checkpoints of epochs 2 and 3 (the last is
    checkpoint.pt's bytes), each one a checkpoint that `sample` reads and that holds its own epoch."""
    run = tmp_path / "run"
    assert train("torch", run, "--keep-checkpoints", "2", "--batch-size", "128", epochs=3) == 0  # 2 steps an epoch
    kept = sorted(path.name for path in (run / "checkpoints").iterdir())
    assert kept == ["epoch_0002.pt", "epoch_0003.pt"]
    assert (run / "checkpoints" / "epoch_0003.pt").read_bytes() == (run / "checkpoint.pt").read_bytes()
    for name, epoch in (("epoch_0002.pt", 1), ("epoch_0003.pt", 2)):
        assert torch_checkpoint.load_checkpoint(run / "checkpoints" / name)["meta"]["epoch"] == epoch
    argv = ["sample", "dcgan", "--checkpoint", str(run / "checkpoints" / "epoch_0002.pt"), "--out",
            str(tmp_path / "x.png"), "--num", "4"]
    assert torch_train.main(argv) == 0 and (tmp_path / "x.png").is_file()


def test_kept_checkpoints_are_pruned_by_epoch(tmp_path):
    """Run.keep_checkpoint, framework-free: after each epoch the last `keep` are there, older ones removed."""
    run = specs.runs.Run(tmp_path, "checkpoint.npz", keep=3)
    for epoch in range(5):
        (tmp_path / "checkpoint.npz").write_bytes(f"epoch {epoch}".encode())
        run.keep_checkpoint(epoch)
    kept = {path.name: path.read_text() for path in run.kept_checkpoints.iterdir()}
    assert kept == {"epoch_0003.npz": "epoch 2", "epoch_0004.npz": "epoch 3", "epoch_0005.npz": "epoch 4"}
    assert specs.runs.Run(tmp_path, "checkpoint.npz").keep_checkpoint(5) is None  # keep 1: nothing more


# ----------------------------------------------------------------------------------------------------- Sample


def test_sample_writes_a_grid(backend, trained, tmp_path, capsys):
    out = tmp_path / "x.png"
    argv = ["sample", "dcgan", "--checkpoint", str(trained(backend)), "--out", str(out), "--num", "16"]
    assert BACKENDS[backend].main(argv) == 0
    with Image.open(out) as picture:  # 16 images of 16x16 in a 4x4 grid, 2 px of black around each
        pixels = np.asarray(picture)
        assert picture.size == (4 * 18 + 2, 4 * 18 + 2) and picture.mode == "L"
    tiles = [pixels[2 + 18 * r : 18 * (r + 1), 2 + 18 * c : 18 * (c + 1)] for r in range(4) for c in range(4)]
    assert len({tile.tobytes() for tile in tiles}) == 16  # 16 different images
    assert not pixels[:2].any() and not pixels[:, 18:20].any()  # the padding between tiles


def test_sample_without_checkpoint(backend, tmp_path, capsys):
    argv = ["sample", "dcgan", "--checkpoint", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.png")]
    assert BACKENDS[backend].main(argv) == 2
    assert "no checkpoint at" in one_line_error(capsys, backend)
    assert not (tmp_path / "x.png").exists()


def test_sample_refuses_no_images(backend, tmp_path, capsys):
    argv = ["sample", "dcgan", "--checkpoint", str(tmp_path), "--num", "0"]
    with pytest.raises(SystemExit) as exit_info:  # argparse's own message and status
        BACKENDS[backend].main(argv)
    assert exit_info.value.code == 2
    assert "expected a positive whole number" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------- NaN loss


def poison_torch(batches):
    """torch_impl.commands.batches, with every image of the third batch of an epoch NaN."""

    def poisoned(*args, **kwargs):
        for index, batch in enumerate(batches(*args, **kwargs)):
            yield batch.fill_(float("nan")) if index == 2 else batch

    return poisoned


def poison_keras(batches):
    """keras_impl.commands.batches, with every image of the third batch the run reads NaN."""

    def poisoned(*args, **kwargs):
        dataset = batches(*args, **kwargs).enumerate()
        return dataset.map(lambda index, images: tf.where(index == 2, float("nan"), images))

    return poisoned


POISON = {"torch": poison_torch, "keras": poison_keras}


def test_nan_loss_stops_and_keeps_the_checkpoint(backend, trained, tmp_path, capsys, monkeypatch):
    run = copy_run(trained(backend), tmp_path / "run")
    checkpoint = run / CHECKPOINTS[backend].CHECKPOINT
    before = checkpoint.read_bytes()
    module = COMMANDS[backend]
    monkeypatch.setattr(module, "batches", POISON[backend](module.batches))
    batches_seen = []
    check_batch = module.RunOutputs.on_train_batch_end

    def on_train_batch_end(self, batch, logs=None):
        batches_seen.append(batch)
        return check_batch(self, batch, logs)

    monkeypatch.setattr(module.RunOutputs, "on_train_batch_end", on_train_batch_end)
    assert train(backend, run, "--resume", epochs=3) == 1
    assert batches_seen == [0, 1, 2]  # the run stopped at the NaN batch, not at the end of the epoch or run
    err = capsys.readouterr().err
    assert f"gan-{backend}: training stopped, a loss is not finite at batch 3: " in err
    assert "nan" in err and str(checkpoint) in err
    assert checkpoint.read_bytes() == before
    assert csv_lines(run) == csv_lines(trained(backend))
    assert not (run / "samples" / "epoch_0002.png").exists()


# ------------------------------------------------------------------------------------------------- Bad input


BAD_FLAGS = {  # case: (flags after TINY, words the one-line message must hold)
    "unknown dataset": (["--dataset", "nope"], ["unknown data set 'nope'", ", ".join(DATASETS)]),
    "missing folder": (["--dataset", "folder", "--data-dir", "{tmp}/missing"], ["missing is not a folder"]),
    "smaller than a batch": (["--batch-size", "512"], ["256 examples, fewer than one batch of 512", "--batch-size"]),
    "invalid config": (["--image-size", "20"], ["image_size must be a power of two", "got 20"]),
    "unknown preset": (["--preset", "nope"], ["unknown preset 'nope'", ", ".join(PRESETS["dcgan"])]),
    "resume nothing": (["--resume"], ["nothing to resume", "run without --resume"]),
}


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_bad_input(backend, case, tmp_path, capsys):
    flags, expected = BAD_FLAGS[case]
    assert train(backend, tmp_path / "run", *(flag.format(tmp=tmp_path) for flag in flags)) == 2
    message = one_line_error(capsys, backend)
    for words in expected:
        assert words in message
    assert not (tmp_path / "run" / CHECKPOINTS[backend].CHECKPOINT).exists()


def test_unwritable_output_folder(backend, tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("a regular file")

    def no_data(spec):
        raise AssertionError("the data was loaded before the output folder was checked")

    monkeypatch.setattr(DatasetSpec, "load", no_data)
    assert train(backend, tmp_path / "file" / "run") == 2
    assert f"cannot write to the output folder {tmp_path / 'file' / 'run'}" in one_line_error(capsys, backend)


def test_existing_run_is_not_overwritten(backend, trained, tmp_path, capsys):
    run = copy_run(trained(backend), tmp_path / "run")
    assert train(backend, run, epochs=2) == 2
    assert "already holds a run" in one_line_error(capsys, backend)
    assert files(run) == files(trained(backend))


def test_resume_with_another_configuration(backend, trained, tmp_path, capsys):
    run = copy_run(trained(backend), tmp_path / "run")
    assert train(backend, run, "--resume", "--width", "8", "--learning-rate", "0.001", epochs=2) == 2
    message = one_line_error(capsys, backend)
    assert "another configuration" in message and "width: 4 -> 8" in message and "learning_rate" in message
    assert "epochs" not in message.split("(")[1]  # more epochs is what resuming is for
    assert files(run) == files(trained(backend))


@pytest.mark.parametrize("resume", [True, False], ids=["resume", "new run"])
def test_run_folder_of_the_other_backend(backend, trained, tmp_path, capsys, resume):
    """A run folder of the other backend is neither resumed (its checkpoint is not ours to read) nor overwritten
    (losses.csv and samples/ would be); the message names the backend that wrote it."""
    other = next(name for name in BACKENDS if name != backend)
    run = copy_run(trained(other), tmp_path / "run")
    assert train(backend, run, *(["--resume"] if resume else []), epochs=2) == 2
    message = one_line_error(capsys, backend)
    assert f"holds a run of the {other} backend ({CHECKPOINTS[other].CHECKPOINT})" in message
    assert f"gan-{other} train --resume" in message
    assert files(run) == files(trained(other))


# ------------------------------------------------------------------------------------------------------- Help


@pytest.fixture(scope="module")
def console_help():
    """`gan-torch --help` and `gan-keras --help` as real processes, both started at once (they import no
    framework: benchmarks/startup.py times them)."""
    processes = {}
    for name in BACKENDS:
        script = Path(sys.executable).with_name(f"gan-{name}")
        if script.is_file():
            command = [str(script), "--help"]
            processes[name] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield processes
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_console_script_help(backend, console_help):
    assert backend in console_help, f"gan-{backend} is not installed beside {sys.executable}: pip install -e ."
    out, err = console_help[backend].communicate(timeout=120)
    assert console_help[backend].returncode == 0, err
    assert out.startswith(f"usage: gan-{backend} ")
    assert "train" in out and "sample" in out and "export" in out
    assert err == ""  # nothing from a framework's start-up


def test_module_help_lists_the_config_flags(backend, capsys, monkeypatch):
    """`python -m <backend>_impl train dcgan --help`, run in this process by runpy as `python -m` runs it."""
    monkeypatch.setattr(sys, "argv", [f"{backend}_impl", "train", "dcgan", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module(f"{backend}_impl", run_name="__main__")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for field in dataclasses.fields(type(PRESETS["dcgan"]["digits"])):
        assert f"--{field.name.replace('_', '-')}" in out
    for flag in ("--dataset", "--data-dir", "--cache-dir", "--preset", "--seed", "--out", "--resume"):
        assert flag in out


# ------------------------------------------------------------------------------------------- Keras's backends


@pytest.mark.parametrize(("words", "env", "expected"), [
    (["sample", "dcgan", "--checkpoint", "x"], "numpy",
     "gan-keras: error: KERAS_BACKEND=numpy: gan-keras trains on tensorflow, jax, torch; choose one with --backend"),
    (["--backend", "jax", "sample", "dcgan", "--checkpoint", "x"], None,
     "gan-keras: error: this process already runs Keras on tensorflow; run gan-keras --backend jax in a process of "
     "its own"),
])
def test_a_keras_backend_it_cannot_use_is_one_line(words, env, expected, capsys, monkeypatch):
    """Keras reads KERAS_BACKEND once, as it is imported: a backend that cannot train, or another than the one
    this process already runs, is a usage error (tests/test_keras_backends.py runs the others in processes)."""
    if env:
        monkeypatch.setenv("KERAS_BACKEND", env)
    assert keras_train.main(words) == 2
    assert one_line_error(capsys, "keras") == expected


MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"


def make_variables() -> dict[str, str]:
    """The Makefile's simple variables (NAME := value, NAME ?= value), as make reads them."""
    lines = [line.split("#")[0] for line in MAKEFILE.read_text().splitlines()]
    pairs = [line.split("=", 1) for line in lines if ":=" in line or "?=" in line]
    return {name.rstrip(":?").strip(): value.strip() for name, value in pairs}


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_the_demo_budgets_are_flags_each_command_line_takes(backend):
    """make demo's train commands, as the Makefile writes them, parse in both command lines into the configurations
    the README describes: the digits presets at batch 32, the critic models at width 32 and learning rate 4e-4."""
    variables = make_variables()
    demo = MAKEFILE.read_text().split("\ndemo:")[1].split("\n\n")[0]
    parser = specs.cli.build_parser(f"gan-{backend}", backend)
    for model, epochs in (("dcgan", 8), ("wgan_gp", 8), ("cgan", 12)):
        critic = "$(CRITIC_DEMO) " if model != "dcgan" else ""
        line = f"train {model} $(DEMO_TRAIN) {critic}--epochs $({model.upper()}_EPOCHS)"
        assert line in demo, line
        made = line.replace("$(DEMO_TRAIN)", variables["DEMO_TRAIN"]).replace("$(CRITIC_DEMO)", variables[
            "CRITIC_DEMO"]).replace(f"$({model.upper()}_EPOCHS)", variables[f"{model.upper()}_EPOCHS"])
        config, spec, _ = specs.cli.resolve_train(parser.parse_args(made.split()), backend)
        assert (spec.name, config.batch_size, config.epochs) == ("digits", 32, epochs)
        assert (config.width, config.learning_rate) == ((32, 4e-4) if critic else (64, 2e-4))
