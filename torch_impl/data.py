"""Batches for PyTorch: the shared uint8 cache in the spec's seeded order (mirror: keras_impl/data.py).

The pixels come from `specs.datasets` (one cache, one resize), so both backends train on the same bytes.
Batch order is `spec.batch_order(epoch, ...)`: the same seed gives the same batches in the same order in both.
Scaling: x in 0..255 -> (x - 127.5) / 127.5 in float32, bitwise equal to `specs.datasets.to_unit`.
Layout: (N, C, H, W), as torch convolutions expect, stored channels-last (torch.channels_last), as the trainers'
kernels are (torch_impl/trainers.py): the cache's own (N, H, W, C) bytes in order, with no transposing copy.
Full batches only (the remainder of an epoch is dropped), so every batch has the same static shape.
With several processes (torch_impl/distributed.py) each reads its own part of every global batch of that order.
Batches are made on the CPU and handed over on the trainer's device (`device`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from specs.datasets import Cached, DatasetSpec
from torch_impl.distributed import shard


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 -1..1 as (x - 127.5) / 127.5, channels-last (N, C, H, W) whatever the strides of
    `images` (the cache's (N, H, W, C) permuted to (N, C, H, W) is channels-last already: a straight conversion).

    Same IEEE operations as `(images.float() - 127.5) / 127.5`, in three passes without temporaries.
    """
    unit = images.to(torch.float32, memory_format=torch.channels_last, copy=True)  # x.float()
    return unit.sub_(127.5).div_(127.5)


def to_batch(
    images: np.ndarray, labels: np.ndarray, num_classes: int, one_hot: bool
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Cache slices uint8 (N, H, W, C), int64 (N,) -> images float32 (N, C, H, W), or (images, one-hot)."""
    images = to_unit(torch.from_numpy(images).permute(0, 3, 1, 2))  # (N, C, H, W), channels-last
    if not one_hot:
        return images
    return images, F.one_hot(torch.from_numpy(labels), num_classes).float()  # (N, num_classes)


def batches(
    data: Cached, spec: DatasetSpec, batch_size: int, epoch: int, one_hot: bool = False,
    device: torch.device | str = "cpu",
) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    """The batches of one epoch on `device`: images float32 (N, C, H, W) in [-1, 1], or (images, one-hot float32
    labels).

    One epoch per call: the training loop asks for batches(data, spec, batch_size, epoch) at every epoch.
    Raises DataError (at the call, not at the first batch) when the data set is smaller than one batch.
    """
    order = spec.batch_order(epoch, len(data.labels), batch_size)  # int64 (num_batches, batch_size)
    order = shard(order)  # this process's part of every batch: all of it in one process

    def uint8_batches():
        for indices in order:
            yield data.images[indices], data.labels[indices]

    def on_device(batch):
        return tuple(part.to(device) for part in batch) if isinstance(batch, tuple) else batch.to(device)

    return (on_device(to_batch(images, labels, data.num_classes, one_hot)) for images, labels in uint8_batches())
