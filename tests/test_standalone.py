"""Each backend stands alone: its command line trains where the other framework is not installed, says nothing
alarming, and writes its framework's own files, which the framework's plain API loads and draws the run's images
with; `export` writes a generator that loads without this project.

"Not installed" is made real in a child process: BOOTSTRAP hides the named packages from every import finder, so
`import tensorflow` raises ModuleNotFoundError and `importlib.util.find_spec("tensorflow")` answers None, as on a
machine without it; the child reports what was looked for (and by which module) and which frameworks it loaded.
The two one-epoch runs (one per backend, tiny DCGAN on `fake`) are started together, once for the module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import torch
from PIL import Image

import keras_impl.checkpoint as keras_checkpoint
import keras_impl.dcgan as keras_dcgan
import keras_impl.train as keras_train
import keras_impl.trainers as keras_trainers
import torch_impl.checkpoint as torch_checkpoint
import torch_impl.dcgan as torch_dcgan
import torch_impl.train as torch_train
import torch_impl.trainers as torch_trainers
from specs import logs
from specs.datasets import to_uint8
from specs.images import grid
from specs.models import config_from_dict, get_config
from specs.runs import sample_inputs

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "fake", "--image-size", "16", "--width", "4", "--latent-dim", "8", "--batch-size", "32"]
OURS = ("specs", "torch_impl", "keras_impl", "parity", "inception_fid")
OTHER = {  # backend: the packages hidden from its process (the other framework and the other backend)
    "torch": "tensorflow,keras,tf_keras,keras_impl",
    "keras": "torch,torchvision,torchmetrics,functorch,torch_impl",
}
FRAMEWORKS = {"torch": {"torch"}, "keras": {"tensorflow", "keras"}}
BOOTSTRAP = textwrap.dedent('''
    import atexit, json, runpy, sys
    hidden = set(filter(None, sys.argv[1].split(",")))
    looked_for = []

    def importer():
        frame = sys._getframe(2)
        while frame and (frame.f_globals.get("__name__") or "").startswith(("importlib", "_frozen_importlib")):
            frame = frame.f_back
        return frame.f_globals.get("__name__") if frame else None

    class Hiding:
        def __init__(self, finder):
            self.finder = finder
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in hidden:
                looked_for.append([name, importer()])
                return None
            find = getattr(self.finder, "find_spec", None)
            return None if find is None else find(name, path, target)
        def __getattr__(self, attribute):
            return getattr(self.finder, attribute)

    sys.meta_path[:] = [Hiding(finder) for finder in sys.meta_path]

    @atexit.register
    def report():
        loaded = sorted({name.split(".")[0] for name in sys.modules} & {"torch", "tensorflow", "keras"})
        sys.__stdout__.write("IMPORTS " + json.dumps({"looked_for": looked_for, "loaded": loaded}) + "\\n")

    sys.argv = sys.argv[2:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
''')
ALARMING = ("absl", "tensorflow", "cuda", "cuInit", "oneDNN", "remapper", "Traceback", "Warning", "WARNING", "E0000",
            "W0000", "I0000")


def child(hidden: str, module: str, *argv: str) -> list[str]:
    """The command line of a child process that runs `python -m module argv` with `hidden` not installed."""
    return [sys.executable, "-c", BOOTSTRAP, hidden, module, *argv]


def environment() -> dict:
    """This environment, without the TF_CPP_MIN_LOG_LEVEL that tests/conftest.py sets: the command lines must be
    quiet by themselves."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return env | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def imports(stdout: str) -> dict:
    line = next(line for line in stdout.splitlines() if line.startswith("IMPORTS "))
    return json.loads(line.removeprefix("IMPORTS "))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{backend: (run folder, exit status, stdout, stderr)} of `gan-<backend> train dcgan` for one epoch, each in a
    process where the other framework is not installed; both started at once."""
    root = tmp_path_factory.mktemp("standalone")
    processes = {}
    for backend in OTHER:
        argv = ["train", "dcgan", *TINY, "--epochs", "1", "--out", str(root / backend), "--cache-dir",
                str(root / "cache")]
        command = child(OTHER[backend], f"{backend}_impl", *argv)
        processes[backend] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                              env=environment(), cwd=root)
    results = {}
    for backend, process in processes.items():
        out, err = process.communicate(timeout=300)
        results[backend] = (root / backend, process.returncode, out, err)
    return results


@pytest.fixture(params=list(OTHER))
def backend(request) -> str:
    return request.param


# ------------------------------------------------------------------------------------- The other framework absent


def test_each_command_line_trains_without_the_other_framework(backend, runs):
    run, status, out, err = runs[backend]
    assert status == 0, err[-3000:]
    report = imports(out)
    assert set(report["loaded"]) == FRAMEWORKS[backend]  # its own framework, and nothing of the other
    ours = [entry for entry in report["looked_for"] if (entry[1] or "").split(".")[0] in OURS]
    assert ours == []  # no module of this project even looked for the other framework
    assert (run / "samples" / "epoch_0001.png").is_file() and (run / "losses.csv").is_file()


def test_a_successful_run_says_nothing_alarming(backend, runs):
    """stderr of the run holds the progress bar (torch's tqdm; Keras writes its own to stdout) and the command's own
    lines, nothing else: no TensorFlow, absl or CUDA line, no warning."""
    _, status, out, err = runs[backend]
    assert status == 0
    lines = [part.strip() for line in err.splitlines() for part in line.split("\r") if part.strip()]
    progress = [line for line in lines if line.startswith("Epoch 1/1")]
    ours = [line for line in lines if line.startswith(f"gan-{backend}: ")]
    assert ours == [line for line in lines if line not in progress] and len(ours) == 3, err
    assert ours[0].startswith(f"gan-{backend}: data: fake: 256 images, 10 classes from random labels: ")
    assert ours[1] == {"torch": "gan-torch: training on cpu (1 thread) in float32",
                       "keras": "gan-keras: training on /CPU:0 in float32"}[backend]
    assert f"gan-{backend}: trained to epoch 1;" in ours[2]
    assert not [word for word in ALARMING if word in err], err


@pytest.mark.parametrize("name", ["torch", "keras"])
def test_help_needs_no_framework(name):
    """--help with neither framework installed: the words are parsed before a framework is imported."""
    neither = "torch,torchvision,torchmetrics,functorch,tensorflow,keras,tf_keras"
    done = subprocess.run(child(neither, f"{name}_impl", "train", "dcgan", "--help"),
                          capture_output=True, text=True, env=environment())
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "--learning-rate" in done.stdout and imports(done.stdout)["loaded"] == []


MISSING = {  # case: (hidden packages, module, words, the one line on stderr)
    "gan-torch without torch": ("torch", "torch_impl", ["train", "dcgan", *TINY, "--out", "run"],
                                "gan-torch: error: gan-torch needs torch, which is not installed here: "
                                "pip install 'gan-parity[torch]'"),
    "gan-keras without TensorFlow": ("tensorflow", "keras_impl", ["sample", "dcgan", "--checkpoint", "x"],
                                     "gan-keras: error: gan-keras needs tensorflow, which is not installed here: "
                                     "pip install 'gan-parity[keras]'"),
    "gan-keras --backend jax without JAX": ("jax,jaxlib", "keras_impl", ["--backend", "jax", "sample", "dcgan",
                                                                         "--checkpoint", "x"],
                                            "gan-keras: error: gan-keras --backend jax needs jax, which is not "
                                            "installed here: pip install 'gan-parity[jax]'"),
    "gan-keras --backend torch without torch": ("torch", "keras_impl", ["sample", "dcgan", "--backend", "torch",
                                                                          "--checkpoint", "x"],
                                                "gan-keras: error: gan-keras --backend torch needs torch, which is "
                                                "not installed here: pip install 'gan-parity[keras-torch]'"),
    "gan-parity without either": ("torch,tensorflow,keras", "parity", ["check", "dcgan"],
                                  "gan-parity: error: the parity layer runs both backends, and torch, tensorflow and "
                                  "keras are not installed here: pip install 'gan-parity[all]'"),
}


@pytest.mark.parametrize("case", list(MISSING))
def test_a_missing_framework_is_one_line_naming_the_extra(case, tmp_path):
    hidden, module, argv, expected = MISSING[case]
    done = subprocess.run(child(hidden, module, *argv), capture_output=True, text=True, env=environment(),
                          cwd=tmp_path)
    assert done.returncode == 2 and done.stderr == expected + "\n", done.stderr
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------- The framework's own files


def run_grid(run: Path) -> np.ndarray:
    """The run's sample grid after epoch 1, as uint8 (H, W, 1)."""
    with Image.open(run / "samples" / "epoch_0001.png") as picture:
        return np.asarray(picture)[..., None]


def test_a_torch_user_loads_the_generator_state_dict(runs):
    """generator.pt: a plain state_dict that torch.load(weights_only=True) reads and Generator.load_state_dict takes
    as it is; in inference mode it draws the run's own sample grid, pixel for pixel."""
    run = runs["torch"][0]
    meta = torch.load(run / "checkpoint.pt", weights_only=True)["meta"]
    config = config_from_dict("dcgan", meta["config"])
    state = torch.load(run / "generator.pt", weights_only=True)
    assert list(state)[:2] == ["conv1.weight", "bn1.weight"]  # the network's own names, no prefix
    generator = torch_dcgan.Generator(config)
    generator.load_state_dict(state)  # strict: every tensor, nothing else
    torch_dcgan.Discriminator(config).load_state_dict(torch.load(run / "discriminator.pt", weights_only=True))
    with torch.no_grad():
        images = generator.eval()(torch.from_numpy(sample_inputs(config, meta["data"]["seed"]).z))
    assert np.array_equal(grid(to_uint8(images.permute(0, 2, 3, 1).numpy())), run_grid(run))


def test_a_keras_user_loads_generator_keras(runs):
    """generator.keras: keras.models.load_model opens it (the networks are registered as serializable), and it
    draws the run's own sample grid; the .weights.h5 files load into freshly built networks."""
    run = runs["keras"][0]
    generator = keras.models.load_model(run / "generator.keras")
    assert isinstance(generator, keras_dcgan.Generator) and generator.config.width == 4
    images = keras.ops.convert_to_numpy(generator(sample_inputs(generator.config, 0).z, training=False))
    assert np.array_equal(grid(to_uint8(images)), run_grid(run))
    fresh = keras_dcgan.Generator(generator.config)
    fresh.load_weights(run / "generator.weights.h5")
    assert all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), generator.get_weights()))
    keras_dcgan.Discriminator(generator.config).load_weights(run / "discriminator.weights.h5")


# ---------------------------------------------------------------------------------------------------- Export


def test_torch_export_runs_without_this_project(runs, tmp_path, capsys):
    """`gan-torch export`: a torch.export program that torch.export.load runs, with any batch size, drawing what
    the checkpoint's generator draws."""
    run, out = runs["torch"][0], tmp_path / "generator.pt2"
    assert torch_train.main(["export", "dcgan", "--checkpoint", str(run), "--out", str(out)]) == 0
    assert f"written to {out} (torch)" in capsys.readouterr().err
    program = torch.export.load(out).module()
    trainer, _, _ = torch_checkpoint.load_trained("dcgan", run)
    for count in (3, 64):
        inputs = sample_inputs(trainer.config, 0, count)
        images = program(torch.from_numpy(inputs.z)).permute(0, 2, 3, 1).detach().numpy()
        assert np.abs(images - torch_checkpoint.generate(trainer, inputs)).max() <= 1e-6


def test_keras_export_is_built_in_layers_only(runs, tmp_path, capsys):
    """`gan-keras export`: a .keras file of Keras's built-in layers (no class of this project in its config), which
    keras.models.load_model opens and which draws what the checkpoint's generator draws."""
    run, out = runs["keras"][0], tmp_path / "generator.keras"
    assert keras_train.main(["export", "dcgan", "--checkpoint", str(run), "--out", str(out)]) == 0
    assert f"written to {out} (keras)" in capsys.readouterr().err
    config = zipfile.ZipFile(out).read("config.json").decode()
    assert "gan_parity" not in config and "keras_impl" not in config
    model = keras.models.load_model(out)
    trainer, _, _ = keras_checkpoint.load_trained("dcgan", run)
    inputs = sample_inputs(trainer.config, 0, 5)
    images = keras.ops.convert_to_numpy(model(inputs.z))
    assert np.abs(images - keras_checkpoint.generate(trainer, inputs)).max() <= 1e-6


CGAN = get_config("cgan", "digits", image_size=16, width=4, latent_dim=8, num_classes=3)


def test_a_conditional_generator_exports_with_its_labels(tmp_path):
    """The CGAN's export takes (z, one-hot labels), in both backends, and draws what its trainer draws."""
    inputs = sample_inputs(CGAN, 0)
    torch_trainer = torch_trainers.build_trainer("cgan", CGAN)
    torch_checkpoint.export_generator(torch_trainer, tmp_path / "g.pt2", "torch")
    program = torch.export.load(tmp_path / "g.pt2").module()
    images = program(torch.from_numpy(inputs.z), torch.from_numpy(inputs.one_hot)).permute(0, 2, 3, 1).detach()
    assert np.abs(images.numpy() - torch_checkpoint.generate(torch_trainer, inputs)).max() <= 1e-6
    keras_trainer = keras_trainers.build_trainer("cgan", CGAN)
    keras_checkpoint.export_generator(keras_trainer, tmp_path / "g.keras", "keras")
    model = keras.models.load_model(tmp_path / "g.keras")
    assert [tuple(shape) for shape in model.input_shape] == [(None, 8), (None, 3)]
    images = keras.ops.convert_to_numpy(model([inputs.z, inputs.one_hot]))
    assert np.abs(images - keras_checkpoint.generate(keras_trainer, inputs)).max() <= 1e-6


@pytest.mark.skipif(importlib.util.find_spec("onnx") is not None, reason="onnx is installed here")
@pytest.mark.parametrize("name", ["torch", "keras"])
def test_onnx_without_its_tools_is_one_line(name, runs, tmp_path, capsys):
    module = {"torch": torch_train, "keras": keras_train}[name]
    out = tmp_path / "generator.onnx"
    argv = ["export", "dcgan", "--checkpoint", str(runs[name][0]), "--format", "onnx", "--out", str(out)]
    assert module.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"gan-{name}: error: --format onnx needs "), err
    assert "pip install" in err[0] and not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------- Messages


def test_native_notices_are_dropped_and_everything_else_kept(capfd):
    """What a native library writes to file descriptor 2 while it loads: its notices go, its warnings, errors and
    any traceback stay, in order (Python's own sys.stderr writes to that descriptor too in a command line)."""
    notices = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
               "I0000 00:00:1796174113.654022    8360 port.cc:153] oneDNN custom operations are on.\n"
               "I0000 00:00:1796174116.998504    8360 cudart_stub.cc:31] Could not find cuda drivers.\n"
               "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
               "appropriate compiler flags.\n")
    kept = ("E0000 00:00:1796174118.523743    8360 cuda_platform.cc:52] failed call to cuInit: a real error\n"
            "Traceback (most recent call last):\n  ValueError: a real one\n")
    with logs.native_notices_dropped():
        os.write(2, (notices + kept).encode())
    assert capfd.readouterr().err == kept
    with logs.native_notices_dropped(enabled=False):  # --verbose: everything
        os.write(2, notices.encode())
    assert capfd.readouterr().err == notices
