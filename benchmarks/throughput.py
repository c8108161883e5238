"""Train-step throughput of every model in both backends, float32 and bfloat16: torch against Keras, our trainers
against plain reference loops, GFLOP/s against the matmul peak, and what each acceleration or remedy is worth.
Models: the book's three at the book (64x64) and digits (32x32) presets, and the published model at its presets
(pytorch-examples, pytorch-gan-mlp, face32, svhn-tf1, celeba-keras); each model runs the presets it has.

Usage: python benchmarks/throughput.py [--models ...] [--presets book digits face32 ...]
                                       [--backends torch keras keras-jax keras-torch]
                                       [--precisions float32 bfloat16] [--variants ...] [--rounds N] [--steps N]
                                       [--warmup 2] [--max-batch 128] [--json FILE] [--readme]
`python benchmarks/throughput.py --readme` writes the README's Speed tables (between its throughput markers).
Backends: torch (torch_impl), keras (keras_impl on TensorFlow), keras-jax and keras-torch (keras_impl on Keras's
JAX and PyTorch backends: KERAS_BACKEND, and the device as gan-keras names it, are set in the cell's process). The
default is torch and keras; name the other two with --backends (their cells add a column each to the first table,
and a table of the fastest backend per model).
Cells (each in its own process, so thread settings, compile caches and thread pools never mix):
- ours: torch `trainer.train_step(batch)` on a channels-last batch; Keras `trainer.fit` on a repeated batch: a
  tf.data batch on TensorFlow (a tf.function), a repeated numpy batch on JAX (fit jit-compiles the stateless step
  with XLA, Keras's default there) and on PyTorch (eager, Keras's default there); in each precision asked for
  (trainers built as the command lines build them, with `--precision`). torch cells run with the OpenMP setting
  gan-torch makes (torch_impl/train.py: OMP_WAIT_POLICY).
- reference: the same networks in a plain loop written here: for torch the pytorch/examples DCGAN loop
  (`zero_grad`, `loss.backward()`, `optimizer.step()`; WGAN-GP/CGAN with the usual `autograd.grad(create_graph=True)`
  penalty; contiguous NCHW, torch's default Adam), for Keras a keras.io-style `keras.Model` whose `train_step` uses
  GradientTapes (its DCGAN and WGAN-GP examples). ours/reference >= 1 means our trainers cost nothing over it.
- variants, each as a ratio against `ours` of the same run (float32): torch `torch.compile` (both DCGAN networks;
  of WGAN-GP and CGAN the generator only: compiled graphs cannot be differentiated twice, as the critic's gradient
  penalty needs), and each CPU remedy of ours undone: `contiguous` (kernels and batches NCHW-contiguous instead of
  channels-last), `bernoulli_dropout` (nn.Dropout's own mask), `unfused_adam` (torch's for-loop Adam), `omp_spin`
  (OpenMP threads spin while they wait: libgomp's default), `autograd_penalty` (WGAN-GP, CGAN: the penalty's input
  gradient by autograd's double backward instead of written out, torch_impl/loop.py `input_gradient`), and
  `threads=1`; Keras on TensorFlow
  `jit_compile=True` (XLA), 1 intra-op thread. The Keras JAX and PyTorch backends run `ours` only (the reference
  loop is TensorFlow's GradientTape code).
`--rounds N` runs the `ours` cells N times, round after round (torch and Keras of one model next to each other in
every round), and reports the median of their N median steps: on a shared machine the load drifts over minutes.
GFLOP per step is counted from the layer shapes (`step_flops`; the published networks' by forward hooks on their
torch layers, `published_flops`): 2 x multiply-adds of every conv, convT and Linear; a pass
whose weights are differentiated counts 3 x its forward (forward, input and weight gradients), one differentiated
only to reach the generator 2 x, one without gradient 1 x, and the gradient penalty 6 x (forward, input gradient
kept as a graph, and the double backward through both). Activations, BatchNorm and Adam are left out.
The peak is a 2048x2048 float32 matmul in each framework with its default threads, on the CPU (keras-jax: JAX's,
keras-torch: torch's). Batches are random, fixed, in
[-1, 1]: compute only. The preset's batch size is kept up to --max-batch (WGAN-GP's book batch of 512 runs at 128).
Images/s are batch size / median step time: on a shared machine one slow step (another process, a page fault)
moves the mean of a few steps by tens of per cent, the median of at least 5 hardly (a median of 2 steps is their
mean: cells that ran 2 timed steps moved by 0.2 in their ratio between runs). Images per CPU-second are the batch
over the process's CPU time per timed step (every thread's): what a step costs, whatever share of the cores other
processes leave it. On a busy machine that share differs between the frameworks (the scheduler shares the cores per
thread, and TensorFlow runs more threads than torch), so the two ratios can differ; on an idle one they agree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from keras_impl.train import _device_environment  # what gan-keras sets before Keras loads (imports no framework)
from specs.models import PRESETS as MODEL_PRESETS
from specs.models import get_config
from specs.runs import RunError
from torch_impl.train import OPENMP  # what gan-torch sets before torch loads (imports no framework)

MODELS, BACKENDS = ("dcgan", "wgan_gp", "cgan", "published"), ("torch", "keras", "keras-jax", "keras-torch")
PRESETS = ("book", "digits", *MODEL_PRESETS["published"])
PRECISIONS = ("float32", "bfloat16", "float16")
VARIANTS = {"torch": ("ours", "reference", "compile", "contiguous", "bernoulli_dropout", "unfused_adam", "omp_spin",
                      "autograd_penalty", "threads=1"),
            "keras": ("ours", "reference", "xla", "threads=1"), "keras-jax": ("ours",), "keras-torch": ("ours",)}
KERAS_BACKENDS = {"keras": "tensorflow", "keras-jax": "jax", "keras-torch": "torch"}  # KERAS_BACKEND of each
LABELS = {"torch": "torch", "keras": "Keras", "keras-jax": "Keras on JAX", "keras-torch": "Keras on PyTorch"}
TARGET_GFLOP = 150  # default timed steps: about this much work per cell (a few seconds on 2 cores)
MIN_STEPS = 5  # and at least this many, so that one slow step cannot move the median
ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKERS = ("<!-- throughput:begin -->", "<!-- throughput:end -->")
TITLES = {"dcgan": "DCGAN", "wgan_gp": "WGAN-GP", "cgan": "CGAN", "published": ""}  # a published model: its preset

# ------------------------------------------------------------------------------------------------ The work


def config_of(model: str, preset: str, max_batch: int):
    return get_config(model, preset, batch_size=min(get_config(model, preset).batch_size, max_batch))


def network_flops(config) -> tuple[float, float]:
    """Forward FLOPs per image of the generator and of the discriminator or critic (kernel 4: 16 taps)."""
    generator, side, inputs = 0.0, 1, config.generator_input_dim
    for outputs in (*config.generator_widths(), config.channels):
        generator += 2 * side * side * inputs * outputs * 16  # a convT: every input pixel meets every tap
        side, inputs = (4 if side == 1 else 2 * side), outputs
    critic, side, inputs = 0.0, config.image_size, config.critic_input_channels
    for outputs in config.discriminator_widths():
        side //= 2
        critic += 2 * side * side * inputs * outputs * 16  # a stride-2 conv: every output pixel reads 16 taps
        inputs = outputs
    return generator, critic + 2 * inputs * 16  # the last conv: 4x4 -> 1x1, one output


def published_flops(config) -> tuple[float, float]:
    """Forward FLOPs per image of a published model's generator and discriminator: 2 x the multiply-adds of every
    conv, transposed conv and Linear, counted by forward hooks on the torch networks (torch is imported here)."""
    import torch

    from torch_impl.published import NETWORKS

    totals = []
    for network in (build(config) for build in NETWORKS[config.architecture]):
        count = [0.0]

        def hook(module, args, output, count=count):
            if isinstance(module, torch.nn.Linear):
                count[0] += 2 * module.in_features * module.out_features
            elif isinstance(module, torch.nn.Conv2d):  # every output pixel reads k * k * in taps
                count[0] += 2 * output[0].numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            elif isinstance(module, torch.nn.ConvTranspose2d):  # every input pixel meets k * k * out taps
                count[0] += 2 * args[0][0].numel() * module.out_channels * module.kernel_size[0] * module.kernel_size[1]

        for module in network.modules():
            module.register_forward_hook(hook)
        size = config.image_size
        example = torch.zeros(1, config.latent_dim) if not totals else torch.zeros(1, config.channels, size, size)
        with torch.no_grad():
            network.eval()(example)
        totals.append(count[0])
    return totals[0], totals[1]


def step_flops(model: str, config) -> float:
    """FLOPs of one train step of our trainers (see the module docstring for the counting)."""
    g, d = published_flops(config) if model == "published" else network_flops(config)
    if model in ("dcgan", "published"):  # D on real and fake (3 + 3); G's step: D differentiated to reach G (2), G (3)
        return config.batch_size * (3 * g + (7 if config.update_order == "simultaneous" else 8) * d)  # 7: shared pass
    critic_step = g + 3 * d + 3 * d + 6 * d  # G without gradient; C on real, on fake; the gradient penalty
    return config.batch_size * (config.critic_steps * critic_step + 3 * g + 2 * d)


def example_batch(config, channels_first: bool):
    """One fixed float32 batch in [-1, 1] (NCHW or NHWC); with one-hot labels for a conditional model."""
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (config.batch_size, config.image_size, config.image_size, config.channels))
    images = np.ascontiguousarray(images.transpose(0, 3, 1, 2) if channels_first else images, dtype=np.float32)
    if not config.conditional:
        return images
    return images, np.eye(config.num_classes, dtype=np.float32)[rng.integers(0, config.num_classes, len(images))]


# ---------------------------------------------------------------------------------------------------- torch


def torch_reference(model: str, config):
    """The pytorch/examples DCGAN loop (and its usual WGAN-GP form) on our networks: backward() and step()."""
    import torch

    from torch_impl.dcgan import Discriminator, Generator
    from torch_impl.published import NETWORKS
    from torch_impl.wgan_gp import Critic

    networks = NETWORKS[config.architecture] if model == "published" else (Generator, Discriminator)
    G, D = networks[0](config), (networks[1] if model in ("dcgan", "published") else Critic)(config)
    opt_g, opt_d = (torch.optim.Adam(net.parameters(), config.learning_rate, (config.beta_1, config.beta_2))
                    for net in (G, D))
    bce = torch.nn.BCEWithLogitsLoss()

    def g_in(z, y):
        return z if y is None else torch.cat([z, y], 1)

    def d_in(x, y):
        return x if y is None else torch.cat([x, y[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)

    def step(batch):
        real, y = batch if isinstance(batch, tuple) else (batch, None)
        b = real.shape[0]
        if model in ("dcgan", "published"):
            D.zero_grad()
            bce(D(real), torch.ones(b, 1)).backward()
            fake = G(torch.randn(b, config.latent_dim))
            bce(D(fake.detach()), torch.zeros(b, 1)).backward()
            opt_d.step()
            G.zero_grad()
            bce(D(fake), torch.ones(b, 1)).backward()
            opt_g.step()
            return
        for _ in range(config.critic_steps):
            D.zero_grad()
            fake = G(g_in(torch.randn(b, config.latent_dim), y)).detach()
            x_hat = (real + torch.rand(b, 1, 1, 1) * (fake - real)).requires_grad_(True)
            (grad,) = torch.autograd.grad(D(d_in(x_hat, y)).sum(), x_hat, create_graph=True)
            penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            (D(d_in(fake, y)).mean() - D(d_in(real, y)).mean() + config.gp_weight * penalty).backward()
            opt_d.step()
        G.zero_grad()
        (-D(d_in(G(g_in(torch.randn(b, config.latent_dim), y)), y)).mean()).backward()
        opt_g.step()

    return step


def undo_remedy(trainer, variant: str) -> None:
    """Undo one of the CPU remedies of torch_impl in a built trainer (the variants of the accelerations table)."""
    import torch
    from torch import nn

    from torch_impl.loop import Dropout

    if variant == "contiguous":
        trainer.to(memory_format=torch.contiguous_format)
    if variant == "bernoulli_dropout":
        for parent in list(trainer.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, Dropout):
                    setattr(parent, name, nn.Dropout(child.p))
    if variant == "autograd_penalty":
        trainer.critic.written_out = lambda: False  # loop.input_gradient then takes autograd's double backward
    if variant == "unfused_adam":
        for optimizer in (value for value in vars(trainer).values() if isinstance(value, torch.optim.Optimizer)):
            for group in optimizer.param_groups:
                group["fused"] = False
            optimizer._step_supports_amp_scaling = False


def torch_cell(model: str, config, variant: str, steps: int, warmup: int, precision: str = "float32",
               device: str = "cpu") -> dict:
    import torch

    from torch_impl.devices import describe_device, select_device
    from torch_impl.trainers import build_trainer

    if variant == "threads=1":
        torch.set_num_threads(1)
    device = select_device(device)
    torch.manual_seed(0)
    batch = example_batch(config, channels_first=True)
    batch = tuple(torch.from_numpy(part).to(device) for part in batch) if isinstance(batch, tuple) \
        else torch.from_numpy(batch).to(device)
    if variant == "reference":
        step = torch_reference(model, config)
    else:
        trainer = build_trainer(model, config, seed=0, device=device, precision=precision)
        trainer.train()
        if variant == "compile":  # not a critic with a penalty: compiled graphs have no double backward
            for name in ("generator", "discriminator") if model in ("dcgan", "published") else ("generator",):
                setattr(trainer, name, torch.compile(getattr(trainer, name)))
        undo_remedy(trainer, variant)
        if variant != "contiguous":  # the loader's channels-last batches (torch_impl/data.py)
            images = batch[0] if isinstance(batch, tuple) else batch
            images = images.contiguous(memory_format=torch.channels_last)
            batch = (images, batch[1]) if isinstance(batch, tuple) else images
        step = trainer.train_step
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None  # a step ends on the GPU
    for _ in range(warmup):
        step(batch)
    seconds, cpu = [], time.process_time()
    for _ in range(steps):
        synchronize()
        start = time.perf_counter()
        step(batch)
        synchronize()
        seconds.append(time.perf_counter() - start)
    return {"seconds": sum(seconds), "median_step": statistics.median(seconds), "step_seconds": seconds,
            "threads": torch.get_num_threads(),
            "cpu_step": (time.process_time() - cpu) / steps, "device": describe_device(device)}


# ---------------------------------------------------------------------------------------------------- Keras


def keras_reference(model: str, config):
    """A keras.io-style GAN: a keras.Model whose train_step takes GradientTapes (its DCGAN and WGAN-GP examples)."""
    import keras
    import tensorflow as tf
    from keras import ops

    from keras_impl.dcgan import Discriminator, Generator
    from keras_impl.published import NETWORKS
    from keras_impl.wgan_gp import Critic

    networks = NETWORKS[config.architecture] if model == "published" else (Generator, Discriminator)

    def g_in(z, y):
        return z if y is None else ops.concatenate([z, y], 1)

    def d_in(x, y):
        if y is None:
            return x
        return ops.concatenate([x, ops.broadcast_to(y[:, None, None, :], (*ops.shape(x)[:3], ops.shape(y)[1]))], -1)

    class Reference(keras.Model):
        def __init__(self):
            super().__init__()
            self.generator = networks[0](config)
            self.discriminator = (networks[1] if model in ("dcgan", "published") else Critic)(config)
            self.seed_generator = keras.random.SeedGenerator(0)

        def compile(self, **kwargs):
            super().compile(**kwargs)
            self.d_optimizer, self.g_optimizer = (keras.optimizers.Adam(config.learning_rate, config.beta_1,
                                                                        config.beta_2) for _ in range(2))
            self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

        def update(self, optimizer, tape, loss, network):
            optimizer.apply_gradients(zip(tape.gradient(loss, network.trainable_weights), network.trainable_weights))

        def train_step(self, data):
            real, y = data if isinstance(data, tuple) else (data, None)
            b, G, D = ops.shape(real)[0], self.generator, self.discriminator
            if model in ("dcgan", "published"):
                fake = G(keras.random.normal((b, config.latent_dim), seed=self.seed_generator), training=True)
                labels = ops.concatenate([ops.ones((b, 1)), ops.zeros((b, 1))])
                with tf.GradientTape() as tape:
                    d_loss = self.loss_fn(labels, D(ops.concatenate([fake, real]), training=True))
                self.update(self.d_optimizer, tape, d_loss, D)
                z = keras.random.normal((b, config.latent_dim), seed=self.seed_generator)
                with tf.GradientTape() as tape:
                    g_loss = self.loss_fn(ops.zeros((b, 1)), D(G(z, training=True), training=True))
                self.update(self.g_optimizer, tape, g_loss, G)
                return {"d_loss": d_loss, "g_loss": g_loss}
            for _ in range(config.critic_steps):
                z = keras.random.normal((b, config.latent_dim), seed=self.seed_generator)
                with tf.GradientTape() as tape:
                    fake = G(g_in(z, y), training=True)
                    d_cost = ops.mean(D(d_in(fake, y), training=True)) - ops.mean(D(d_in(real, y), training=True))
                    alpha = keras.random.uniform((b, 1, 1, 1), seed=self.seed_generator)
                    interpolated = real + alpha * (fake - real)
                    with tf.GradientTape() as gp_tape:
                        gp_tape.watch(interpolated)
                        scores = D(d_in(interpolated, y), training=True)
                    norm = ops.sqrt(ops.sum(ops.square(gp_tape.gradient(scores, interpolated)), axis=[1, 2, 3]))
                    d_loss = d_cost + config.gp_weight * ops.mean((norm - 1.0) ** 2)
                self.update(self.d_optimizer, tape, d_loss, D)
            z = keras.random.normal((b, config.latent_dim), seed=self.seed_generator)
            with tf.GradientTape() as tape:
                g_loss = -ops.mean(D(d_in(G(g_in(z, y), training=True), y), training=True))
            self.update(self.g_optimizer, tape, g_loss, G)
            return {"d_loss": d_loss, "g_loss": g_loss}

    return Reference()


def repeated(batch):
    """The same batch forever, as fit takes it on JAX and PyTorch (a generator: no TensorFlow)."""
    while True:
        yield batch


def keras_cell(model: str, config, variant: str, steps: int, warmup: int, precision: str = "float32",
               device: str = "cpu") -> dict:
    import keras

    from keras_impl.devices import describe_device, select_device
    from keras_impl.trainers import build_trainer

    backend = keras.backend.backend()  # KERAS_BACKEND of the cell's process (run_child)
    if backend == "tensorflow":
        import tensorflow as tf

    device = select_device(device)  # before TensorFlow sets up its devices
    if variant == "threads=1":
        tf.config.threading.set_intra_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    if variant == "reference":
        trainer = keras_reference(model, config)
        trainer.compile()
    else:
        trainer = build_trainer(model, config, seed=0, precision=precision)
    batch = example_batch(config, channels_first=False)
    if backend == "tensorflow":
        trainer.jit_compile = variant == "xla"  # fit's XLA switch (compile's jit_compile sets the same attribute)
        dataset = tf.data.Dataset.from_tensors(batch).repeat()
    else:  # Keras's own default: XLA on JAX, eager on PyTorch
        dataset = repeated(batch if isinstance(batch, tuple) else (batch,))
    if warmup:
        trainer.fit(dataset, epochs=1, steps_per_epoch=warmup, verbose=0, shuffle=False)  # traces, compiles
    stamps = []
    # A step's logs are read before the next stamp: JAX dispatches asynchronously, so without it a stamp would time
    # the dispatch, not the step (the same read on TensorFlow and PyTorch, whose logs are ready).
    clock = keras.callbacks.LambdaCallback(on_train_batch_begin=lambda *_, **__: stamps.append(time.perf_counter()),
                                           on_train_batch_end=lambda _, logs: [float(v) for v in logs.values()],
                                           on_epoch_end=lambda *_, **__: stamps.append(time.perf_counter()))
    start, cpu = time.perf_counter(), time.process_time()
    trainer.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[clock], shuffle=False)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    step_seconds = [b - a for a, b in zip(stamps, stamps[1:])]
    median = statistics.median(step_seconds)
    intra = (tf.config.threading.get_intra_op_parallelism_threads() or "auto") if backend == "tensorflow" else "auto"
    return {"seconds": seconds, "median_step": median, "step_seconds": step_seconds, "threads": intra,
            "cpu_step": cpu / steps,
            "device": describe_device(device), "jit_compile": trainer.jit_compile,
            "frameworks": [name for name in ("tensorflow", "jax", "torch") if name in sys.modules]}  # it loaded


# ----------------------------------------------------------------------------------------------- Processes


def matmul_peak(backend: str, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n x n float32 matmul, the best of `repeats`, default threads."""
    if backend in ("torch", "keras-torch"):
        import torch

        a, b = torch.randn(n, n), torch.randn(n, n)
        run = lambda: a @ b  # noqa: E731
    elif backend == "keras-jax":
        import jax

        a, b = jax.random.normal(jax.random.key(0), (n, n)), jax.random.normal(jax.random.key(1), (n, n))
        run = lambda: (a @ b).block_until_ready()  # noqa: E731
    else:
        import tensorflow as tf

        a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
        run = lambda: (a @ b).numpy()  # noqa: E731
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def cell(spec: dict) -> dict:
    """The child process's work: a peak or one cell, as a dict; an exception becomes {"error": its first line}."""
    try:
        if spec["variant"] == "peak":
            return {"gflops": matmul_peak(spec["backend"])}
        config = config_of(spec["model"], spec["preset"], spec["max_batch"])
        run = torch_cell if spec["backend"] == "torch" else keras_cell
        return run(spec["model"], config, spec["variant"], spec["steps"], spec["warmup"],
                   spec.get("precision", "float32"), spec.get("device", "cpu"))
    except Exception as error:  # a variant the framework cannot run here (e.g. compile with a double backward)
        line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return {"error": f"{type(error).__name__}: {line if len(line) <= 150 else line[:150].rsplit(' ', 1)[0] + ' …'}"}


def child_environment(spec: dict) -> dict[str, str]:
    """The environment of a cell's process: torch's OpenMP setting as gan-torch makes it; for a Keras backend its
    KERAS_BACKEND and the device variables gan-keras sets before Keras loads (the CPU for a peak). The child
    imports the packages of this checkout (the repository root first on PYTHONPATH), whatever is installed."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    if spec["backend"] == "torch":  # as gan-torch sets it before torch loads; omp_spin: libgomp's default
        env = {key: value for key, value in env.items() if key not in OPENMP} if spec["variant"] == "omp_spin" \
            else OPENMP | env
    if spec["backend"] in KERAS_BACKENDS:
        env["KERAS_BACKEND"] = KERAS_BACKENDS[spec["backend"]]
        env.update(_device_environment(spec.get("device", "cpu"), env["KERAS_BACKEND"]))
    return env


def run_child(spec: dict) -> dict:
    try:
        env = child_environment(spec)
    except RunError as error:  # a device the backend cannot run on (gan-keras's own message)
        return {"error": str(error)}
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--cell", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": f"the process failed (exit status {done.returncode}): {done.stderr.strip()[-200:]}"}
    return json.loads(lines[-1])


def default_steps(model: str, config) -> int:
    return max(MIN_STEPS, min(50, round(TARGET_GFLOP * 1e9 / step_flops(model, config))))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--presets", nargs="+", choices=PRESETS, default=list(PRESETS),
                        help="each model runs the presets it has (book, digits; the published model's own)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=["torch", "keras"],
                        help="default torch keras (Keras on TensorFlow); keras-jax and keras-torch by name")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=["float32", "bfloat16"],
                        help="precisions of the ours cells (default float32 bfloat16; the variants run float32)")
    parser.add_argument("--variants", nargs="*", default=None, help="subset of: " + ", ".join(
        dict.fromkeys(VARIANTS["torch"] + VARIANTS["keras"])) + " (default all; none without a word; ours is always "
        "run)")
    parser.add_argument("--devices", nargs="+", default=["cpu"], help="devices of the ours cells (--device words: "
                        "cpu, cuda, ...; default cpu); the reference and the variants run on the first")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every ours cell, round after round; each "
                        "reports the median of its medians (default 1)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"timed steps (default: ~{TARGET_GFLOP} GFLOP, at least {MIN_STEPS})")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation happens there)")
    parser.add_argument("--max-batch", type=int, default=128, help="cap on the preset's batch size (default 128)")
    parser.add_argument("--json", default=None, help="also write every cell's result to this JSON file")
    parser.add_argument("--readme", action="store_true", help="also write the tables into README.md")
    parser.add_argument("--cell", default=None, help=argparse.SUPPRESS)  # set in the child processes
    args = parser.parse_args(argv)
    known = set(VARIANTS["torch"] + VARIANTS["keras"])
    if args.variants is not None and not set(args.variants) <= known:
        parser.error(f"unknown variant(s) {sorted(set(args.variants) - known)}; known: {sorted(known)}")
    if (args.steps is not None and args.steps < 1) or args.warmup < 0 or args.max_batch < 1 or args.rounds < 1:
        parser.error("--steps, --rounds and --max-batch must be at least 1, --warmup at least 0")
    if not args.cell and not pairs(args):
        parser.error(f"none of --presets {' '.join(args.presets)} belongs to --models {' '.join(args.models)}")
    return args


def pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(preset, model) of every cell: each model at the presets it has, in the order of --presets."""
    return [(preset, model) for preset in args.presets for model in args.models if preset in MODEL_PRESETS[model]]


def cells_of(args: argparse.Namespace) -> list[dict]:
    """Every cell to run, one model after the other: its ours cells (each device and precision, every backend in
    turn), then its reference and variant cells (float32, on the first device)."""
    cells = []
    for preset, model in pairs(args):
        config = config_of(model, preset, args.max_batch)
        base = {"model": model, "preset": preset, "max_batch": args.max_batch, "warmup": args.warmup,
                "steps": args.steps or default_steps(model, config)}
        for device in args.devices:
            for precision in args.precisions:
                cells += [base | {"backend": backend, "variant": "ours", "precision": precision,
                                  "device": device} for backend in args.backends]
        for backend in args.backends:
            cells += [base | {"backend": backend, "variant": variant, "precision": "float32",
                              "device": args.devices[0]}
                      for variant in VARIANTS[backend][1:] if args.variants is None or variant in args.variants
                      if variant != "autograd_penalty" or model in ("wgan_gp", "cgan")]
    return cells


def key(cell: dict) -> tuple:
    return cell["preset"], cell["model"], cell["backend"], cell["variant"], cell["precision"], cell["device"]


def run_cells(args: argparse.Namespace) -> dict[tuple, dict]:
    """{key: result}: the ours cells `--rounds` times (the median of their median steps), the others once."""
    cells, results, rounds = cells_of(args), {}, {}
    for round_ in range(args.rounds):
        for cell in cells:
            if round_ and cell["variant"] != "ours":
                continue
            result = run_child(cell)
            rounds.setdefault(key(cell), []).append(result)
            label = " ".join(str(part) for part in key(cell))
            print(f"round {round_ + 1}: {label}: {result}", file=sys.stderr, flush=True)
    for name, runs in rounds.items():
        steps = [run["median_step"] for run in runs if "median_step" in run]
        cpu = [run["cpu_step"] for run in runs if "cpu_step" in run]
        results[name] = runs[0] | {"median_step": statistics.median(steps), "cpu_step": statistics.median(cpu),
                                   "rounds": len(steps)} if steps else runs[0]
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cell:
        return print(json.dumps(cell(json.loads(args.cell))), flush=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    peaks = {backend: run_child({"backend": backend, "variant": "peak"}) for backend in args.backends}
    results = run_cells(args)
    words = " ".join(measuring(argv if argv is not None else sys.argv[1:]))
    header = (f"`python benchmarks/throughput.py {words}`".replace(" `", "`") + f": {platform.machine()}, "
              f"{os.cpu_count()} CPUs, 1-minute load average {load:.1f} before and {os.getloadavg()[0]:.1f} after "
              f"({(time.perf_counter() - start) / 60:.0f} min); matmul peak (2048^2 float32): "
              + ", ".join(f"{b} {p.get('gflops', float('nan')):.0f} GFLOP/s" for b, p in peaks.items()) + ".")
    text = header + "\n\n" + report(args, results, peaks)
    print(text)
    if args.json:
        fields = ("preset", "model", "backend", "variant", "precision", "device")
        cells = [{"cell": dict(zip(fields, name)), "result": result} for name, result in results.items()]
        with open(args.json, "w") as handle:
            json.dump({"command": words, "peaks": peaks, "cells": cells}, handle, indent=1)
    if args.readme:
        write_readme(text)


def measuring(argv: list[str]) -> list[str]:
    """The command line without the options that only say where the results go (--readme, --json FILE)."""
    words, skip = [], False
    for word in argv:
        if skip or word == "--readme" or word.startswith("--json="):
            skip = False
        elif word == "--json":
            skip = True
        else:
            words.append(word)
    return words


def write_readme(text: str, path: Path = README) -> None:
    """Replace what lies between the throughput marker comments of README.md with `text`."""
    content = path.read_text()
    begin, end = content.index(MARKERS[0]) + len(MARKERS[0]), content.index(MARKERS[1])
    path.write_text(content[:begin] + "\n" + text + "\n" + content[end:])


def rate(results: dict, config, *name, device: str = "cpu") -> float:
    """Images per second of wall time: the batch over the median step."""
    result = results.get((*name, device), {})
    return config.batch_size / result["median_step"] if "median_step" in result else float("nan")


def cpu_rate(results: dict, config, *name, device: str = "cpu") -> float:
    """Images per second of the process's CPU time (all its threads): the work a step costs, whatever share of the
    cores other processes leave it; a waiting thread that spins counts as work."""
    result = results.get((*name, device), {})
    return config.batch_size / result["cpu_step"] if result.get("cpu_step") else float("nan")


def report(args: argparse.Namespace, results: dict, peaks: dict) -> str:
    """The tables: torch against Keras (on TensorFlow, and on JAX and PyTorch when the run has them) per precision,
    ours against the reference with GFLOP/s, the variants (on the first device), the fastest backend per model when
    the run has Keras on JAX or PyTorch, and with several devices each ours cell on each device."""
    first = args.devices[0]
    rows = [(preset, model, config_of(model, preset, args.max_batch)) for preset, model in pairs(args)]
    extra = [backend for backend in args.backends if backend not in ("torch", "keras")]  # a column each
    lines = ["| preset | model | batch | precision | torch img/s | Keras img/s | Keras ÷ torch | torch img per CPU-s "
             "| Keras img per CPU-s | Keras ÷ torch per CPU-s |"
             + "".join(f" {LABELS[b]} img/s | {LABELS[b]} ÷ torch | {LABELS[b]} ÷ torch per CPU-s |" for b in extra),
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|" + "---:|" * (3 * len(extra))]
    for preset, model, config in rows:
        for precision in args.precisions:
            backends = ("torch", "keras", *extra)
            walls = [rate(results, config, preset, model, b, "ours", precision, device=first) for b in backends]
            cpus = [cpu_rate(results, config, preset, model, b, "ours", precision, device=first) for b in backends]
            lines.append(f"| {preset} | {model} | {config.batch_size} | {precision} | {walls[0]:.1f} | {walls[1]:.1f} "
                         f"| {walls[1] / walls[0]:.2f} | {cpus[0]:.1f} | {cpus[1]:.1f} | {cpus[1] / cpus[0]:.2f} |"
                         + "".join(f" {wall:.1f} | {wall / walls[0]:.2f} | {cpu / cpus[0]:.2f} |"
                                   for wall, cpu in zip(walls[2:], cpus[2:])))
    others = [precision for precision in args.precisions if precision != "float32"]
    if others and "float32" in args.precisions:
        lines += ["", "Each precision against float32, images/s (and per CPU-second):", "",
                  "| preset | model | "
                  + " | ".join(f"{p} ÷ float32 {LABELS[b]}" for p in others for b in args.backends) + " |",
                  "|---|---|" + "---:|" * (len(args.backends) * len(others))]
        for preset, model, config in rows:
            cells = []
            for precision in others:
                for backend in args.backends:
                    wall, cpu = ((function(results, config, preset, model, backend, "ours", p, device=first)
                                  for p in (precision, "float32")) for function in (rate, cpu_rate))
                    cells.append(f"{next(wall) / next(wall):.2f} ({next(cpu) / next(cpu):.2f})")
            lines.append(f"| {preset} | {model} | " + " | ".join(cells) + " |")
    lines += ["", "Ours against the reference loop, and achieved GFLOP/s against the matmul peak (float32):", "",
              "| preset | model | backend | ours img/s | reference img/s | ours ÷ reference | GFLOP per step | GFLOP/s "
              "| % of peak |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for preset, model, config in rows:
        flops = step_flops(model, config)
        for backend in args.backends:
            ours = rate(results, config, preset, model, backend, "ours", "float32", device=first)
            reference = rate(results, config, preset, model, backend, "reference", "float32", device=first)
            achieved = flops * ours / config.batch_size / 1e9
            peak = peaks.get(backend, {}).get("gflops", float("nan"))
            against = (f"{reference:.1f} | {ours / reference:.2f}" if reference == reference else "— | —")  # not NaN
            lines.append(f"| {preset} | {model} | {backend} | {ours:.1f} | {against} | "
                         f"{flops / 1e9:.2f} | {achieved:.1f} | {100 * achieved / peak:.0f} |")
    variants = [(backend, variant) for backend in args.backends for variant in VARIANTS[backend][2:]
                if args.variants is None or variant in args.variants]
    if variants:
        lines += ["", "Variants, each as images/s against ours of the same run (float32; > 1 is faster):", "",
                  "| variant | " + " | ".join(f"{preset} {TITLES[model]}".strip() for preset, model, _ in rows)
                  + " |",
                  "|---|" + "---:|" * len(rows)]
        for backend, variant in variants:
            ratios = []
            for preset, model, config in rows:
                result = results.get((preset, model, backend, variant, "float32", first), {})
                ours = rate(results, config, preset, model, backend, "ours", "float32", device=first)
                other = rate(results, config, preset, model, backend, variant, "float32", device=first)
                ratios.append(f"{other / ours:.2f}" if "median_step" in result else "fails" if result else "—")
            lines.append(f"| {backend} {variant} | " + " | ".join(ratios) + " |")
    if len(args.backends) > 1 and extra:
        lines += ["", "The fastest backend per model, images/s of ours (and the ratio to the fastest):", "",
                  fastest_table(args, results, rows)]
    if len(args.devices) > 1:
        lines += ["", device_table(args, results, rows)]
    errors = [f"- {' '.join(map(str, name))}: {result['error']}" for name, result in results.items()
              if "error" in result]
    errors += [f"- {backend} peak: {peak['error']}" for backend, peak in peaks.items() if "error" in peak]
    errors = [textwrap.fill(error, width=120, subsequent_indent="  ") for error in errors]
    if errors:
        lines += ["", "Failures:", "", *errors]
    return "\n".join(lines)


def fastest_table(args: argparse.Namespace, results: dict, rows: list) -> str:
    """Per preset, model and precision, ours of every backend of the run (on the first device) as images/s and as
    a ratio to the fastest of the row."""
    lines = ["| preset | model | precision | " + " | ".join(LABELS[b] for b in args.backends) + " | fastest |",
             "|---|---|---|" + "---:|" * len(args.backends) + "---|"]
    for preset, model, config in rows:
        for precision in args.precisions:
            rates = {b: rate(results, config, preset, model, b, "ours", precision, device=args.devices[0])
                     for b in args.backends}
            rates = {b: value for b, value in rates.items() if value == value}  # not NaN: the cell ran
            best = max(rates, key=rates.get) if rates else None
            shown = [f"{rates[b]:.1f} ({rates[b] / rates[best]:.2f})" if b in rates else "—" for b in args.backends]
            lines.append(f"| {preset} | {model} | {precision} | " + " | ".join(shown)
                         + f" | {LABELS[best] if best else '—'} |")
    return "\n".join(lines)


def device_table(args: argparse.Namespace, results: dict, rows: list) -> str:
    """Images/s of every ours cell on each device, and each device against the first (the same machine's)."""
    names = {}
    for name, result in results.items():
        names.setdefault(name[-1], set()).add(result.get("device", name[-1]))
    devices = [f"{device} ({' / '.join(sorted(names.get(device, {device})))})" for device in args.devices]
    lines = ["Each device against the first, images/s of ours: " + "; ".join(devices) + ".", "",
             "| preset | model | backend | precision | " + " | ".join(f"{d} img/s" for d in args.devices)
             + "".join(f" | {d} ÷ {args.devices[0]}" for d in args.devices[1:]) + " |",
             "|---|---|---|---|" + "---:|" * (2 * len(args.devices) - 1)]
    for preset, model, config in rows:
        for backend in args.backends:
            for precision in args.precisions:
                rates = [rate(results, config, preset, model, backend, "ours", precision, device=device)
                         for device in args.devices]
                lines.append(f"| {preset} | {model} | {backend} | {precision} | "
                             + " | ".join(f"{value:.1f}" for value in rates)
                             + "".join(f" | {value / rates[0]:.2f}" for value in rates[1:]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
