"""The explicit training loop: what `keras.Model` gives keras_impl, written out for PyTorch.

`Trainer.fit` walks epochs of batches, calls the model's `train_step`, averages its metrics over the epoch (as
Keras's `Mean` trackers do), shows a tqdm bar, and calls callbacks with Keras's method names, so a run's outputs
are produced by the same hooks in both backends. `apply_gradients` mirrors `optimizer.apply_gradients`, and
`keras_default_init` gives torch layers the initialisation that Keras layers have by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn
from tqdm import tqdm


def keras_default_init(module: nn.Module) -> None:
    """Initialise as Keras does by default: Glorot-uniform kernels, zero biases (the book uses the defaults)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def apply_gradients(optimizer: torch.optim.Optimizer, grads_and_params: Iterable) -> None:
    """Set each parameter's gradient and take one optimizer step (Keras: `optimizer.apply_gradients`)."""
    for grad, param in grads_and_params:
        param.grad = grad
    optimizer.step()


class Callback:
    """Hooks with Keras's names; `self.model` is the trainer, set by `fit`."""

    model: Trainer

    def on_train_begin(self, logs: dict | None = None) -> None: ...

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...

    def on_train_end(self, logs: dict | None = None) -> None: ...


class Trainer(nn.Module):
    """Base of the GAN trainers: subclasses define `train_step(batch) -> dict of scalar tensors`."""

    stop_training: bool = False

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def fit(
        self,
        batches: Callable[[int], Iterable],
        epochs: int,
        initial_epoch: int = 0,
        callbacks: Sequence[Callback] = (),
        verbose: int = 1,
        steps_per_epoch: int | None = None,
    ) -> dict[str, list[float]]:
        """Train epochs `initial_epoch .. epochs - 1`; `batches(epoch)` yields that epoch's batches."""
        history: dict[str, list[float]] = {}
        logs: dict[str, float] = {}
        self.stop_training = False
        for callback in callbacks:
            callback.model = self
            callback.on_train_begin()
        self.train()
        for epoch in range(initial_epoch, epochs):
            sums: dict[str, float] = {}
            progress = tqdm(batches(epoch), f"Epoch {epoch + 1}/{epochs}", steps_per_epoch, disable=not verbose)
            for step, batch in enumerate(progress, start=1):
                values = {name: float(value) for name, value in self.train_step(batch).items()}
                for name, value in values.items():
                    sums[name] = sums.get(name, 0.0) + value
                logs = {name: total / step for name, total in sums.items()}
                progress.set_postfix({name: f"{value:.4f}" for name, value in logs.items()}, refresh=False)
                for callback in callbacks:
                    callback.on_train_batch_end(step - 1, logs)
                if self.stop_training:
                    break
            progress.close()
            for name, value in logs.items():
                history.setdefault(name, []).append(value)
            for callback in callbacks:
                callback.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for callback in callbacks:
            callback.on_train_end(logs)
        return history
