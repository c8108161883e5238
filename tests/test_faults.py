"""Faults, in both backends: a run killed mid-epoch resumes exactly, a diverged run keeps its last good checkpoint,
the same seed gives the same run, foreign checkpoints are refused with what to do, and an unwritable or full disk is
reported before training starts (or, mid-run, without losing the last checkpoint).

Runs are tiny DCGANs on the `fake` data set, in-process through `<backend>_impl.train.main([...])`, except the run
that is killed: a real `gan-torch` / `gan-keras` process that receives a real SIGKILL.
"""

import collections
import contextlib
import csv
import errno
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

import specs.runs
import torch_impl.checkpoint as torch_checkpoint
import torch_impl.commands as torch_commands
import torch_impl.train as torch_train
import torch_impl.trainers as torch_trainers
from specs.datasets import DatasetSpec
from specs.images import write_atomically
from specs.models import config_from_dict

# isort: split
import keras_impl.checkpoint as keras_checkpoint  # after torch_impl: torch before TensorFlow
import keras_impl.commands as keras_commands
import keras_impl.train as keras_train
import keras_impl.trainers as keras_trainers

# isort: split
import tensorflow as tf

BACKENDS = {"torch": torch_train, "keras": keras_train}
CHECKPOINTS = {"torch": torch_checkpoint, "keras": keras_checkpoint}
COMMANDS = {"torch": torch_commands, "keras": keras_commands}
BUILD = {"torch": torch_trainers.build_trainer, "keras": keras_trainers.build_trainer}
TINY = ["--dataset", "fake", "--image-size", "16", "--width", "4", "--latent-dim", "8", "--batch-size", "32"]
STEPS = 256 // 32  # train steps per epoch of TINY: fake_size // batch size
LONG = [*TINY[:-1], "4"]  # 64 steps an epoch: long enough to be killed in the middle of one
KILL_EPOCHS = 2

# --------------------------------------------------------------------------------------------------- Helpers


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """torch on one thread in this module: on two busy cores its two threads slow these tiny runs down several
    times over. The killed process gets OMP_NUM_THREADS=1, so that every torch run here computes the same way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(backend: str, out: Path, *flags: str, epochs: int = 1, model: str = "dcgan", config=TINY) -> int:
    """`gan-<backend> train MODEL` in-process, quiet; flags given later override the configuration's."""
    argv = ["train", model, *config, "--quiet", "--epochs", str(epochs), "--cache-dir", str(out.parent / "cache"),
            "--out", str(out), *flags]
    return BACKENDS[backend].main(argv)


def quietly(function, *args, **kwargs):
    """Call function, keeping what it prints out of the calling test's capsys; return (result, printed)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        result = function(*args, **kwargs)
    return result, printed.getvalue()


def one_line(capsys, backend: str, kind: str = "error: ") -> str:
    """The captured stderr, asserted to be one line `gan-<backend>: <kind>...` without a traceback."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"gan-{backend}: {kind}"), err
    return lines[0]


def files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def temp_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*.tmp"))


def checkpoint(backend: str, run: Path) -> Path:
    return run / CHECKPOINTS[backend].CHECKPOINT


def tensors(backend: str, state: dict) -> list[np.ndarray]:
    """Every array a loaded checkpoint holds: networks, optimiser state (and, in torch, the RNG states)."""
    if backend == "keras":
        return list(state["arrays"].values())
    found = []

    def walk(value):
        if torch.is_tensor(value):
            found.append(value.numpy())
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk({key: value for key, value in state.items() if key != "meta"})
    return found


def assert_good_checkpoint(backend: str, run: Path, epoch: int) -> None:
    """The run's checkpoint loads, holds the given epoch (counted from 1), and every number in it is finite."""
    state = CHECKPOINTS[backend].load_checkpoint(checkpoint(backend, run))
    assert state["meta"]["epoch"] + 1 == epoch
    arrays = tensors(backend, state)
    assert arrays and all(np.isfinite(array).all() for array in arrays if array.dtype.kind == "f")


def log_rows(run: Path) -> list[dict]:
    with open(run / "losses.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def assert_whole(backend: str, run: Path, epoch: int) -> None:
    """Every file of the run folder is complete and readable, and no temp file of an atomic write is left."""
    assert temp_files(run) == []
    assert_good_checkpoint(backend, run, epoch)
    rows = log_rows(run)
    assert [int(row["epoch"]) for row in rows] == list(range(1, len(rows) + 1)) and len(rows) >= epoch
    assert all(np.isfinite(float(value)) for row in rows for value in row.values())
    pictures = [run / "losses.png", *sorted((run / "samples").iterdir())]
    assert len(pictures) == 1 + len(rows)
    for path in pictures:
        with Image.open(path) as picture:
            picture.load()  # raises on a truncated PNG
    events = list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and all(list(EventFileLoader(str(path)).Load()) for path in events)


@pytest.fixture(scope="module")
def trained(made_once):
    """trained(backend): a finished 1-epoch TINY run, made once; read-only (copy it before changing it)."""
    return lambda backend: made_once(f"faults-{backend}", lambda out: train(backend, out))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """reference(backend): an uninterrupted in-process LONG run of KILL_EPOCHS epochs, made once; read-only."""
    runs: dict[str, Path] = {}

    def get(backend: str) -> Path:
        if backend not in runs:
            out = tmp_path_factory.mktemp(f"reference-{backend}") / "run"
            status, printed = quietly(train, backend, out, epochs=KILL_EPOCHS, config=LONG)
            assert status == 0, printed
            runs[backend] = out
        return runs[backend]

    return get


@pytest.fixture(params=list(BACKENDS))
def backend(request) -> str:
    return request.param


def other_backend(backend: str) -> str:
    return next(name for name in BACKENDS if name != backend)


# ------------------------------------------------------------------------------------------- Killed mid-epoch


Killed = collections.namedtuple("Killed", "run returncode checkpoint_epoch log_rows samples log")


@pytest.fixture(scope="module")
def signalled(tmp_path_factory):
    """Both backends' `train` as real processes, twice each, all started together (each imports its own framework
    only). As soon as a run's checkpoint exists and its progress bar shows epoch 2, it is stopped (SIGSTOP) and
    its run folder read, then killed with SIGKILL; or it is sent SIGINT (what Ctrl-C sends) and left to end.
    Returns {(backend, signal): Killed}."""
    root = tmp_path_factory.mktemp("killed")
    processes, logs = {}, {}
    for name in BACKENDS:
        script = Path(sys.executable).with_name(f"gan-{name}")
        assert script.is_file(), f"gan-{name} is not installed beside {sys.executable}: pip install -e ."
        for number in (signal.SIGKILL, signal.SIGINT):
            key, out = (name, number), root / f"{name}-{number.name}"
            argv = [str(script), "train", "dcgan", *LONG, "--epochs", str(KILL_EPOCHS), "--cache-dir",
                    str(root / "cache"), "--out", str(out)]  # not --quiet: the progress bar tells when epoch 2 began
            env = os.environ | {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
            logs[key] = root / f"{name}-{number.name}.log"
            with open(logs[key], "wb") as log:
                processes[key] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    results, interrupted = {}, set()
    deadline = time.monotonic() + 400

    def record(key, out):
        state = CHECKPOINTS[key[0]].load_checkpoint(checkpoint(key[0], out))
        rows, samples = log_rows(out), sorted(path.name for path in (out / "samples").iterdir())
        return Killed(out, processes[key].returncode, state["meta"]["epoch"] + 1, len(rows), samples,
                      logs[key].read_text(errors="replace"))

    try:
        while len(results) < len(processes):
            for key, process in processes.items():
                (name, number), out = key, root / f"{key[0]}-{key[1].name}"
                if key in interrupted and process.poll() is not None:  # Ctrl-C'd, and ended by itself
                    results[key] = record(key, out)
                    interrupted.discard(key)
                if key in results or key in interrupted or not checkpoint(name, out).exists():
                    continue
                if f"Epoch 2/{KILL_EPOCHS}" not in logs[key].read_text(errors="replace"):
                    continue
                if number == signal.SIGINT:
                    os.kill(process.pid, signal.SIGINT)  # what Ctrl-C sends; the run ends by itself
                    interrupted.add(key)
                    continue
                os.kill(process.pid, signal.SIGSTOP)  # frozen: what is read now is what SIGKILL will leave
                killed = record(key, out)
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=60)
                results[key] = killed._replace(returncode=process.returncode)
            for key, process in processes.items():
                assert key in results or key in interrupted or process.poll() is None, \
                    f"gan-{key[0]} ended before its signal: " + logs[key].read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "no run reached epoch 2 and stopped in 400 s"
            time.sleep(0.005)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


@pytest.fixture(scope="module")
def killed(signalled):
    """{backend: Killed} of the runs killed with SIGKILL in the middle of epoch 2."""
    return {name: result for (name, number), result in signalled.items() if number == signal.SIGKILL}


def test_killed_run_leaves_whole_files_and_resumes_exactly(backend, killed, reference, capsys):
    """SIGKILL in the middle of epoch 2: every file left is whole (the checkpoint of epoch 1 loads, losses.csv
    parses, every PNG decodes, no temp file), and --resume redoes epoch 2 from that checkpoint and ends with the
    same losses.csv and samples, byte for byte, as the run that was never interrupted."""
    result = killed[backend]
    assert result.returncode == -signal.SIGKILL, result.log[-2000:]
    assert (result.checkpoint_epoch, result.log_rows, result.samples) == (1, 1, ["epoch_0001.png"])  # mid-epoch 2
    run = result.run
    assert_whole(backend, run, epoch=1)
    # What a kill in the middle of a write would leave (the temp file of an atomic write) is cleared by the resume.
    (run / f".{checkpoint(backend, run).name}.x1y2z3.tmp").write_bytes(b"half a checkpoint")
    (run / "samples" / ".epoch_0002.png.x1y2z3.tmp").write_bytes(b"half a picture")
    assert train(backend, run, "--resume", epochs=KILL_EPOCHS, config=LONG) == 0
    assert_whole(backend, run, epoch=2)
    full = reference(backend)
    assert (run / "losses.csv").read_bytes() == (full / "losses.csv").read_bytes()
    assert (run / "samples" / "epoch_0002.png").read_bytes() == (full / "samples" / "epoch_0002.png").read_bytes()


def test_ctrl_c_stops_with_where_and_how_to_continue(backend, signalled, reference, capsys):
    """SIGINT (Ctrl-C) in the middle of epoch 2: exit 130 and one line, no traceback (it was a long
    KeyboardInterrupt traceback in both backends): where training stopped, the last checkpoint and the command that
    continues; whole files; and that command, run as printed, ends as the run that was never interrupted."""
    result = signalled[(backend, signal.SIGINT)]
    assert result.returncode == 130, result.log[-3000:]
    assert "Traceback" not in result.log and "KeyboardInterrupt" not in result.log
    last = result.log.strip().splitlines()[-1]
    prefix = f"gan-{backend}: interrupted at epoch 2, step "
    assert last.startswith(prefix), result.log[-2000:]
    step, rest = last[len(prefix):].split(";", 1)
    assert 64 <= int(step) < 2 * 64  # LONG: 64 steps an epoch; the steps done, within the second
    command = rest.split("; continue with: ")[1]
    assert rest.startswith(" the last checkpoint is epoch 1; continue with: gan-")
    words = shlex.split(command)
    assert words[0] == f"gan-{backend}" and words[-1] == "--resume" and words[words.index("--out") + 1] == str(
        result.run)
    assert (result.checkpoint_epoch, result.log_rows, result.samples) == (1, 1, ["epoch_0001.png"])
    assert_whole(backend, result.run, epoch=1)
    status, printed = quietly(BACKENDS[backend].main, words[1:])
    assert status == 0, printed
    full = reference(backend)
    assert (result.run / "losses.csv").read_bytes() == (full / "losses.csv").read_bytes()
    second = "samples/epoch_0002.png"
    assert (result.run / second).read_bytes() == (full / second).read_bytes()


def test_ctrl_c_waits_for_an_epochs_files(tmp_path):
    """Ctrl-C while an epoch's files are being written is held until they are all written, then raised."""
    run = specs.runs.Run(tmp_path, "checkpoint.pt")
    written = []
    with pytest.raises(KeyboardInterrupt), run.saving():
        os.kill(os.getpid(), signal.SIGINT)
        written.append("checkpoint")  # reached: the signal waited
        write_atomically(tmp_path / "checkpoint.pt", lambda handle: handle.write(b"whole"))
        written.append("networks")
    assert written == ["checkpoint", "networks"] and (tmp_path / "checkpoint.pt").read_bytes() == b"whole"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ------------------------------------------------------------------------------------------------ Determinism


def test_same_seed_same_run(backend, reference, tmp_path, capsys):
    """Two runs with one seed on CPU write the same losses.csv and samples, byte for byte, and the same weights;
    another seed writes other losses (the comparison can fail)."""
    again = tmp_path / "again"
    assert train(backend, again, epochs=KILL_EPOCHS, config=LONG) == 0
    full = reference(backend)
    assert (again / "losses.csv").read_bytes() == (full / "losses.csv").read_bytes()
    assert files(again / "samples") == files(full / "samples")
    module = CHECKPOINTS[backend]
    ours, theirs = (tensors(backend, module.load_checkpoint(checkpoint(backend, run))) for run in (again, full))
    assert len(ours) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    seeded = tmp_path / "seed1"
    assert train(backend, seeded, "--seed", "1", epochs=1, config=LONG) == 0
    assert log_rows(seeded)[0] != log_rows(full)[0]


# ----------------------------------------------------------------------------------------------- Divergence


def test_huge_learning_rate_stops_at_once(backend, tmp_path, capsys):
    """--learning-rate 1e30 makes a loss NaN in the first step: exit 1, one line saying where and that no epoch
    finished (so no checkpoint), and nothing left behind."""
    run = tmp_path / "run"
    assert train(backend, run, "--learning-rate", "1e30", epochs=2) == 1
    message = one_line(capsys, backend, "training stopped, ")
    assert "a loss is not finite at batch 1: " in message and "nan" in message
    assert "no epoch finished, so no checkpoint was written" in message and "--learning-rate" in message
    assert not run.exists()  # its TensorBoard folder, begun, is removed with it: the next run there starts clean


def poison_torch(batches, index):
    """torch_impl.commands.batches, with every image of the run's `index`-th batch (counted over epochs) NaN."""
    seen = [0]

    def poisoned(*args, **kwargs):
        for batch in batches(*args, **kwargs):
            seen[0] += 1
            yield batch.fill_(float("nan")) if seen[0] == index + 1 else batch

    return poisoned


def poison_keras(batches, index):
    """keras_impl.commands.batches, with every image of the run's `index`-th batch NaN."""

    def poisoned(*args, **kwargs):
        dataset = batches(*args, **kwargs).enumerate()
        return dataset.map(lambda i, images: tf.where(i == index, float("nan"), images))

    return poisoned


POISON = {"torch": poison_torch, "keras": poison_keras}


def test_nan_in_epoch_two_keeps_epoch_one(backend, tmp_path, capsys, monkeypatch):
    """NaN data in the third batch of epoch 2: the run stops there with exit 1 and one line naming the batch and
    the kept checkpoint, which loads, holds epoch 1 and only finite numbers; nothing of epoch 2 is written."""
    module = COMMANDS[backend]
    monkeypatch.setattr(module, "batches", POISON[backend](module.batches, STEPS + 2))
    run = tmp_path / "run"
    assert train(backend, run, epochs=3) == 1
    message = one_line(capsys, backend, "training stopped, ")
    assert "a loss is not finite at batch 3: " in message and "nan" in message
    assert f"the last good checkpoint is kept in {checkpoint(backend, run)}" in message
    assert_whole(backend, run, epoch=1)
    assert len(log_rows(run)) == 1


def poison_weights(backend: str, trainer) -> None:
    if backend == "torch":
        with torch.no_grad():
            next(trainer.parameters()).fill_(float("nan"))
    else:
        variable = trainer.trainable_variables[0]
        variable.assign(np.full(variable.shape, np.nan, dtype=variable.dtype))


def test_weights_broken_by_the_last_step_are_not_saved(backend, tmp_path, capsys, monkeypatch):
    """Weights that turn NaN in an epoch's last update, while every logged loss was still finite: the epoch's end
    notices, writes nothing, exits 1, and keeps the checkpoint of the epoch before."""
    module = COMMANDS[backend]
    on_epoch_end = module.RunOutputs.on_epoch_end

    def breaking(self, epoch, logs=None):
        if epoch == 1:
            poison_weights(backend, self.model)
        return on_epoch_end(self, epoch, logs)

    monkeypatch.setattr(module.RunOutputs, "on_epoch_end", breaking)
    run = tmp_path / "run"
    assert train(backend, run, epochs=3) == 1
    message = one_line(capsys, backend, "training stopped, ")
    assert "a weight or optimiser moment is not finite after epoch 2" in message
    assert f"the last good checkpoint is kept in {checkpoint(backend, run)}" in message
    assert_whole(backend, run, epoch=1)


# --------------------------------------------------------------------------------------- Foreign checkpoints


def rewrite_meta(backend: str, path: Path, change) -> None:
    """Rewrite the meta of a checkpoint file in place with change(meta) -> meta."""
    if backend == "torch":
        state = torch.load(path, weights_only=True)
        state["meta"] = change(state["meta"])
        torch.save(state, path)
        return
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["meta"] = np.array(json.dumps(change(json.loads(str(arrays["meta"])))))
    np.savez(path, **arrays)


def case_resume_other_backend_folder(backend, own, other, tmp):
    run = shutil.copytree(other, tmp / "run")
    theirs, name = checkpoint(other_backend(backend), run), CHECKPOINTS[backend].CHECKPOINT
    return ["train", "dcgan", *TINY, "--resume", "--out", str(run)], run, [
        f"holds a run of the {other_backend(backend)} backend", f"gan-{other_backend(backend)} train --resume",
        f"`gan-parity convert {theirs} --to {backend} --out {run / name}`"]


def case_resume_other_backend_file(backend, own, other, tmp):
    run = shutil.copytree(own, tmp / "run")
    shutil.copyfile(checkpoint(other_backend(backend), other), checkpoint(backend, run))  # under our name
    return ["train", "dcgan", *TINY, "--resume", "--out", str(run)], run, [
        f"is a checkpoint of the {other_backend(backend)} backend, not {backend}", f"--to {backend} --out"]


def case_resume_other_model(backend, own, other, tmp):
    run = shutil.copytree(own, tmp / "run")
    return ["train", "wgan_gp", *TINY, "--resume", "--out", str(run)], run, [
        "holds a dcgan model, not wgan_gp", f"resume it with gan-{backend} train dcgan --resume"]


def case_resume_other_config(backend, own, other, tmp):
    run = shutil.copytree(own, tmp / "run")
    return ["train", "dcgan", *TINY, "--width", "8", "--learning-rate", "0.001", "--resume", "--out", str(run)], run, [
        "another configuration (width: 4 -> 8, learning_rate: 0.0002 -> 0.001)", "pass the flags it was trained with"]


def case_resume_other_data(backend, own, other, tmp):
    run = shutil.copytree(own, tmp / "run")
    return ["train", "dcgan", *TINY, "--seed", "3", "--resume", "--out", str(run)], run, [
        "trained on other data (seed: 0 -> 3)", "--dataset, --seed"]


def case_sample_other_backend_folder(backend, own, other, tmp):
    theirs = checkpoint(other_backend(backend), other)
    return ["sample", "dcgan", "--checkpoint", str(other), "--out", str(tmp / "x.png")], other, [
        f"{theirs} is a checkpoint of the {other_backend(backend)} backend, not {backend}",
        f"use gan-{other_backend(backend)} sample",
        f"`gan-parity convert {theirs} --to {backend} --out {other / CHECKPOINTS[backend].CHECKPOINT}`"]


def case_sample_other_backend_file(backend, own, other, tmp):
    theirs = checkpoint(other_backend(backend), other)
    return ["sample", "dcgan", "--checkpoint", str(theirs), "--out", str(tmp / "x.png")], other, [
        f"{theirs} is a checkpoint of the {other_backend(backend)} backend, not {backend}",
        f"gan-parity convert {theirs} --to {backend}"]


def case_sample_other_model(backend, own, other, tmp):
    return ["sample", "wgan_gp", "--checkpoint", str(own), "--out", str(tmp / "x.png")], own, [
        "the checkpoint holds a dcgan model, not wgan_gp", "`sample dcgan --checkpoint"]


def case_sample_unknown_config(backend, own, other, tmp):
    run = shutil.copytree(own, tmp / "run")
    rewrite_meta(backend, checkpoint(backend, run), lambda meta: meta | {"config": meta["config"] | {"depth": 9}})
    return ["sample", "dcgan", "--checkpoint", str(run), "--out", str(tmp / "x.png")], run, [
        "the checkpoint's dcgan configuration does not fit this version", "depth"]


def case_sample_config_not_its_tensors(backend, own, other, tmp):
    run = shutil.copytree(own, tmp / "run")
    rewrite_meta(backend, checkpoint(backend, run), lambda meta: meta | {"config": meta["config"] | {"width": 8}})
    return ["sample", "dcgan", "--checkpoint", str(run), "--out", str(tmp / "x.png")], run, [
        "the checkpoint's networks do not match this model"]


REFUSALS = {name[len("case_"):]: value for name, value in dict(globals()).items() if name.startswith("case_")}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_foreign_checkpoint_is_refused(backend, case, trained, tmp_path, capsys):
    """A checkpoint of another backend, model, configuration or data set: exit 2, one line saying which (and how
    they differ, old -> new) and what to do; the run folder is left as it was and no grid is written."""
    own, other = trained(backend), trained(other_backend(backend))
    argv, folder, expected = REFUSALS[case](backend, own, other, tmp_path)
    before = files(folder)
    assert BACKENDS[backend].main(argv) == 2
    message = one_line(capsys, backend)
    for words in expected:
        assert words in message
    assert files(folder) == before
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------------------------------------ Disk, input


def no_data(spec):
    raise AssertionError("the data was loaded before the output folder was checked")


@pytest.mark.parametrize("where", ["under a file", "a file", "in /proc"])
def test_unwritable_output_folder(backend, where, tmp_path, capsys, monkeypatch):
    """An --out that cannot be written: exit 2 before any data is read, one line, nothing created or changed."""
    (tmp_path / "file").write_text("a regular file")
    out = {"under a file": tmp_path / "file" / "run", "a file": tmp_path / "file",
           "in /proc": Path("/proc") / f"gan-parity-{os.getpid()}"}[where]
    monkeypatch.setattr(DatasetSpec, "load", no_data)
    before = files(tmp_path)
    assert train(backend, out) == 2
    message = one_line(capsys, backend)
    assert f"cannot write to the output folder {out}: " in message and "choose another --out" in message
    assert files(tmp_path) == before and not out.is_dir()


def test_disk_full_before_training(backend, trained, tmp_path, capsys, monkeypatch):
    """Less free space than the run will write: exit 2 before the first step, one line with both sizes, nothing
    created. The estimate covers what a real run wrote, and stays modest for a small run."""
    module, done = CHECKPOINTS[backend], trained(backend)
    real = shutil.disk_usage
    monkeypatch.setattr(specs.runs.shutil, "disk_usage", lambda path: real(path)._replace(free=1_000_000))
    run = tmp_path / "run"
    assert train(backend, run, epochs=3) == 2
    message = one_line(capsys, backend)
    assert f"not enough free space for the run in {run}: it needs about " in message
    assert "(3 epochs of samples and checkpoints), 1.0 MB is free there; free some space" in message
    assert not run.exists()
    config = config_from_dict("dcgan", module.load_checkpoint(checkpoint(backend, done))["meta"]["config"])
    estimate = specs.runs.space_needed(config, module.parameter_bytes(BUILD[backend]("dcgan", config)), epochs=1)
    assert sum(len(data) for data in files(done).values()) < estimate < 4_000_000


def test_bad_data_dir_creates_and_changes_nothing(backend, trained, tmp_path, capsys):
    """A missing --data-dir is found before anything is written: a new run's folder is not created, and a resumed
    run's folder is left as it was."""
    bad = ["--dataset", "folder", "--data-dir", str(tmp_path / "missing")]
    assert train(backend, tmp_path / "new", *bad) == 2
    assert "missing is not a folder" in one_line(capsys, backend)
    assert not (tmp_path / "new").exists()
    run = shutil.copytree(trained(backend), tmp_path / "run")
    assert train(backend, run, "--resume", *bad, epochs=2) == 2
    assert "missing is not a folder" in one_line(capsys, backend)
    assert files(run) == files(trained(backend))


def test_disk_full_while_writing_a_checkpoint(backend, reference, tmp_path, capsys, monkeypatch):
    """The disk fills up in the middle of epoch 2's checkpoint: exit 2, one line naming the file, the error and
    that the last checkpoint is intact; it is, byte for byte, no temp file is left, and --resume then finishes
    the run exactly as if nothing had happened."""
    module = CHECKPOINTS[backend]
    run = tmp_path / "run"
    writes, kept = [], {}

    def filling_up(path, write):
        if Path(path).name != module.CHECKPOINT:
            return write_atomically(path, write)
        writes.append(path)
        if len(writes) == 1:
            write_atomically(path, write)
            kept["bytes"] = Path(path).read_bytes()
            return None

        def half_then_full(handle):
            handle.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return write_atomically(path, half_then_full)

    monkeypatch.setattr(module, "write_atomically", filling_up)
    assert train(backend, run, epochs=KILL_EPOCHS, config=LONG) == 2
    message = one_line(capsys, backend)
    target = checkpoint(backend, run)
    assert message == (f"gan-{backend}: error: cannot write {target}: No space left on device; the last checkpoint "
                       f"{target} is intact: free some space, then continue with --resume")
    assert len(writes) == 2 and target.read_bytes() == kept["bytes"]
    assert temp_files(run) == []
    assert_good_checkpoint(backend, run, epoch=1)
    monkeypatch.undo()
    assert train(backend, run, "--resume", epochs=KILL_EPOCHS, config=LONG) == 0
    assert (run / "losses.csv").read_bytes() == (reference(backend) / "losses.csv").read_bytes()


def test_write_atomically_keeps_the_target_on_failure(tmp_path):
    """A write that fails half-way leaves the old file whole, no temp file, and an error that names the target."""
    target = tmp_path / "checkpoint.pt"
    write_atomically(target, lambda handle: handle.write(b"old"))

    def half_then_full(handle):
        handle.write(b"new, but only half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as error:
        write_atomically(target, half_then_full)
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(target)
    assert target.read_bytes() == b"old" and sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint.pt"]
