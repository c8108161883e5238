"""Training on several processes or devices equals training in one process on the same global batch.

Each engine trains a tiny configuration (fake data, 16x16, width 4, a global batch of 64: 4 steps an epoch, one
critic step, dropout 0 because dropout masks are random draws) on two replicas, through the command line:
- torch: `torchrun --standalone --nproc_per_node 2` (gloo, CPU): dcgan, cgan (WGAN-GP's train step with labels),
  and the published MLP (its BatchNorm1d synchronised over features);
- keras: MirroredStrategy over two logical CPU devices (`--strategy mirrored`), in a subprocess, since logical
  devices are configured before TensorFlow starts: dcgan;
- keras: MultiWorkerMirroredStrategy, two local worker processes (TF_CONFIG, free loopback ports): cgan, which
  has it all (gradient penalty, BatchNorm in the generator, batches of images and labels);
- keras on JAX: keras.distribution.DataParallel over two host CPU devices (`--backend jax --strategy mirrored`,
  XLA_FLAGS=--xla_force_host_platform_device_count=2), in a subprocess that also trains the one-device reference
  (a process holds one Keras backend): wgan_gp with one critic step, 1 epoch; every variable must be replicated
  on both devices.
A run of 2 epochs is 1 epoch, then `--resume` to epoch 2. After training, every weight, BatchNorm statistic (and
Keras seed state) is identical on the replicas, bit for bit, and equals that of a one-process run (this test
process, in one go) on the same global batch within TOLERANCE. The chief alone writes: the other worker is given
another --out, which must stay absent, also when resuming (the chief reads the checkpoint and hands it on).

This file is also the workers' program: `python tests/test_distributed.py torch|mirrored|multiworker OUT`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "fake", "--image-size", "16", "--width", "4", "--latent-dim", "8", "--batch-size", "64",
        "--dropout", "0", "--quiet"]
MODEL_FLAGS = {"dcgan": [], "wgan_gp": ["--critic-steps", "1"], "cgan": ["--critic-steps", "1"],
               "published": ["--preset", "pytorch-gan-mlp"]}  # BatchNorm1d: synchronised over features
JOBS = {  # engine: {model: the epochs each run trains to, the later ones resuming in the same run folder}
    "torch": {"dcgan": [1, 2], "cgan": [1], "published": [1]},
    "mirrored": {"dcgan": [1, 2]},
    "multiworker": {"cgan": [1, 2]},
    "jax": {"wgan_gp": [1]},
}
TOLERANCE = 1e-4  # max |distributed - one process| / max(1, max |one process|) per tensor (measured <= 3.4e-7)
TIMEOUT = 300  # seconds for the workers; a hung collective fails the test instead of blocking it
JAX_TIMEOUT = 900  # XLA compiles the sharded step: 2 min of it measured on a loaded 2-core machine

# ---------------------------------------------------------------------------------------------------- Helpers


def argv(model: str, epochs: int, out: Path, resume: bool = False) -> list[str]:
    """`train MODEL ...` with the tiny configuration, writing to `out`."""
    flags = [*TINY, *MODEL_FLAGS[model], "--epochs", str(epochs), "--cache-dir", str(out.parent / "cache")]
    return ["train", model, *flags, "--out", str(out), *(["--resume"] if resume else [])]


@contextlib.contextmanager
def capture(module):
    """Within: a list of every trainer that `module.main` builds (module: torch_impl.train or keras_impl.train)."""
    registry = importlib.import_module(module.__name__.replace(".train", ".trainers")).TRAINERS
    originals = dict(registry)
    made: list = []
    for name, cls in originals.items():

        def make(*args, _cls=cls, **kwargs):
            made.append(_cls(*args, **kwargs))
            return made[-1]

        registry[name] = make
    try:
        yield made
    finally:
        registry.update(originals)


def torch_weights(trainer, replica: int = 0) -> dict[str, np.ndarray]:
    """Every tensor of the networks' state (weights, BatchNorm statistics), as 'replica<id>/<name>'."""
    return {f"replica{replica}/{name}": value.detach().cpu().numpy() for name, value in trainer.state_dict().items()}


def keras_weights(trainer, first_replica: int = 0) -> dict[str, np.ndarray]:
    """Every variable of the networks (weights, BatchNorm statistics, seed states) of each local replica, as
    'replica<id>/<position> <path>' (seed generators are numbered per process, so the position tells them apart)."""
    import tensorflow as tf

    weights = {}
    for position, variable in enumerate(trainer.variables):
        name = f"{position:03d} {re.sub(r'seed_generator_[0-9]+', 'seed_generator', variable.path)}"
        for index, value in enumerate(tf.distribute.get_strategy().experimental_local_results(variable.value)):
            weights[f"replica{first_replica + index}/{name}"] = value.numpy()
    return weights


def by_replica(weights: dict[str, np.ndarray]) -> dict[int, dict[str, np.ndarray]]:
    replicas: dict[int, dict[str, np.ndarray]] = {}
    for key, value in weights.items():
        replica, name = key.split("/", 1)
        replicas.setdefault(int(replica.removeprefix("replica")), {})[name] = value
    return replicas


def saved_weights(folder: Path) -> dict[int, dict[str, np.ndarray]]:
    """The weights that the workers saved in folder/weights-*.npz, by replica id."""
    weights = {}
    for path in folder.glob("weights-*.npz"):
        with np.load(path) as archive:
            weights |= {key: archive[key] for key in archive.files}
    return by_replica(weights)


def scaled_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(1, max |b|), as the parity checks scale their differences."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b), initial=0.0) / max(1.0, float(np.max(np.abs(b), initial=0.0))))


def compare(replicas: dict[int, dict[str, np.ndarray]], reference: dict[str, np.ndarray]) -> tuple[float, str]:
    """Assert both replicas identical and equal to the reference within TOLERANCE; the largest difference."""
    assert sorted(replicas) == [0, 1], sorted(replicas)
    for index, weights in replicas.items():
        assert sorted(weights) == sorted(reference), index
        for name, value in weights.items():
            assert np.array_equal(value, replicas[0][name]), f"replica {index} differs from replica 0 in {name}"
    differences = {name: scaled_difference(replicas[0][name], value) for name, value in reference.items()}
    worst = max(differences, key=differences.get)
    assert differences[worst] <= TOLERANCE, f"{worst}: {differences[worst]:.3g} > {TOLERANCE}"
    return differences[worst], worst


def check_run_folders(folder: Path, checkpoint: str, runs: int) -> None:
    """The chief's run folder after `runs` runs of one epoch each: a checkpoint, one sample grid and one losses.csv
    row per epoch, one TensorBoard event file per run (a second writer would add files and rows); nothing from
    the other worker."""
    run = folder / "run"
    assert (run / checkpoint).is_file()
    grids = [f"epoch_{epoch:04d}.png" for epoch in range(1, runs + 1)]
    assert sorted(path.name for path in (run / "samples").iterdir()) == grids
    assert len((run / "losses.csv").read_text().splitlines()) == runs + 1
    assert len(list((run / "tensorboard").rglob("events.out.tfevents.*"))) == runs
    assert not (folder / "run-of-1").exists()


def run_workers(commands: list[list[str]], envs: list[dict], log: Path, timeout: float = TIMEOUT) -> float:
    """Start the processes at once and wait for all; fail, killing the others, when one fails or `timeout`
    seconds pass. Seconds taken."""
    start = time.monotonic()
    logs = [log.with_suffix(f".{index}.log") for index in range(len(commands))]
    handles = [open(path, "w") for path in logs]
    processes = [subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
                 for command, env, handle in zip(commands, envs, handles)]
    try:
        while any(process.poll() is None for process in processes) and time.monotonic() - start < timeout:
            if any(process.poll() not in (None, 0) for process in processes):
                break
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        for handle in handles:
            handle.close()
    codes = [process.returncode for process in processes]
    if codes != [0] * len(codes):
        output = "\n".join(path.read_text()[-3000:] for path in logs)
        pytest.fail(f"exit codes {codes} after {time.monotonic() - start:.0f} s:\n{output}")
    return time.monotonic() - start


def environment(**extra: str) -> dict:
    """This environment without torchrun's or TF_CONFIG's variables, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if key not in ("TF_CONFIG", "RANK", "WORLD_SIZE")}
    return env | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"} | extra


def free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("localhost", 0))
        return [sock.getsockname()[1] for sock in sockets]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """reference(backend, model, epochs): the weights after one run of `epochs` epochs in this process."""
    made: dict[tuple, dict[str, np.ndarray]] = {}

    def get(backend: str, model: str, epochs: int) -> dict[str, np.ndarray]:
        if (backend, model, epochs) not in made:
            if backend == "torch":
                import torch_impl.train as module
            else:
                import keras_impl.train as module
            out = tmp_path_factory.mktemp(f"reference-{backend}") / model
            with capture(module) as trainers:
                assert module.main(argv(model, epochs, out)) == 0
            weights = torch_weights(trainers[-1]) if backend == "torch" else keras_weights(trainers[-1])
            made[backend, model, epochs] = by_replica(weights)[0]
        return made[backend, model, epochs]

    return get


def check_engine(engine: str, out: Path, reference, seconds: float) -> None:
    backend = "torch" if engine == "torch" else "keras"
    print(f"\n{engine}: two replicas, {seconds:.1f} s")
    for model, epochs in JOBS[engine].items():
        if engine == "jax":  # its one-device reference comes from its own process
            with np.load(out / model / "reference.npz") as archive:
                expected = {key: archive[key] for key in archive.files}
        else:
            expected = reference(backend, model, epochs[-1])
        difference, where = compare(saved_weights(out / model), expected)
        print(f"  {model}: replicas identical; largest scaled difference from one process {difference:.2g} ({where})")
        check_run_folders(out / model, "checkpoint.pt" if backend == "torch" else "checkpoint.npz", len(epochs))


# -------------------------------------------------------------------------------------------------------- Tests


def test_torchrun_two_processes(tmp_path, reference):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__,
               "torch", str(tmp_path)]
    check_engine("torch", tmp_path, reference, run_workers([command], [environment()], tmp_path / "torchrun"))


@pytest.mark.slow  # two TensorFlow replicas: .ci/run runs it after make test
def test_keras_mirrored_two_devices(tmp_path, reference):
    command = [sys.executable, __file__, "mirrored", str(tmp_path)]
    check_engine("mirrored", tmp_path, reference, run_workers([command], [environment()], tmp_path / "mirrored"))


@pytest.mark.slow  # a second TensorFlow worker cluster: .ci/run runs it after make test
def test_keras_multiworker_two_workers(tmp_path, reference):
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    envs = [environment(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
            for index in range(2)]
    command = [sys.executable, __file__, "multiworker", str(tmp_path)]
    seconds = run_workers([command, command], envs, tmp_path / "multiworker")
    check_engine("multiworker", tmp_path, reference, seconds)


@pytest.mark.slow  # XLA's compile of a sharded step: .ci/run runs it after make test
def test_jax_data_parallel_two_devices(tmp_path, reference):
    command = [sys.executable, __file__, "jax", str(tmp_path)]
    env = environment(KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    check_engine("jax", tmp_path, reference, run_workers([command], [env], tmp_path / "jax", JAX_TIMEOUT))


# ------------------------------------------------------------------------------------------------------ Workers


def jax_weights(trainer) -> dict[str, np.ndarray]:
    """Every variable of a JAX trainer on each device that holds it, as 'replica<device>/<position> <path>'; one
    device ('replica0') without a distribution."""
    weights = {}
    for position, variable in enumerate(trainer.variables):
        name = f"{position:03d} {re.sub(r'seed_generator_[0-9]+', 'seed_generator', variable.path)}"
        for shard in variable.value.addressable_shards:
            assert shard.data.shape == variable.value.shape, f"{name} is split, not replicated"
            weights[f"replica{shard.device.id}/{name}"] = np.asarray(shard.data)
    return weights


def jax_worker(out: Path) -> None:
    """The JAX engine's one process: the one-device reference, then the same run over two devices."""
    import keras_impl.train as module

    for model, epochs in JOBS["jax"].items():
        runs = (([], out / model / "reference-run"), (["--strategy", "mirrored"], out / model / "run"))
        for strategy, folder in runs:
            with capture(module) as trainers:
                for run, last_epoch in enumerate(epochs):
                    status = module.main(["--backend", "jax", *argv(model, last_epoch, folder, resume=run > 0),
                                          *strategy])
                    assert status == 0, f"{model}: exit status {status}"
            weights = jax_weights(trainers[-1])
            if strategy:
                np.savez(out / model / "weights-0.npz", **weights)
            else:
                np.savez(out / model / "reference.npz", **by_replica(weights)[0])


def worker(engine: str, out: Path) -> None:
    """One process of a distributed run: every job of the engine through the command line, then the weights of
    this process's replicas saved in OUT/MODEL/weights-<process>.npz."""
    if engine == "jax":
        return jax_worker(out)
    if engine == "torch":  # each engine's process loads its own framework only
        import torch_impl.train as module

        index = int(os.environ["RANK"])
    else:
        import tensorflow as tf

        if engine == "mirrored":  # before TensorFlow starts: the CPU as two devices
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras_impl.train as module

        index = json.loads(os.environ["TF_CONFIG"])["task"]["index"] if engine == "multiworker" else 0
    strategy = ["--strategy", "mirrored"] if engine == "mirrored" else []
    for model, epochs in JOBS[engine].items():
        with capture(module) as trainers:
            for run, last_epoch in enumerate(epochs):
                folder = out / model / ("run" if index == 0 else f"run-of-{index}")  # the chief's --out, or another
                status = module.main(argv(model, last_epoch, folder, resume=run > 0) + strategy)
                assert status == 0, f"{model}: exit status {status}"
        weights = torch_weights(trainers[-1], index) if engine == "torch" else keras_weights(trainers[-1], index)
        np.savez(out / model / f"weights-{index}.npz", **weights)


if __name__ == "__main__":
    worker(sys.argv[1], Path(sys.argv[2]))
