"""Train-step throughput of our trainers against plain reference loops, GFLOP/s against the matmul peak, and the
accelerations each framework offers: every model, torch and Keras on each of its three backends, the book (64x64)
and digits (32x32) presets, and the published models' presets (pytorch-examples, pytorch-gan-mlp, face32, svhn-tf1,
celeba-keras).

Usage: python benchmarks/throughput.py [--models ...] [--presets book digits face32 ...]
                                       [--backends torch keras keras-jax keras-torch]
                                       [--variants ...] [--steps N] [--warmup 2] [--max-batch 128]
Backends: torch (torch_impl), keras (keras_impl on TensorFlow), keras-jax and keras-torch (keras_impl on Keras's
JAX and PyTorch backends: KERAS_BACKEND is set in the cell's process).
Cells (each in its own process, so thread settings, compile caches and thread pools never mix):
- ours: torch `trainer.train_step(batch)`; Keras `trainer.fit` on a repeated batch: a tf.data batch on TensorFlow
  (a tf.function), a repeated numpy batch on JAX (fit jit-compiles the stateless step with XLA, Keras's default
  there) and on PyTorch (eager, Keras's default there).
- reference: the same networks in a plain loop written here: for torch the pytorch/examples DCGAN loop
  (`zero_grad`, `loss.backward()`, `optimizer.step()`; WGAN-GP/CGAN with the usual `autograd.grad(create_graph=True)`
  penalty), for Keras a keras.io-style `keras.Model` whose `train_step` uses GradientTapes (its DCGAN and WGAN-GP
  examples). ours/reference >= 1 means our trainers cost nothing over the textbook loop.
- accelerations, each as a ratio against `ours` of the same run: torch `torch.compile` (both DCGAN networks; of
  WGAN-GP and CGAN the generator only: compiled graphs cannot be differentiated twice, as the critic's gradient
  penalty needs), channels-last memory format, 1 thread instead of the default; Keras on TensorFlow
  `jit_compile=True` (XLA), 1 intra-op thread. The Keras JAX and PyTorch backends run `ours` only (the reference
  loop is TensorFlow's GradientTape code).
GFLOP per step is counted from the layer shapes (`step_flops`; the published networks' by forward hooks on their
torch layers, `published_flops`): 2 x multiply-adds of every conv, convT and Linear; a pass
whose weights are differentiated counts 3 x its forward (forward, input and weight gradients), one differentiated
only to reach the generator 2 x, one without gradient 1 x, and the gradient penalty 6 x (forward, input gradient
kept as a graph, and the double backward through both). Activations, BatchNorm and Adam are left out.
The peak is a 2048x2048 float32 matmul in each framework with its default threads (keras-jax: JAX's, keras-torch:
torch's). Batches are random, fixed, in
[-1, 1]: compute only. The preset's batch size is kept up to --max-batch (WGAN-GP's book batch of 512 runs at 128).
Images/s are batch size / median step time: on a shared machine one slow step (another process, a page fault)
moves the mean of a few steps by tens of per cent, the median hardly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from specs.models import PRESETS as MODEL_PRESETS
from specs.models import get_config

MODELS, BACKENDS = ("dcgan", "wgan_gp", "cgan", "published"), ("torch", "keras", "keras-jax", "keras-torch")
PRESETS = ("book", "digits", *MODEL_PRESETS["published"])
VARIANTS = {"torch": ("ours", "reference", "compile", "channels_last", "threads=1"),
            "keras": ("ours", "reference", "xla", "threads=1"), "keras-jax": ("ours",), "keras-torch": ("ours",)}
KERAS_BACKENDS = {"keras": "tensorflow", "keras-jax": "jax", "keras-torch": "torch"}  # KERAS_BACKEND of each
TARGET_GFLOP = 150  # default timed steps: about this much work per cell (a few seconds on 2 cores)

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


def torch_cell(model: str, config, variant: str, steps: int, warmup: int) -> dict:
    import torch

    from torch_impl.trainers import build_trainer

    if variant == "threads=1":
        torch.set_num_threads(1)
    torch.manual_seed(0)
    batch = example_batch(config, channels_first=True)
    batch = tuple(map(torch.from_numpy, batch)) if isinstance(batch, tuple) else torch.from_numpy(batch)
    if variant == "reference":
        step = torch_reference(model, config)
    else:
        trainer = build_trainer(model, config, seed=0)
        trainer.train()
        if variant == "compile":  # not a critic with a penalty: compiled graphs have no double backward
            for name in ("generator", "discriminator") if model in ("dcgan", "published") else ("generator",):
                setattr(trainer, name, torch.compile(getattr(trainer, name)))
        if variant == "channels_last":
            trainer.to(memory_format=torch.channels_last)
            images = batch[0] if isinstance(batch, tuple) else batch
            images = images.contiguous(memory_format=torch.channels_last)
            batch = (images, batch[1]) if isinstance(batch, tuple) else images
        step = trainer.train_step
    for _ in range(warmup):
        step(batch)
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step(batch)
        seconds.append(time.perf_counter() - start)
    return {"seconds": sum(seconds), "median_step": statistics.median(seconds), "threads": torch.get_num_threads()}


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


def keras_cell(model: str, config, variant: str, steps: int, warmup: int) -> dict:
    import keras

    from keras_impl.trainers import build_trainer

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

    if variant == "threads=1":
        tf.config.threading.set_intra_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    if variant == "reference":
        trainer = keras_reference(model, config)
        trainer.compile()
    else:
        trainer = build_trainer(model, config, seed=0)
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
    start = time.perf_counter()
    trainer.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[clock], shuffle=False)
    seconds = time.perf_counter() - start
    median = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
    intra = (tf.config.threading.get_intra_op_parallelism_threads() or "auto") if backend == "tensorflow" else "auto"
    return {"seconds": seconds, "median_step": median, "threads": intra, "jit_compile": trainer.jit_compile}


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
        return run(spec["model"], config, spec["variant"], spec["steps"], spec["warmup"])
    except Exception as error:  # a variant the framework cannot run here (e.g. compile with a double backward)
        return {"error": f"{type(error).__name__}: {str(error).strip().splitlines()[0][:150] if str(error) else ''}"}


def run_child(spec: dict) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    if spec["backend"] in KERAS_BACKENDS:
        env["KERAS_BACKEND"] = KERAS_BACKENDS[spec["backend"]]
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--cell", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": f"the process failed (exit status {done.returncode}): {done.stderr.strip()[-200:]}"}
    return json.loads(lines[-1])


def default_steps(model: str, config) -> int:
    return max(2, min(50, round(TARGET_GFLOP * 1e9 / step_flops(model, config))))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--presets", nargs="+", choices=PRESETS, default=list(PRESETS),
                        help="each model runs the presets it has (book, digits; the published model's own)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--variants", nargs="+", default=None, help="subset of: " + ", ".join(
        dict.fromkeys(VARIANTS["torch"] + VARIANTS["keras"])) + " (default all; ours is always run)")
    parser.add_argument("--json", default=None, help="also write every cell's result to this JSON file")
    parser.add_argument("--steps", type=int, default=None, help=f"timed steps (default: ~{TARGET_GFLOP} GFLOP)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation happens there)")
    parser.add_argument("--max-batch", type=int, default=128, help="cap on the preset's batch size (default 128)")
    parser.add_argument("--cell", default=None, help=argparse.SUPPRESS)  # set in the child processes
    args = parser.parse_args(argv)
    known = set(VARIANTS["torch"] + VARIANTS["keras"])
    if args.variants is not None and not set(args.variants) <= known:
        parser.error(f"unknown variant(s) {sorted(set(args.variants) - known)}; known: {sorted(known)}")
    if (args.steps is not None and args.steps < 1) or args.warmup < 0 or args.max_batch < 1:
        parser.error("--steps and --max-batch must be at least 1, --warmup at least 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cell:
        return print(json.dumps(cell(json.loads(args.cell))), flush=True)
    load = os.getloadavg()[0]
    peaks = {backend: run_child({"backend": backend, "variant": "peak"}) for backend in args.backends}
    rows = []
    for preset in args.presets:
        for model in [model for model in args.models if preset in MODEL_PRESETS[model]]:
            config = config_of(model, preset, args.max_batch)
            steps = args.steps or default_steps(model, config)
            flops = step_flops(model, config)
            for backend in args.backends:
                variants = [v for v in VARIANTS[backend] if v == "ours" or args.variants is None or v in args.variants]
                base = {"backend": backend, "model": model, "preset": preset, "max_batch": args.max_batch,
                        "steps": steps, "warmup": args.warmup}
                results = {variant: run_child(base | {"variant": variant}) for variant in variants}
                print(f"{preset} {model} {backend}: {results}", file=sys.stderr, flush=True)
                rows.append((preset, model, config, backend, steps, flops, results))
    print(f"command: python benchmarks/throughput.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"1-minute load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    report(rows, peaks)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"peaks": peaks, "rows": [[preset, model, backend, steps, flops, results] for preset, model, _,
                                                backend, steps, flops, results in rows]}, handle, indent=1)


def report(rows: list[tuple], peaks: dict) -> None:
    """The tables: one row per (preset, model, backend), then the accelerations, then what failed."""
    print("matmul peak (2048^2 float32): "
          + ", ".join(f"{b} {p.get('gflops', float('nan')):.1f} GFLOP/s" for b, p in peaks.items()) + "\n")
    print("| preset | model | batch | backend | steps | ours img/s | reference img/s | ours / reference "
          "| GFLOP per step | GFLOP/s | % of peak |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    extras, errors = [], []
    for preset, model, config, backend, steps, flops, results in rows:
        rate = {v: config.batch_size / r["median_step"] for v, r in results.items() if "median_step" in r}
        errors += [f"{preset} {model} {backend} {v}: {r['error']}" for v, r in results.items() if "error" in r]
        ours, reference = rate.get("ours", float("nan")), rate.get("reference", float("nan"))
        achieved = flops * ours / config.batch_size / 1e9
        peak = peaks[backend].get("gflops", float("nan"))
        print(f"| {preset} | {model} | {config.batch_size} | {backend} | {steps} | {ours:.1f} | {reference:.1f} | "
              f"{ours / reference:.2f} | {flops / 1e9:.2f} | {achieved:.1f} | {100 * achieved / peak:.0f} |")
        for variant in [v for v in results if v not in ("ours", "reference")]:
            ratio = f"{rate[variant] / ours:.2f}" if variant in rate else "fails"
            extras.append(f"| {preset} | {model} | {backend} | {variant} | {ratio} |")
    if extras:
        print("\naccelerations: images/s against ours of the same run (> 1 is faster)\n")
        print("| preset | model | backend | variant | ratio |\n|---|---|---|---|---:|\n" + "\n".join(extras))
    fastest = fastest_table(rows)
    if fastest:
        print("\nfastest backend per model (ours, images/s; ratio to the fastest)\n\n" + fastest)
    if errors:
        print("\nfailures:\n" + "\n".join(f"- {error}" for error in errors))
    for backend, peak in peaks.items():
        if "error" in peak:
            print(f"- {backend} peak: {peak['error']}")

def fastest_table(rows: list[tuple]) -> str:
    """Per preset and model, `ours` of every backend of the run as images/s and as a ratio to the fastest."""
    cells: dict[tuple, dict[str, float]] = {}
    for preset, model, config, backend, _, _, results in rows:
        if "median_step" in results.get("ours", {}):
            cells.setdefault((preset, model), {})[backend] = config.batch_size / results["ours"]["median_step"]
    backends = list(dict.fromkeys(backend for *_, backend, _, _, _ in rows))
    if len(backends) < 2 or not cells:
        return ""
    lines = [f"| preset | model | {' | '.join(backends)} | fastest |", "|---|---|" + "---:|" * len(backends) + "---|"]
    for (preset, model), rates in cells.items():
        best = max(rates, key=rates.get)
        shown = [f"{rates[b]:.1f} ({rates[b] / rates[best]:.2f})" if b in rates else "—" for b in backends]
        lines.append(f"| {preset} | {model} | {' | '.join(shown)} | {best} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
