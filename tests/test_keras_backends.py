"""Keras on JAX and on PyTorch: what differs from its TensorFlow backend, which the rest of the suite tests.

A process holds one Keras backend, so each backend runs in a child process of its own (this file is also its
program: `python tests/test_keras_backends.py jax|torch OUT`); both children start at once, once for the module.
Each child, through the command line and the parity layer:
- trains a tiny WGAN-GP for one epoch with `gan-keras --backend B`, resumes it to epoch 2, samples it, and notes
  which frameworks the process loaded before the parity layer came in (no TensorFlow; on JAX no torch);
- refuses --strategy on the torch backend in one line;
- loads a checkpoint that this (TensorFlow) process wrote and draws its generator's images, and draws its own
  run's images for this process to compare (one Keras checkpoint format on every backend);
- runs the parity checks that exercise each primitive of keras_impl/gradients_<backend>.py against torch_impl,
  on tiny models: several losses from one pass (simultaneous DCGAN: gradients), a pass kept for a later gradient
  (alternating DCGAN: trajectory), the penalty's differentiable input gradient and the critic steps (CGAN), the
  optimiser updates (trajectory), the noise draws (randomness), the PyDataset (data); float64 within 1e-10 (JAX
  with x64). Float32, what users train, is the training run's precision here and `make parity`'s second one.
The full matrix of every check, preset and precision on each backend is `make parity` (--keras-backend all); the
JAX DataParallel run is tests/test_distributed.py's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("jax", "torch")
TINY = ["--dataset", "fake", "--image-size", "16", "--width", "4", "--latent-dim", "8", "--batch-size", "32",
        "--critic-steps", "1", "--quiet"]
CHECKS = [  # model, update order, dtype, the checks that differ per backend
    ("dcgan", "simultaneous", "float64", ("losses", "gradients", "trajectory", "randomness")),
    ("dcgan", "alternating", "float64", ("trajectory",)),
    ("cgan", None, "float64", ("gradients", "gradient_penalty", "trajectory", "dropout", "data")),
]
TIMEOUT = 600


def tiny_config(model: str, **fields):
    from specs.models import get_config

    return get_config(model, "digits", image_size=16, width=4, latent_dim=8, **fields)


def run_config():
    """The configuration the children's runs train (TINY), for a checkpoint of the same shapes."""
    return tiny_config("wgan_gp", batch_size=32, critic_steps=1)


# -------------------------------------------------------------------------------------------------- Fixtures


@pytest.fixture(scope="module")
def tensorflow_checkpoint(tmp_path_factory):
    """A WGAN-GP checkpoint written by this process (TensorFlow backend), and the images its generator draws."""
    import keras_impl.checkpoint as keras_checkpoint
    from keras_impl.trainers import build_trainer
    from specs.runs import checkpoint_meta, sample_inputs

    folder = tmp_path_factory.mktemp("tensorflow-checkpoint")
    config = run_config()
    trainer = build_trainer("wgan_gp", config, seed=3)
    meta = checkpoint_meta("keras", "wgan_gp", config, 0, 8, {"dataset": "fake", "seed": 3, "class_names": []})
    keras_checkpoint.save_checkpoint(trainer, folder / "checkpoint.npz", meta | {"keras_backend": "tensorflow"})
    images = keras_checkpoint.generate(trainer, sample_inputs(config, 0))
    return folder, images


@pytest.fixture(scope="module")
def reports(tmp_path_factory, tensorflow_checkpoint):
    """{backend: (report, out folder, seconds)} from the children, started together."""
    root = tmp_path_factory.mktemp("keras-backends")
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    env |= {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.monotonic()
    processes = {}
    for backend in BACKENDS:
        (root / backend).mkdir()
        log = open(root / f"{backend}.log", "w")
        processes[backend] = (subprocess.Popen([sys.executable, __file__, backend, str(root / backend),
                                                str(tensorflow_checkpoint[0])], env=env, cwd=root, stdout=log,
                                               stderr=subprocess.STDOUT), log)
    results = {}
    for backend, (process, log) in processes.items():
        try:
            process.wait(timeout=TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
        report = root / backend / "report.json"
        output = (root / f"{backend}.log").read_text()
        assert process.returncode == 0 and report.is_file(), f"{backend}: exit {process.returncode}\n{output[-4000:]}"
        results[backend] = (json.loads(report.read_text()), root / backend, time.monotonic() - start)
    return results


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


# -------------------------------------------------------------------------------------------------------- Tests


def test_trains_resumes_and_samples(backend, reports):
    report, out, seconds = reports[backend]
    print(f"\n{backend}: the child took {seconds:.0f} s: {report['seconds']}")
    assert report["status"] == {"train": 0, "resume": 0, "sample": 0}
    run = out / "run"
    assert (run / "losses.csv").read_text().splitlines()[0] == "epoch,step,c_gp,c_loss,c_wass_loss,g_loss"
    assert [line.split(",")[:2] for line in (run / "losses.csv").read_text().splitlines()[1:]] == [["1", "8"],
                                                                                                 ["2", "16"]]
    assert sorted(path.name for path in (run / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    assert len(list((run / "tensorboard" / "train").glob("events.out.tfevents.*"))) == 2  # one per run
    assert (out / "grid.png").is_file()
    assert report["meta"]["keras_backend"] == backend and report["meta"]["epoch"] == 1


def test_loads_only_its_own_framework(backend, reports):
    """No TensorFlow in a JAX or PyTorch run (Keras is told it is absent), no torch in a JAX run. Keras itself
    imports jax wherever it is installed (its Orbax checkpoint callback), whatever the backend."""
    loaded = set(reports[backend][0]["loaded"])
    assert "tensorflow" not in loaded and backend in loaded
    if backend == "jax":
        assert "torch" not in loaded


def test_torch_backend_refuses_several_processes(reports):
    assert reports["torch"][0]["strategy"] == [2, "gan-keras: error: the Keras torch backend trains in one process "
                                               "only, and --strategy mirrored asks for several; train data-parallel "
                                               "with --backend tensorflow or jax, or with gan-torch under torchrun"]


def test_one_checkpoint_format_for_every_backend(backend, reports, tensorflow_checkpoint):
    """The child draws, from this process's checkpoint, the images this process draws; this process draws, from
    the child's run, the images the child draws (float32, different kernels: within 1e-5)."""
    import keras_impl.checkpoint as keras_checkpoint
    from specs.runs import sample_inputs

    _, out, _ = reports[backend]
    assert np.abs(np.load(out / "from_tensorflow.npy") - tensorflow_checkpoint[1]).max() <= 1e-5
    trainer, meta, _ = keras_checkpoint.load_trained("wgan_gp", out / "run")
    images = keras_checkpoint.generate(trainer, sample_inputs(trainer.config, 0))
    assert np.abs(np.load(out / "own.npy") - images).max() <= 1e-5


@pytest.mark.parametrize("index", range(len(CHECKS)))
def test_parity_against_torch(backend, reports, index):
    model, order, dtype, names = CHECKS[index]
    results = reports[backend][0]["checks"][index]
    assert [result["name"] for result in results] == list(names)
    for result in results:
        assert result["passed"] and result["compared"] > 0, result
        if dtype == "float64" and result["name"] not in ("randomness", "dropout"):  # those: statistics of draws
            assert result["max_scaled_diff"] <= 1e-10, result


# ------------------------------------------------------------------------------------------------------ Child


def child(backend: str, out: Path, tensorflow_checkpoint: Path) -> None:
    """One backend's process: see the module's docstring. Writes OUT/report.json."""
    import contextlib
    import io

    import keras_impl.train as train

    report: dict = {"status": {}, "seconds": {}}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        report["seconds"][name] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()

    run, words = out / "run", ["--backend", backend]
    common = [*TINY, "--cache-dir", str(out / "cache"), "--out", str(run)]
    report["status"]["train"] = train.main([*words, "train", "wgan_gp", *common, "--epochs", "1"])
    lap("train")
    report["status"]["resume"] = train.main([*words, "train", "wgan_gp", *common, "--epochs", "2", "--resume"])
    lap("resume")
    report["status"]["sample"] = train.main([*words, "sample", "wgan_gp", "--checkpoint", str(run), "--out",
                                             str(out / "grid.png"), "--quiet"])
    lap("sample")
    report["loaded"] = sorted({name.split(".")[0] for name in sys.modules} & {"torch", "tensorflow", "jax"})
    if backend == "torch":
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = train.main([*words, "train", "wgan_gp", *TINY, "--out", str(out / "refused"), "--strategy",
                                 "mirrored"])
        report["strategy"] = [status, err.getvalue().strip()]

    import keras_impl.checkpoint as keras_checkpoint
    from specs.runs import sample_inputs

    trainer, _, _ = keras_checkpoint.load_trained("wgan_gp", tensorflow_checkpoint)
    np.save(out / "from_tensorflow.npy", keras_checkpoint.generate(trainer, sample_inputs(trainer.config, 0)))
    trainer, report["meta"], _ = keras_checkpoint.load_trained("wgan_gp", run)
    np.save(out / "own.npy", keras_checkpoint.generate(trainer, sample_inputs(trainer.config, 0)))
    lap("checkpoints")

    from parity import checks  # torch_impl comes in now

    lap("parity import")
    report["checks"] = []
    for model, order, dtype, names in CHECKS:
        config = tiny_config(model, **({"update_order": order} if order else {}))
        results = checks.run_checks(model, config, dtype, batch_size=4, checks=names, steps=2)
        report["checks"].append([result.as_dict() for result in results])
        lap(f"{model} {order or ''} {dtype}")
    (out / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = sys.argv[1]
    child(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_missing_gpu_is_one_line_on_each_backend(backend, tmp_path):
    """--device cuda where the backend's framework sees no GPU: the word reaches the framework as it loads
    (JAX_PLATFORMS, KERAS_TORCH_DEVICE), placing one value there fails, and the command says so in one line, exit 2,
    before it reads or writes anything."""
    out = tmp_path / "grid.png"
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("JAX_PLATFORMS", "KERAS_TORCH_DEVICE", "KERAS_BACKEND")}
    done = subprocess.run([sys.executable, "-m", "keras_impl", "--backend", backend, "sample", "wgan_gp",
                           "--checkpoint", str(tmp_path / "none"), "--out", str(out), "--device", "cuda"],
                          capture_output=True, text=True, cwd=ROOT, env=environment, timeout=TIMEOUT)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("gan-keras: error: --device cuda: Keras's "), done.stderr
    assert not out.exists()
