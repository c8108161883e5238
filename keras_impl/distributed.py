"""Data-parallel training for Keras: replicas share one global batch (mirror: torch_impl/distributed.py).

Each Keras backend distributes with its own engine:
- TensorFlow: `gan-keras train ... --strategy mirrored` trains one replica per local GPU (or per logical CPU
  device); on several machines, each worker runs the same command with its own TF_CONFIG (the cluster and its
  task), which selects MultiWorkerMirroredStrategy. The rest of this docstring describes this backend.
- JAX: `--strategy mirrored` sets keras.distribution.DataParallel over every local device (GPUs, or the CPU
  devices of XLA_FLAGS=--xla_force_host_platform_device_count=N). There are no replicas in the code: fit
  jit-compiles one program over the global batch, which Keras splits along its first axis, and XLA inserts the
  collectives, so the noise, the gradient sums and BatchNorm's statistics are the global batch's by construction
  (`replica` answers (0, 1)). One process; several machines are not supported here.
- PyTorch: one process only; --strategy, TF_CONFIG or a torchrun launch is refused with a line that says so
  (gan-torch trains data-parallel under torchrun).
Without a strategy a run is on one device and nothing here changes it.
`setup` makes the strategy current for the whole process (tf.distribute.experimental_set_strategy), so the
trainer, its variables and `fit` run under it; `fit` runs `train_step` on every replica (strategy.run).
A train step of N replicas computes what one process computes on the global batch (--batch-size), up to float
rounding:
- every replica reads its own contiguous part of each global batch of the seeded batch order (`shard`),
- every replica draws the noise of the global batch from the same seed generator (a mirrored variable that every
  replica advances alike) and keeps its part (`replica_part`),
- losses are divided by the number of replicas (`replica_share`), the convention of tf.distribute: the optimizer sums
  the replicas' gradients (`apply_gradients` all-reduces with SUM), giving the gradient of the global mean loss,
- BatchNorm normalises with the statistics of the global batch (`synchronize`: Keras's
  `BatchNormalization(synchronized=True)`, all-reduces inside the layer).
Only the chief writes the run folder; it alone reads the checkpoint and hands it to the others (`on_chief`).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable

import keras
import numpy as np

from specs.runs import RunError

BACKEND = keras.backend.backend()
if BACKEND == "tensorflow":
    import tensorflow as tf  # tf.distribute: the TensorFlow backend's replicas

_STRATEGIES: dict[str, tf.distribute.Strategy] = {}  # made once per process: collectives cannot be set up twice

# ---------------------------------------------------------------------------------------------------- Replicas


def setup(strategy: str | None = None) -> None:
    """Make current the strategy asked for: "mirrored" (every local GPU, else every logical CPU device),
    "multiworker" (the cluster in TF_CONFIG), or None: "multiworker" when TF_CONFIG is set, else one device.
    RunError where the running Keras backend cannot distribute that way."""
    name = strategy or ("multiworker" if os.environ.get("TF_CONFIG") else None)
    if BACKEND != "tensorflow":
        _setup_without_tf_distribute(strategy)
        return
    if name is not None and name not in _STRATEGIES:
        if name == "multiworker":
            _STRATEGIES[name] = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            _STRATEGIES[name] = tf.distribute.MirroredStrategy([device.name for device in devices])
    tf.distribute.experimental_set_strategy(None)
    if name is not None:
        tf.distribute.experimental_set_strategy(_STRATEGIES[name])


def _setup_without_tf_distribute(strategy: str | None) -> None:
    """JAX: DataParallel over the local devices for "mirrored"; PyTorch: one process. RunError otherwise."""
    tf_config = bool(os.environ.get("TF_CONFIG"))
    if BACKEND == "torch":
        launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
        asked = (f"--strategy {strategy}" if strategy else "TF_CONFIG" if tf_config else
                 "a torchrun launch" if launched else None)
        if asked:
            raise RunError(f"the Keras torch backend trains in one process only, and {asked} asks for several; "
                           "train data-parallel with --backend tensorflow or jax, or with gan-torch under torchrun")
    elif strategy == "multiworker" or (tf_config and strategy is None):
        raise RunError("the JAX backend trains on the devices of one process (--strategy mirrored); several "
                       "workers (TF_CONFIG, --strategy multiworker) need --backend tensorflow")
    devices = keras.distribution.list_devices() if strategy == "mirrored" else []
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices) if devices else None)


def replica() -> tuple:
    """(index, count): the replica running this code and the number of replicas in sync; index 0 outside
    strategy.run (cross-replica context); (0, 1) on one device, and on JAX and PyTorch (one program, one
    process)."""
    if BACKEND != "tensorflow":
        return 0, 1
    context = tf.distribute.get_replica_context()
    if context is None:
        return 0, tf.distribute.get_strategy().num_replicas_in_sync
    return context.replica_id_in_sync_group, context.num_replicas_in_sync


def is_chief() -> bool:
    """Whether this process writes the run folder: the chief of a cluster (worker 0 without a chief task)."""
    if BACKEND != "tensorflow":
        return True
    return tf.distribute.get_strategy().extended.should_checkpoint


def on_chief(function: Callable, *args):
    """`function(*args)` run by the chief alone; every process returns its result or raises its exception."""
    if BACKEND != "tensorflow":
        return function(*args)  # one process
    strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return function(*args)  # one process
    payload = _as_int32(pickle.dumps(_outcome(function, args))) if is_chief() else np.zeros(0, np.int32)
    size = _from_chief(np.array([payload.size], np.int32), strategy)[0]
    received = _from_chief(payload if is_chief() else np.zeros(size, np.int32), strategy)
    error, result = pickle.loads(received.tobytes())
    if error is not None:
        raise error
    return result


def _outcome(function: Callable, args: tuple) -> tuple[Exception | None, object]:
    try:
        return None, function(*args)
    except Exception as error:  # handed to every process, which raise it as the chief does
        return error, None


def _as_int32(data: bytes) -> np.ndarray:
    return np.frombuffer(data + b"\0" * (-len(data) % 4), np.int32)


def _from_chief(values: np.ndarray, strategy: tf.distribute.Strategy) -> np.ndarray:
    """The chief's int32 array on every worker: an all-reduce (sum) to which only replica 0, the chief's first,
    contributes; the other replicas give zeros of the same shape."""

    def contribution(context):
        return tf.constant(values if context.replica_id_in_sync_group == 0 else np.zeros_like(values))

    per_replica = strategy.experimental_distribute_values_from_function(contribution)
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()


# -------------------------------------------------------------------------------------------------------- Data


def local_batch(batch_size: int) -> int:
    """Images per replica and step: the global batch split evenly; RunError when it cannot be."""
    count = replica()[1]
    if batch_size % count:
        raise RunError(f"--batch-size {batch_size} (the global batch) cannot be split evenly over {count} "
                       f"replicas; choose a multiple of {count}")
    return batch_size // count


def shard(order: np.ndarray, context: tf.distribute.InputContext) -> np.ndarray:
    """The batches one input pipeline (one per worker) feeds, int64 (num_batches * local replicas, batch_size /
    replicas): for every global batch, the part of each of its replicas in turn, as tf.distribute hands a
    pipeline's elements to its replicas round-robin; replica i takes columns i * size .. (i + 1) * size - 1, the
    part of the noise that `replica_part` gives it."""
    size = order.shape[1] // context.num_replicas_in_sync
    local = context.num_replicas_in_sync // context.num_input_pipelines
    first = context.input_pipeline_id * local  # replica ids are numbered worker after worker
    parts = [order[:, (first + i) * size : (first + i + 1) * size] for i in range(local)]
    return np.stack(parts, axis=1).reshape(-1, size)


# -------------------------------------------------------------------------------------------------- Train step


def global_batch(batch_size: int) -> int:
    """The global batch of a replica's batch: its size times the number of replicas."""
    return batch_size * replica()[1]


def replica_part(values, axis: int):
    """This replica's part of a tensor drawn for the global batch, whose batch dimension is `axis`."""
    index, count = replica()
    if count == 1:
        return values
    size = (values.shape[axis] or tf.shape(values)[axis]) // count  # dynamic under MultiWorkerMirroredStrategy
    return tf.gather(values, tf.range(index * size, (index + 1) * size), axis=axis)


def replica_share(value):
    """This replica's share of a mean over the global batch: its own mean divided by the number of replicas, i.e.
    its sum divided by the global batch (unchanged on one device). The shares of a loss sum to the global mean
    loss, so the gradients of the shares, summed over the replicas (the optimizer's all-reduce), are its gradients."""
    count = replica()[1]
    return value if count == 1 else value / count


def synchronize(trainer: keras.Model) -> None:
    """With several replicas, every BatchNormalization layer normalises with the global batch's statistics
    (`synchronized`, read when the layer is called); nothing changes on one device. RunError, before anything is
    written, when the global batch cannot be split evenly over the replicas.
    Across workers, two detours around fit's handling of MultiWorkerMirroredStrategy in Keras 3
    (tensorflow/tensorflow#72388): the logged values get a batch axis of 1, since fit reduces them with
    strategy.reduce("MEAN", axis=0), which fails on scalars (its epoch logs read the metrics themselves); and fit
    skips its symbolic build, which reduces the first batch with strategy.reduce and fails on a CGAN batch (a
    tuple): the trainer is built already, and fit takes the strategy from the process (`setup`).
    On JAX only the split is checked: XLA computes BatchNorm's statistics over the global batch by itself."""
    distribution = keras.distribution.distribution() if BACKEND == "jax" else None
    if distribution is not None:
        count = len(distribution.device_mesh.devices.flatten())
        if trainer.config.batch_size % count:
            raise RunError(f"--batch-size {trainer.config.batch_size} (the global batch) cannot be split evenly over "
                           f"{count} devices; choose a multiple of {count}")
    if replica()[1] == 1:
        return
    local_batch(trainer.config.batch_size)
    layers = [trainer]
    while layers:
        layer = layers.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
        layers += getattr(layer, "layers", [])
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        train_step = trainer.train_step

        def train_step_with_batch_axis(data):
            return {name: tf.reshape(value, (1,)) for name, value in train_step(data).items()}

        trainer.train_step = train_step_with_batch_axis
        trainer._distribute_strategy = None  # fit: `distribute_strategy` falls back to tf.distribute.get_strategy()
