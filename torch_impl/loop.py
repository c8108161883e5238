"""The explicit training loop: what `keras.Model` gives keras_impl, written out for PyTorch.

`Trainer.fit` walks epochs of batches, calls the model's `train_step`, averages its metrics over the epoch (as
Keras's `Mean` trackers do), shows a tqdm bar, and calls callbacks with Keras's method names, so a run's outputs
are produced by the same hooks in both backends. `apply_gradients` mirrors `optimizer.apply_gradients`,
`keras_default_init` gives torch layers the initialisation that Keras layers have by default, and `Network` is the
nn.Sequential of the models, which computes in its precision as a Keras network does under its dtype policy.
With several replicas (torch_impl/distributed.py) this file also does what Keras does under tf.distribute: the
optimizer step sums the gradients over the replicas, `fit` logs the mean of the replicas' metrics, and
`SyncBatchNorm` is BatchNorm on the global batch (Keras: `BatchNormalization(synchronized=True)`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from torch_impl.devices import compute_dtype


def keras_default_init(module: nn.Module) -> None:
    """Initialise as Keras does by default: Glorot-uniform kernels, zero biases (the book uses the defaults)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Dropout(nn.Dropout):
    """nn.Dropout whose mask is drawn as U(0, 1) >= rate in float32, then scaled by 1 / (1 - rate): the same
    Bernoulli(1 - rate) mask and scale as F.dropout's (and as Keras's Dropout, which draws it the same way), from
    torch's vectorised uniform draw instead of its CPU `bernoulli_`, which draws one number at a time (it took 12%
    of a digits DCGAN train step here; benchmarks/profile_step.py)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * self.mask(x)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """One draw of the scaled mask: 0 or 1 / (1 - p), in x's dtype and layout."""
        scale = 1 / (1 - self.p) if self.p < 1 else 0.0
        return torch.rand_like(x, dtype=torch.float32).ge_(self.p).mul_(scale).to(x.dtype)


class Network(nn.Sequential):
    """The layers in order, computing in the precision policy they were built under (torch_impl/devices.py): in
    training mode, under float16 or bfloat16, every layer but the last runs under torch.autocast, and the last one
    (tanh, flatten) takes its input in float32 (float64 stays float64), so the network hands back full precision.
    Keras: each layer's dtype policy, the last one's float32. Inference mode (samples, eval, export) is float32."""

    def __init__(self, layers):
        super().__init__(layers)
        self.compute_dtype = compute_dtype()  # None: the weights' dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _WRITTEN_OUT and self.written_out():  # inside input_gradient (below)
            return (x * self.input_gradient(x.detach())).flatten(1).sum(dim=1, keepdim=True)
        *body, last = self
        with self.precision(x):
            for layer in body:
                x = layer(x)
        return last(x.to(torch.promote_types(x.dtype, torch.float32)))

    def precision(self, x: torch.Tensor):
        """The autocast context of the layers before the last: the compute dtype in training mode, else none."""
        mixed = self.compute_dtype is not None and self.training
        return torch.autocast(x.device.type, dtype=self.compute_dtype) if mixed else contextlib.nullcontext()

    def written_out(self) -> bool:
        """Whether input_gradient can write this network's backward out: convolutions, LeakyReLUs, dropout, and a
        flatten to one score per sample at the end."""
        *body, last = self
        plain_conv = lambda layer: (isinstance(layer, nn.Conv2d) and layer.groups == 1  # noqa: E731
                                    and layer.padding_mode == "zeros" and not isinstance(layer.padding, str))
        return isinstance(last, nn.Flatten) and all(
            plain_conv(layer) or isinstance(layer, (nn.LeakyReLU, Dropout)) for layer in body)

    def input_gradient(self, x: torch.Tensor) -> torch.Tensor:
        """d sum(self(x)) / dx for a network of `written_out` layers, differentiable in the weights: the forward pass
        without a graph keeps what each layer's derivative needs (a LeakyReLU's input signs, a dropout mask, a
        convolution's input size), then the gradient runs back through the layers as differentiable operations: a
        convolution's as the transposed convolution of the same kernel, a LeakyReLU's and a dropout's as a product
        with a constant. In the precision of the forward pass (autocast), returned in x's dtype."""
        *body, last = self
        steps = []  # per layer, in order: what its gradient multiplies by, or the convolution and its input size
        with torch.no_grad(), self.precision(x):
            h = x
            for layer in body:
                if isinstance(layer, nn.Conv2d):
                    steps.append((layer, h.shape[2:]))
                    h = layer(h)
                elif isinstance(layer, nn.LeakyReLU):  # torch's derivative: 1 where the input is > 0, else the slope
                    steps.append((None, torch.ones_like(h).masked_fill_(h <= 0, layer.negative_slope)))  # the
                    # slope in h's dtype: a float64 mask holds the Python float
                    h = layer(h)
                elif layer.training and layer.p:  # Dropout
                    steps.append((None, layer.mask(h)))
                    h = h * steps[-1][1]
        grad = torch.ones(h.shape, dtype=torch.promote_types(h.dtype, torch.float32), device=h.device)  # the flatten
        with self.precision(x):
            for layer, saved in reversed(steps):
                if layer is None:
                    grad = grad * saved
                    continue
                made = [(g - 1) * s - 2 * p + d * (k - 1) + 1 for g, s, p, d, k in
                        zip(grad.shape[2:], layer.stride, layer.padding, layer.dilation, layer.kernel_size)]
                grad = F.conv_transpose2d(grad, layer.weight, stride=layer.stride, padding=layer.padding,
                                          output_padding=[size - m for size, m in zip(saved, made)],
                                          dilation=layer.dilation)  # the rows and columns a stride skipped: 0s
        return grad.to(x.dtype)


_WRITTEN_OUT = []  # non-empty while input_gradient runs: Networks then return a stand-in whose gradient is theirs


def input_gradient(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """d sum(fn(x)) / dx, differentiable in the weights: what `torch.autograd.grad(fn(x).sum(), x,
    create_graph=True)` returns (Keras: keras_impl.gradients.input_gradient), for a gradient penalty. Each `Network`
    that fn calls and whose layers `Network.written_out` knows gives its input's gradient from `input_gradient`:
    fn(x) is then the stand-in sum(input * gradient) per sample, whose autograd gradient through the rest of fn (a
    concatenation of label planes) is the same as the scores'. Why: torch's double backward of a convolution runs
    convolutions of batch- and channel-transposed operands, which oneDNN computes slowly on CPUs, and carries zeros
    back through every layer below a LeakyReLU; with a transposed convolution's ordinary gradient kernels and
    constant masks a WGAN-GP or CGAN train step is about 1.1-1.35x faster here (README, Speed: benchmarks/throughput.py,
    variant `autograd_penalty`). The parity checks compare the penalty and its gradients with Keras's in float64."""
    x = x.detach().requires_grad_(True)
    _WRITTEN_OUT.append(True)
    try:
        scores = fn(x)
    finally:
        _WRITTEN_OUT.pop()
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad


def scale_loss(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    """The loss to differentiate for `optimizer`: times its dynamic loss scale under float16 (optim.Adam), else
    the loss itself, whatever the optimiser (Keras: `optimizer.scale_loss(loss)`)."""
    return optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss


def apply_gradients(optimizer: torch.optim.Optimizer, grads_and_params: Iterable) -> None:
    """Set each parameter's gradient and take one optimizer step (Keras: `optimizer.apply_gradients`); with several
    replicas the gradients are first summed over them, as Keras's optimizer sums them under tf.distribute. With loss
    scaling (float16) the step unscales the gradients, is skipped when one is not finite, and adapts the scale
    (torch.amp.GradScaler; Keras: LossScaleOptimizer.apply_gradients)."""
    grads, params = zip(*grads_and_params)
    for grad, param in zip(sum_over_replicas(list(grads)), params):
        param.grad = grad if grad.stride() == param.stride() else torch.empty_like(param).copy_(grad)  # (*)
    scaler = getattr(optimizer, "grad_scaler", None)
    if scaler is None:
        optimizer.step()
        return
    scaler.step(optimizer)
    scaler.update()


# (*) A gradient in the parameter's own memory layout: a critic's gradients, summed from autograd's double backward
# (benchmarks/throughput.py, variant `autograd_penalty`), come back contiguous while its kernels are channels-last,
# and the fused Adam (optim.py) reads the parameter, gradient and moments as flat arrays of one layout; without this
# copy it would update with the wrong elements.


# ------------------------------------------------------------------------------------------------- Replicas


def replica_count() -> int:
    """The number of processes training together (torch_impl/distributed.py); 1 without torchrun."""
    return dist.get_world_size() if dist.is_initialized() else 1


def sum_over_replicas(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Every tensor summed over the replicas, all in one all-reduce; the tensors themselves in one process."""
    if replica_count() == 1:
        return tensors
    flat = torch.cat([tensor.detach().reshape(-1) for tensor in tensors])
    dist.all_reduce(flat)
    return [part.view_as(tensor) for part, tensor in zip(flat.split([t.numel() for t in tensors]), tensors)]


def mean_over_replicas(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each logged value averaged over the replicas (Keras's `fit` takes the mean of the replicas' results), so
    every replica logs, and stops at a NaN, alike."""
    count = replica_count()
    if count == 1:
        return values
    (total,) = sum_over_replicas([torch.stack([value.detach().double() for value in values.values()])])
    return dict(zip(values, total / count))


class _AllReduceSum(torch.autograd.Function):
    """Sum over the replicas, differentiable: the gradient of a sum over replicas is the sum of the gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad)


class SyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d (or BatchNorm1d, over features) that, in training mode with several replicas, normalises with the
    mean and biased variance of the global batch and tracks its running statistics from them (torch's own
    running-variance convention: unbiased, n / (n - 1)). Keras: `BatchNormalization(synchronized=True)`.
    torch.nn.SyncBatchNorm refuses CPU tensors; this one sums with differentiable all-reduces, so gloo (CPU)
    carries it as NCCL does."""

    @classmethod
    def from_batch_norm(cls, layer: nn.BatchNorm2d) -> SyncBatchNorm:
        """The same layer, synchronised: its parameters and buffers are shared, not copied."""
        sync = cls(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
                   track_running_stats=layer.track_running_stats, device="meta")
        sync.weight, sync.bias = layer.weight, layer.bias
        for name, buffer in layer.named_buffers(recurse=False):
            setattr(sync, name, buffer)
        sync.train(layer.training)
        return sync

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 4):
            raise ValueError(f"expected a 2D (features) or 4D (channels) input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or replica_count() == 1:
            return super().forward(x)
        axes, spread = (0, *range(2, x.dim())), (slice(None), *(None,) * (x.dim() - 2))  # all but the channels
        count = x.numel() // x.shape[1] * replica_count()  # every replica has the same batch size
        mean = _AllReduceSum.apply(x.sum(dim=axes)) / count
        centered = x - mean[spread]
        variance = _AllReduceSum.apply(centered.square().sum(dim=axes)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(variance * count / (count - 1), self.momentum)
        scale = torch.rsqrt(variance + self.eps)
        if self.affine:
            return centered * (self.weight * scale)[spread] + self.bias[spread]
        return centered * scale[spread]


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
                values = mean_over_replicas(self.train_step(batch))
                values = dict(zip(values, torch.stack([value.detach().double() for value in values.values()]).tolist()))
                # one read of the step's values (a GPU run waits for its device once a step, not once a value)
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
