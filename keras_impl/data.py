"""Batches for Keras: the shared uint8 cache in the spec's seeded order (mirror: torch_impl/data.py).

The pixels come from `specs.datasets` (one cache, one resize), so both backends train on the same bytes.
Batch order is `spec.batch_order(epoch, ...)`: the same seed gives the same batches in the same order in both.
Scaling: x in 0..255 -> (x - 127.5) / 127.5 in float32, bitwise equal to `specs.datasets.to_unit`.
Layout: (N, H, W, C), as Keras convolutions expect and as the cache stores it; torch_impl transposes to NCHW.
Full batches only (the remainder of an epoch is dropped), so every batch has the same static shape.
Per Keras backend: on TensorFlow a tf.data pipeline, which tf.distribute shards over its replicas (each reads its
own part of every global batch of that order, keras_impl/distributed.py); on JAX and PyTorch a
keras.utils.PyDataset of numpy batches over the same cache, which fit converts to the backend's arrays (and on JAX
splits over the devices of a DataParallel distribution). The bytes are the same (`gan-parity data`).
"""

from __future__ import annotations

import keras
import numpy as np

from keras_impl.distributed import BACKEND, local_batch, shard
from specs.datasets import Cached, DatasetSpec
from specs.datasets import to_unit as numpy_to_unit

if BACKEND == "tensorflow":
    import tensorflow as tf  # tf.data: the TensorFlow backend's input pipeline


def to_unit(images):
    """uint8 0..255 -> float32 -1..1 as (x - 127.5) / 127.5: a tf.Tensor in the tf.data pipeline, numpy otherwise."""
    if isinstance(images, np.ndarray):
        return numpy_to_unit(images)
    return (tf.cast(images, tf.float32) - 127.5) / 127.5


def to_batch(images, labels, num_classes: int, one_hot: bool):
    """Cache slices uint8 (N, H, W, C), int64 (N,) -> images float32 (N, H, W, C), or (images, one-hot)."""
    images = to_unit(images)  # (N, H, W, C)
    if not one_hot:
        return images
    if isinstance(labels, np.ndarray):
        return images, np.eye(num_classes, dtype=np.float32)[labels]  # (N, num_classes)
    return images, tf.one_hot(labels, num_classes, dtype=tf.float32)  # (N, num_classes)


def batches(
    data: Cached,
    spec: DatasetSpec,
    batch_size: int,
    first_epoch: int = 0,
    epochs: int = 1,
    one_hot: bool = False,
    kind: str | None = None,
) -> tf.data.Dataset | tf.distribute.DistributedDataset | keras.utils.PyDataset:
    """The batches of epochs first_epoch, ..., first_epoch + epochs - 1, one epoch after the other: images
    float32 (N, H, W, C) in [-1, 1], or (images, one-hot float32 labels). A tf.data.Dataset of known length on
    the TensorFlow backend, a keras.utils.PyDataset (numpy batches; iterable) on JAX and PyTorch; `kind`
    ("tf.data" or "PyDataset") asks for one of them whatever the backend (gan-parity data compares both).

    One dataset for the whole run: `keras.Model.fit(dataset, steps_per_epoch=num_batches, initial_epoch=
    first_epoch, epochs=first_epoch + epochs)` walks it across the epochs, with num_batches = N // batch_size.
    Raises DataError (at the call, not inside tf.data) when the data set is smaller than one batch.
    With several replicas, a tf.distribute dataset: each input pipeline yields its replicas' parts of every batch.
    """
    order = spec.batch_order(first_epoch, len(data.labels), batch_size)  # int64 (num_batches, batch_size)
    if (kind or ("tf.data" if BACKEND == "tensorflow" else "PyDataset")) == "PyDataset":
        return _Batches(data, spec, batch_size, first_epoch, epochs, one_hot)
    size = local_batch(batch_size)  # images per replica: all of them on one device

    def pipeline(context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        def sharded(epoch_order):  # this input pipeline's parts of every batch: all of it on one device
            return epoch_order if context is None else shard(epoch_order, context)

        def uint8_batches():
            for epoch in range(first_epoch, first_epoch + epochs):
                for indices in sharded(spec.batch_order(epoch, len(data.labels), batch_size)):
                    yield data.images[indices], data.labels[indices]

        height, width, channels = data.images.shape[1:]
        signature = (
            tf.TensorSpec((size, height, width, channels), tf.uint8),
            tf.TensorSpec((size,), tf.int64),
        )
        dataset = tf.data.Dataset.from_generator(uint8_batches, output_signature=signature)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(sharded(order)) * epochs))
        dataset = dataset.map(
            lambda images, labels: to_batch(images, labels, data.num_classes, one_hot),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return dataset.prefetch(tf.data.AUTOTUNE)

    if size == batch_size:
        return pipeline()
    return tf.distribute.get_strategy().distribute_datasets_from_function(pipeline)


class _Batches(keras.utils.PyDataset):
    """The batches of `epochs` epochs as one sequence: batch i is batch i % num_batches of epoch first_epoch +
    i // num_batches, so `fit(..., steps_per_epoch=num_batches)` walks it across the epochs (as tf.data's)."""

    def __init__(self, data: Cached, spec: DatasetSpec, batch_size: int, first_epoch: int, epochs: int,
                 one_hot: bool):
        super().__init__()  # read in fit's own thread: a batch is one gather from the cache in memory
        self.data, self.spec, self.batch_size, self.one_hot = data, spec, batch_size, one_hot
        self.first_epoch, self.epochs = first_epoch, epochs
        self.per_epoch = len(spec.batch_order(first_epoch, len(data.labels), batch_size))
        self.orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.per_epoch * self.epochs

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        epoch = self.first_epoch + index // self.per_epoch
        if epoch not in self.orders:  # one epoch's order at a time
            self.orders = {epoch: self.spec.batch_order(epoch, len(self.data.labels), self.batch_size)}
        indices = self.orders[epoch][index % self.per_epoch]
        return to_batch(self.data.images[indices], self.data.labels[indices], self.data.num_classes, self.one_hot)

    def __iter__(self):
        return (self[index] for index in range(len(self)))
