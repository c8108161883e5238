"""Data-parallel training for PyTorch: several processes share one global batch (mirror: keras_impl/distributed.py).

`torchrun --nproc_per_node N -m torch_impl train ...` starts N processes and tells each its rank and the world size
(RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); without torchrun a run is one process and nothing here
changes it. On GPUs each process trains on the GPU of its LOCAL_RANK, and the collectives run over NCCL.
Every process holds one replica of the trainer. A train step of N replicas computes what one process computes on
the global batch (--batch-size), up to float rounding:
- every replica reads its own contiguous part of each global batch of the seeded batch order (`shard`),
- every replica draws the noise of the global batch from the same seeded generator and keeps its part
  (`replica_part`), so the replicas together see the batch, z, label noise and alpha of a one-process run,
- losses are divided by the number of replicas (`replica_share`) and the gradients summed over the replicas
  (torch_impl/loop.apply_gradients): the gradient of the global batch's mean loss, as under tf.distribute,
- BatchNorm normalises with the statistics of the global batch (`synchronize`).
Only the chief (rank 0) writes the run folder; it alone reads the checkpoint and hands it to the others (`on_chief`).

Why no torch.nn.parallel.DistributedDataParallel wrapper: DDP all-reduces gradients from hooks that fire when
autograd accumulates them into `.grad`; these trainers take gradients with torch.autograd.grad (as the Keras twins
take them with tape.gradient), which never accumulates into `.grad`, so DDP would synchronise nothing. The same
collectives (one all-reduce of all gradients per optimizer step, synchronised BatchNorm) are issued here by hand.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from specs.runs import RunError
from torch_impl.loop import SyncBatchNorm

# ---------------------------------------------------------------------------------------------------- Replicas


def setup(device: torch.device | str = "cpu") -> None:
    """Join the process group that torchrun describes in the environment, once per process; without torchrun
    (WORLD_SIZE unset or 1) do nothing. On a CUDA device (devices.select_device binds each process to the GPU of its
    LOCAL_RANK) NCCL carries the CUDA tensors and gloo the CPU ones; on the CPU gloo carries all."""
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    device = torch.device(device)
    if device.type == "cuda":
        dist.init_process_group("cpu:gloo,cuda:nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    atexit.register(dist.destroy_process_group)


def replica() -> tuple[int, int]:
    """(index, count): this process's rank and the number of processes; (0, 1) without torchrun."""
    if not dist.is_initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def is_chief() -> bool:
    """Whether this process writes the run folder: rank 0."""
    return replica()[0] == 0


def on_chief(function: Callable, *args):
    """`function(*args)` run by the chief alone; every process returns its result or raises its exception."""
    if replica()[1] == 1:
        return function(*args)
    outcome = [_outcome(function, args) if is_chief() else None]
    dist.broadcast_object_list(outcome, src=0)
    error, result = outcome[0]
    if error is not None:
        raise error
    return result


def _outcome(function: Callable, args: tuple) -> tuple[Exception | None, object]:
    try:
        return None, function(*args)
    except Exception as error:  # handed to every process, which raise it as the chief does
        return error, None


# -------------------------------------------------------------------------------------------------------- Data


def local_batch(batch_size: int) -> int:
    """Images per replica and step: the global batch split evenly; RunError when it cannot be."""
    count = replica()[1]
    if batch_size % count:
        raise RunError(f"--batch-size {batch_size} (the global batch) cannot be split evenly over {count} "
                       f"replicas; choose a multiple of {count}")
    return batch_size // count


def shard(order: np.ndarray) -> np.ndarray:
    """This process's part of every global batch of a batch order: int64 (num_batches, batch_size / replicas),
    replica i taking columns i * size .. (i + 1) * size - 1, the part of the noise that `replica_part` gives it."""
    index, size = replica()[0], local_batch(order.shape[1])
    return order[:, index * size : (index + 1) * size]


# -------------------------------------------------------------------------------------------------- Train step


def global_batch(batch_size: int) -> int:
    """The global batch of a replica's batch: its size times the number of replicas."""
    return batch_size * replica()[1]


def replica_part(values: torch.Tensor, axis: int) -> torch.Tensor:
    """This replica's part of a tensor drawn for the global batch, whose batch dimension is `axis`."""
    index, count = replica()
    if count == 1:
        return values
    size = values.shape[axis] // count
    return values.narrow(axis, index * size, size)


def replica_share(value: torch.Tensor) -> torch.Tensor:
    """This replica's share of a mean over the global batch: its own mean divided by the number of replicas, i.e.
    its sum divided by the global batch (unchanged in one process). The shares of a loss sum to the global mean
    loss, so the gradients of the shares, summed over the replicas (loop.apply_gradients), are its gradients."""
    count = replica()[1]
    return value if count == 1 else value / count


def synchronize(trainer: nn.Module) -> None:
    """With several replicas, every BatchNorm layer normalises with the global batch's statistics (loop.SyncBatchNorm,
    in place: the same parameters and buffers, so optimisers and checkpoints are unaffected); nothing changes in one
    process. (Logged values are averaged over the replicas by loop.Trainer.fit.) RunError, before anything is
    written, when the global batch cannot be split evenly over the replicas."""
    if replica()[1] == 1:
        return
    local_batch(trainer.config.batch_size)
    layers = [(parent, name, child) for parent in trainer.modules() for name, child in parent.named_children()]
    for parent, name, child in layers:
        if type(child) in (nn.BatchNorm1d, nn.BatchNorm2d):
            setattr(parent, name, SyncBatchNorm.from_batch_norm(child))
