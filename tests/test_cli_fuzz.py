"""Random command lines through `main()`, in process: whatever the words, every outcome is exit status 0, 1 or 2 and
no traceback (a user mistake is one line; argparse's own errors are its usage and one line).

Hypothesis draws a command (train, sample, eval, export of either backend, or `gan-parity convert`), a model, and
flags from each command's vocabulary with values that are often nonsense: negative, zero, NaN, infinite, huge,
empty, words where numbers belong, missing files, a file where a folder belongs, the other backend's run. Training,
when the words allow it, is tiny (a `fake` data set of 16x16 images, width 4, one or two epochs). The examples are
derandomized so that CI draws the same ones every time; GAN_PARITY_FUZZ_EXAMPLES=500 (and a random seed:
GAN_PARITY_FUZZ_RANDOM=1) explores further.
"""

import contextlib
import dataclasses
import io
import os
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import parity.__main__ as parity_main
import torch_impl.train as torch_train
from specs.models import PRESETS

# isort: split
import keras_impl.train as keras_train  # after torch_impl: torch before TensorFlow

BACKENDS = {"torch": torch_train, "keras": keras_train}
TINY = ["--dataset", "fake", "--image-size", "16", "--width", "4", "--latent-dim", "8", "--batch-size", "64", "--quiet"]
EXAMPLES = int(os.environ.get("GAN_PARITY_FUZZ_EXAMPLES", "45"))
NONSENSE = ["-1", "0", "nan", "inf", "-inf", "1e309", "", "abc", "99999999999999999999", "2147483647", "0.5", "3", "2",
            "1e-3",
            "{missing}", "{file}", "{folder}", "{empty}", "é"]  # {...}: paths made by the fixture
PATHS = {"{missing}": "missing/nothing", "{file}": "a_file.txt", "{folder}": "photos", "{empty}": "empty"}


def config_flags(model: str) -> list[str]:
    config_class = type(next(iter(PRESETS[model].values())))
    return [f"--{field.name.replace('_', '-')}" for field in dataclasses.fields(config_class)]


TRAIN_VALUES = {  # flag: values that make sense, to mix with NONSENSE
    "--dataset": ["fake", "digits", "folder", "celeba", "mnist", "lsun"], "--data-dir": ["{folder}", "{empty}"],
    "--attribute": ["Smiling", "Bald"], "--cache-dir": ["cache", "{file}/cache"], "--preset": ["book", "digits"],
    "--seed": ["1", "9223372036854775807"], "--keep-checkpoints": ["2"], "--alpha": ["black", "refuse"],
    "--fit": ["crop", "pad"], "--epochs": ["2"], "--image-size": ["32"], "--channels": ["3"],
    "--update-order": ["simultaneous"], "--alpha-distribution": ["normal"], "--book-label-noise": ["true", "no"],
}
OUTS = ["run", "fresh/run", "torch_run", "keras_run", "{file}", "{folder}", "{file}/run", ""]
PICTURES = ["grid.png", "grid.jpg", "grid.webp", "grid.gif", "grid", "{folder}", "{file}/grid.png", ""]
CHECKPOINTS = ["torch_run", "keras_run", "torch_run/checkpoint.pt", "keras_run/checkpoint.npz", "{missing}", "{file}",
               "{folder}", ""]


def value(options: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(options + NONSENSE)


@st.composite
def command_lines(draw) -> tuple[str, list[str]]:
    """(program, argv): a backend's gan-torch / gan-keras words, or gan-parity convert's."""
    backend = draw(st.sampled_from(list(BACKENDS)))
    model = draw(st.sampled_from(list(PRESETS)))
    command = draw(st.sampled_from(["train", "train", "sample", "eval", "export", "convert"]))
    if command == "train":
        argv = ["train", model, *TINY, "--epochs", "1", "--cache-dir", "cache", "--out", draw(st.sampled_from(OUTS))]
        flags = sorted(TRAIN_VALUES) + config_flags(model) + ["--resume", "--verbose"]
        for flag in draw(st.lists(st.sampled_from(flags), max_size=3, unique=True)):
            if flag in ("--resume", "--verbose"):
                argv.append(flag)
            else:
                argv += [flag, draw(value(TRAIN_VALUES.get(flag, [])))]
        return backend, argv
    checkpoint = draw(st.sampled_from(CHECKPOINTS + NONSENSE[:3]))
    if command == "convert":
        return "parity", ["convert", checkpoint, "--to", draw(st.sampled_from(["torch", "keras", "onnx"])), "--out",
                          draw(st.sampled_from(["converted.pt", "converted.npz", "{folder}", "{file}/x.pt", ""]))]
    argv = [command, model, "--checkpoint", checkpoint, "--quiet"]
    options = {
        "sample": {"--out": PICTURES, "--num": ["4", "64"], "--seed": ["5"], "--label": ["0", "1", "9", "china"]},
        "eval": {"--num": ["4", "8", "2000000"], "--seed": ["2"], "--dataset": ["fake", "folder", "digits"],
                 "--data-dir": ["{folder}"], "--cache-dir": ["cache"], "--alpha": ["black"], "--fit": ["pad"],
                 "--json": [], "--attribute": ["Smiling"]},
        "export": {"--out": ["generator.pt2", "generator.keras", "generator.onnx", "{folder}", ""],
                   "--format": ["torch", "keras", "onnx"]},
    }[command]
    for flag in draw(st.lists(st.sampled_from(sorted(options)), max_size=3, unique=True)):
        argv += [flag] if not options[flag] else [flag, draw(value(options[flag]))]
    return backend, argv


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with a finished tiny DCGAN run of each backend, a file, an empty folder and a folder of two classes
    of pictures; each example runs in a copy of it."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "a_file.txt").write_text("not a folder")
    (root / "empty").mkdir()
    for name, level in (("china", 40), ("flower", 200)):
        (root / "photos" / name).mkdir(parents=True)
        for index in range(40):
            Image.fromarray(np.full((12, 12, 3), level + index, np.uint8)).save(root / "photos" / name / f"{index}.png")
    for backend, module in BACKENDS.items():
        argv = ["train", "dcgan", *TINY, "--epochs", "1", "--cache-dir", str(root / "cache"), "--out",
                str(root / f"{backend}_run")]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert module.main(argv) == 0
    return root


def run(program: str, argv: list[str]) -> tuple[int, str]:
    """The exit status and what went to stderr; SystemExit (argparse) read as its status."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            status = parity_main.main(argv) if program == "parity" else BACKENDS[program].main(argv)
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else 2
    return status, err.getvalue()


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("GAN_PARITY_FUZZ_RANDOM"),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(line=command_lines())
def test_any_command_line_ends_in_0_1_or_2_without_a_traceback(workspace, tmp_path_factory, monkeypatch, line):
    program, argv = line
    here = tmp_path_factory.mktemp("example")
    for name in ("a_file.txt", "empty", "photos", "torch_run", "keras_run"):
        (shutil.copytree if (workspace / name).is_dir() else shutil.copy)(workspace / name, here / name)
    argv = [PATHS.get(word, word) for word in argv]
    argv = [word.replace("{file}", "a_file.txt").replace("{folder}", "photos") for word in argv]
    monkeypatch.chdir(here)  # relative paths, and any default --out, land in the example's folder
    monkeypatch.setenv("GAN_PARITY_CACHE", str(workspace / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        status, err = run(program, argv)
    finally:
        torch.set_num_threads(threads)
    assert status in (0, 1, 2), (program, argv, status, err[-3000:])
    assert "Traceback" not in err, (program, argv, err[-3000:])
