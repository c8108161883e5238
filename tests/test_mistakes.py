"""What a new user runs into, in both backends: sample files in the format their name says, numbers no optimiser
takes, a resume with nothing left to train or on changed images, a run that stops before its first checkpoint, and
the line a run starts with. Each was a traceback, a wrong file or a silent surprise; each is one line now.

Runs are tiny DCGANs in-process through `<backend>_impl.train.main([...])`, as in tests/test_cli.py.
"""

import contextlib
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import torch_impl.commands as torch_commands
import torch_impl.train as torch_train
from specs.images import write_atomically
from specs.runs import Run, RunError

# isort: split
import keras_impl.commands as keras_commands  # after torch_impl: torch before TensorFlow
import keras_impl.train as keras_train

BACKENDS = {"torch": torch_train, "keras": keras_train}
COMMANDS = {"torch": torch_commands, "keras": keras_commands}
CHECKPOINTS = {"torch": "checkpoint.pt", "keras": "checkpoint.npz"}
TINY = ["--dataset", "fake", "--image-size", "16", "--width", "4", "--latent-dim", "8", "--batch-size", "64", "--quiet"]


def train(backend: str, out: Path, *flags: str, epochs: int = 1) -> int:
    argv = ["train", "dcgan", *TINY, "--epochs", str(epochs), "--cache-dir", str(out.parent / "cache"), "--out",
            str(out), *flags]
    return BACKENDS[backend].main(argv)


def one_line(capsys, backend: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"gan-{backend}: error: "), err
    return lines[0]


@pytest.fixture(params=list(BACKENDS))
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """torch on one thread here: on two busy cores its two threads slow these tiny runs down (tests/test_faults.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(made_once):
    """trained(backend): a finished 1-epoch run of that backend, made once; read-only."""
    return lambda backend: made_once(f"mistakes-{backend}", lambda out: train(backend, out))


# ----------------------------------------------------------------------------------------------- sample --out


@pytest.mark.parametrize("backend, name, format", [
    ("torch", "grid.png", "PNG"), ("torch", "grid.JPEG", "JPEG"), ("torch", "grid.webp", "WEBP"),
    ("keras", "grid.jpg", "JPEG"),  # the format is chosen in specs/images.py, for both backends alike
])
def test_sample_writes_the_format_its_extension_names(backend, trained, tmp_path, name, format):
    """`--out x.jpg` wrote PNG bytes under a .jpg name."""
    out = tmp_path / name
    assert BACKENDS[backend].main(["sample", "dcgan", "--checkpoint", str(trained(backend)), "--out", str(out),
                                   "--num", "4", "--quiet"]) == 0
    with Image.open(out) as picture:
        assert picture.format == format and picture.size == (2 * 18 + 2, 2 * 18 + 2)
    if format != "JPEG":  # PNG and lossless WebP keep every pixel
        png = tmp_path / "same.png"
        BACKENDS[backend].main(["sample", "dcgan", "--checkpoint", str(trained(backend)), "--out", str(png),
                                "--num", "4", "--quiet"])
        with Image.open(out) as picture, Image.open(png) as reference:
            assert np.array_equal(np.asarray(picture.convert("L")), np.asarray(reference))


def make_folder(tmp_path: Path) -> Path:
    (tmp_path / "folder").mkdir()
    return tmp_path / "folder"


def make_pipe(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "pipe.png")
    return tmp_path / "pipe.png"


def under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / "grid.png"


BAD_OUT = {  # case: (makes the path, words of the one-line message)
    "folder": (make_folder, "is a folder; name a file in it, e.g. "),
    "unknown extension": (lambda tmp: tmp / "grid.gif", "the extension names the format, and .gif is not one"),
    "no extension": (lambda tmp: tmp / "grid", "and none is not one this can write; use one of .png, .jpg"),
    "a pipe": (make_pipe, "exists and is not a regular file"),
    "under a file": (under_a_file, "cannot be written; choose another --out"),
}


@pytest.mark.parametrize("case", list(BAD_OUT))
def test_sample_refuses_an_out_it_cannot_write(backend, trained, tmp_path, capsys, case):
    make, words = BAD_OUT[case]
    out = make(tmp_path)
    before = sorted(path.name for path in tmp_path.rglob("*"))
    assert BACKENDS[backend].main(["sample", "dcgan", "--checkpoint", str(trained(backend)), "--out", str(out)]) == 2
    message = one_line(capsys, backend)
    assert words in message and ".tmp" not in message
    assert sorted(path.name for path in tmp_path.rglob("*")) == before


def test_a_failed_temp_file_is_reported_under_the_target_name(tmp_path, monkeypatch):
    """Creating the temp file can fail before its name is known to the caller (a folder without write
    permission): the error still names the file asked for, never `.grid.png.x1y2.tmp`."""
    import tempfile

    def refuse(prefix, suffix, dir, delete):
        raise PermissionError(13, "Permission denied", os.path.join(dir, f"{prefix}abc{suffix}"))

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(PermissionError) as error:
        write_atomically(tmp_path / "grid.png", lambda handle: handle.write(b"x"))
    assert error.value.filename == str(tmp_path / "grid.png") and ".tmp" not in str(error.value)


# -------------------------------------------------------------------------------- Numbers no optimiser takes


@pytest.mark.parametrize("flag, value, words", [
    ("--learning-rate", "nan", "expected a finite number, got 'nan'"),
    ("--learning-rate", "inf", "expected a finite number, got 'inf'"),
    ("--beta-1=-inf", None, "expected a finite number"),  # "--beta-1 -inf" reads -inf as a flag (argparse)
    ("--learning-rate", "-0.001", "learning_rate must be positive, got -0.001"),
    ("--learning-rate", "0", "learning_rate must be positive"),
    ("--beta-2", "1", "beta_2 must lie in [0, 1), got 1.0"),
    ("--adam-epsilon=-1e-7", None, "adam_epsilon must not be negative"),
    ("--label-noise", "-0.1", "label_noise must not be negative"),
    ("--width", "1.5", "expected a whole number, got '1.5'"),
    ("--seed", "-1", "expected a seed from 0 to 2**63 - 1"),
])
def test_numbers_no_optimiser_takes_are_refused(backend, tmp_path, capsys, flag, value, words):
    """--learning-rate nan was a torch traceback (Adam's ValueError) and a Keras run that stopped at a NaN;
    --learning-rate -1 trained Keras by gradient ascent for all its epochs."""
    try:
        status = train(backend, tmp_path / "run", flag, *([value] if value is not None else []))
    except SystemExit as stop:  # argparse's own message (usage, then the error) and status
        status = stop.code
    err = capsys.readouterr().err
    assert status == 2 and words in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------------ Resume


def event_files(run: Path) -> list[str]:
    return sorted(path.name for path in (run / "tensorboard").rglob("events.out.tfevents.*"))


def test_resume_at_its_last_epoch_trains_nothing_and_says_so(backend, trained, tmp_path, capsys):
    """It said "trained to epoch 1" and added an event file."""
    run = tmp_path / "run"
    shutil.copytree(trained(backend), run)
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    argv = ["train", "dcgan", *TINY[:-1], "--epochs", "1", "--cache-dir", str(tmp_path / "cache"), "--out", str(run),
            "--resume"]
    assert BACKENDS[backend].main(argv) == 0
    err = capsys.readouterr().err
    assert f"gan-{backend}: nothing to train: the checkpoint in {run} is at epoch 1 already; pass --epochs 2 or " \
           "more to train on" in err and "trained to epoch" not in err
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before  # no new event file


def test_resume_beyond_its_epochs_is_refused(tmp_path):
    run = Run(tmp_path, "checkpoint.pt")
    with pytest.raises(RunError, match="the checkpoint is at epoch 5, beyond --epochs 3; pass --epochs 6 or more"):
        run.epochs_left(5, 3)
    assert run.epochs_left(2, 3) and not run.epochs_left(3, 3)


@pytest.mark.parametrize("backend", ["torch"])  # specs.runs.check_resumable, which both backends call alike
def test_resume_on_changed_images_is_refused_with_what_changed(backend, tmp_path, capsys):
    """Only the class names were compared: a folder with other images resumed on them."""
    folder = tmp_path / "bricks"
    for name in ("brick", "plate"):
        (folder / name).mkdir(parents=True)
        for index in range(32):
            pixels = np.full((8, 8), index * 7 + (name == "plate") * 3, np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{index}.png")
    flags = ["--dataset", "folder", "--data-dir", str(folder), "--batch-size", "16"]
    assert train(backend, tmp_path / "run", *flags) == 0
    for index in range(32, 41):
        Image.fromarray(np.full((8, 8), 200, np.uint8)).save(folder / "plate" / f"{index}.png")
    assert train(backend, tmp_path / "run", *flags, "--resume", epochs=2) == 2
    message = one_line(capsys, backend)
    assert f"the images in {folder} changed since the checkpoint was written (images: 64 -> 73; class plate: 32 -> " \
           "41 images)" in message
    for index in range(32, 41):
        (folder / "plate" / f"{index}.png").unlink()
    Image.fromarray(np.full((8, 8), 1, np.uint8)).save(folder / "brick" / "0.png")
    assert train(backend, tmp_path / "run", *flags, "--resume", epochs=2) == 2
    assert "(class brick: 32 images, other pixels)" in one_line(capsys, backend)


# ---------------------------------------------------------------------------- A run stopped before its first epoch


def test_a_run_stopped_before_its_first_checkpoint_leaves_nothing(backend, tmp_path, capsys, monkeypatch):
    """It left a folder holding only tensorboard/, and the next run there mixed its event files with the old."""
    module = COMMANDS[backend]
    original = module.batches

    def poisoned(*args, **kwargs):
        if backend == "keras":
            return original(*args, **kwargs).map(lambda images: images * float("nan"))
        return (batch * float("nan") for batch in original(*args, **kwargs))

    with monkeypatch.context() as patch:
        patch.setattr(module, "batches", poisoned)
        assert train(backend, tmp_path / "run") == 1
    assert "no epoch finished, so no checkpoint was written" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    stale = tmp_path / "again" / "tensorboard" / "events.out.tfevents.1.stale"  # left by an older version
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    assert train(backend, tmp_path / "again") == 0
    assert len(event_files(tmp_path / "again")) == 1 and not stale.exists()


# ------------------------------------------------------------------------------------------- The first lines


@pytest.mark.parametrize("backend", ["torch"])  # specs.runs.report_data, which both backends call alike
def test_training_starts_by_saying_what_data_it_found(backend, tmp_path, capsys):
    folder = tmp_path / "shapes"
    for name, count in (("circle", 20), ("square", 12)):
        (folder / name / "more").mkdir(parents=True)
        for index in range(count):
            Image.fromarray(np.full((8, 8), index, np.uint8)).save(folder / name / "more" / f"{index}.png")
    argv = ["train", "dcgan", *TINY[:-1], "--dataset", "folder", "--data-dir", str(folder), "--batch-size", "16",
            "--epochs", "1", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run")]
    with contextlib.redirect_stdout(io.StringIO()):
        assert BACKENDS[backend].main(argv) == 0
    err = capsys.readouterr().err
    assert f"gan-{backend}: data: folder {folder}: 32 images, 2 classes from the names of the top-level folders " \
           "(nested folders: each image belongs to the top-level folder it lies under): circle 20, square 12" in err


def test_ctrl_c_outside_training_is_one_line(trained, tmp_path, capsys, monkeypatch):
    """Ctrl-C while sample loads or writes: exit 130, one line, no traceback, no file (tests/test_faults.py sends a
    real SIGINT to training)."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch_commands.checkpoint, "load_trained", interrupted)
    out = tmp_path / "grid.png"
    assert torch_train.main(["sample", "dcgan", "--checkpoint", str(trained("torch")), "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip() == "gan-torch: interrupted; nothing was written"
    assert not out.exists()
