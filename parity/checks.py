"""Named checks that torch_impl and keras_impl compute the same thing, each with a measured diff and a tolerance.

A check builds a fresh pair of trainers from one configuration with the constructors the command lines use
(torch_impl/trainers.py, keras_impl/trainers.py: the trainers users train, nothing patched), copies the torch
weights into Keras (parity/convert.py), feeds both the same inputs and the same injected randomness, and compares:
  shapes      every layer's output shape (NCHW against NHWC), exactly
  settings    every layer's, optimiser's and trainer's hyperparameters, read off the built objects (parity/settings.py)
  initialization   two fresh trainers, nothing copied: every tensor's distribution (parity/distributions.py)
  forward     every layer's activations, in inference mode and in training mode (BatchNorm on batch statistics)
  dropout     every dropout layer in training mode: its rate and the scale of what it keeps (distributions.py)
  losses      both losses from one training-mode forward pass with injected z and label noise
  gradients   every parameter's gradient of its network's loss (a gradient missing on one side fails); beyond
              its tolerance, less the other branch of ReLU or LeakyReLU inputs within round-off of 0 where whole
              branches explain the difference (parity/kinks.py)
  gradient_penalty   (WGAN-GP, CGAN) the penalty's value and its gradient in every critic parameter
  trajectory  every weight and running statistic after K full train steps (dropout 0); all must stay finite
  randomness  what each trainer draws itself when nothing is injected: same shapes, same distributions (moments
              and quantiles of a large draw); the other checks inject randomness, so this one checks the samplers
  batch_independence   (WGAN-GP, CGAN) a sample's critic score in training mode does not depend on the rest of its
              batch, in each framework: the per-sample gradient penalty assumes it (no BatchNorm in a critic)
  data        the batches each backend's loader gives the trainer, on the digits and on a folder with classes,
              against each other and against the shared cache (parity/data.py)
Comparisons and results: parity/results.py (scaled differences; NaN or inf positions must match).
What the harness changes for comparability, and only that: training-mode checks run with dropout 0 (dropout masks
can never agree across frameworks; the dropout check looks at the rate instead), and z, label noise and alpha are
injected (the two frameworks' generators never draw the same numbers; the randomness check compares the draws).
torch stores the unbiased batch variance in running_var and Keras the biased one: the trajectory check maps the
Keras value through the exact relation of the two update rules. A pair that does not convert (a tensor on one side
only, a shape that differs) fails each check that needs the copy, with the converter's message; the checks that
need no copy (settings, initialization, dropout, randomness, data) still run.
The checks run on the Keras backend of the process (KERAS_BACKEND: TensorFlow, JAX or PyTorch; `gan-parity check
--keras-backend` starts a process per backend): the Keras side takes its gradients with keras_impl/gradients.py, the
code its trainers train with. JAX computes in float64 only with x64 enabled, which `keras_dtype` switches on for the
float64 checks and off again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import torch
from keras.src.backend.common import dtypes as keras_dtypes

import keras_impl.cgan
import keras_impl.dcgan
import keras_impl.published
import keras_impl.wgan_gp
import torch_impl.cgan
import torch_impl.dcgan
import torch_impl.published
import torch_impl.wgan_gp
from keras_impl import devices as keras_devices
from keras_impl.gradients import BACKEND as KERAS_BACKEND
from keras_impl.gradients import gradients
from keras_impl.trainers import build_trainer as build_keras_trainer
from parity import convert, kinks
from parity.data import check_data
from parity.distributions import (
    DROPOUT_TOLERANCE,
    NOISE_UNITS,
    RANDOMNESS_TOLERANCE,
    check_dropout,
    check_initialization,
    check_randomness,
)
from parity.results import TORCH_DEVICE, CheckResult, compare, failed, nchw_to_nhwc, to_numpy, to_torch
from parity.settings import TOLERANCE as SETTINGS_TOLERANCE
from parity.settings import check_settings
from specs.models import ARCHITECTURES
from torch_impl import devices as torch_devices
from torch_impl.trainers import build_trainer as build_torch_trainer

CHECKS = ("shapes", "settings", "initialization", "forward", "dropout", "losses", "gradients", "gradient_penalty",
          "trajectory", "randomness", "batch_independence", "data")
TRAINING_CHECKS = ("losses", "gradients", "gradient_penalty", "trajectory", "batch_independence")  # dropout 0
CRITIC_ONLY = ("gradient_penalty", "batch_independence")
NEEDS_COPY = ("shapes", "forward", "losses", "gradients", "gradient_penalty", "trajectory", "batch_independence")
TRAJECTORY_STEPS = 5  # full train steps of the trajectory check (gan-parity check --steps)

# Tolerances on the max scaled diff. float64 proves the mathematics equal (round-off only). float32 shows what users
# see: forward and losses within 1e-5. float32 gradients differ by round-off (3.3e-6 at most, measured) and, where
# a ReLU or LeakyReLU input lies within round-off of 0, by whole branches (the book discriminator's conv2 gradient:
# 1.35e-3 from float64's in both frameworks, 2.0e-6 less its two branches); their 5e-3 bound was measured before the
# gradients check allowed for branches (parity/kinks.py). Adam turns a relative difference in a gradient into a
# difference in a step of size up to the learning rate, so trajectories are reported against a looser, measured
# bound: the face generator's discriminator normalises a 1x1 map (at batch 8, 8 values per channel), and after 5
# steps in float32 its last BatchNorm's running mean is 0.020 (torch) and 0.032 (Keras) away from the float64
# trajectory from the same start, 0.035 from each other; the book's models stay within 5e-3.
# settings: relative differences of hyperparameters; initialization: units of sampling noise; dropout: fractions;
# randomness: statistics of large draws (parity/distributions.py); data: the bytes must be equal.
OWN_SCALES = {"settings": SETTINGS_TOLERANCE, "initialization": NOISE_UNITS, "dropout": DROPOUT_TOLERANCE,
               "randomness": RANDOMNESS_TOLERANCE, "data": 0.0}
TOLERANCES = {
    "float64": {name: 1e-10 for name in CHECKS} | {"shapes": 0.0} | OWN_SCALES,
    "float32": {"shapes": 0.0, "forward": 1e-5, "losses": 1e-5, "gradients": 5e-3, "gradient_penalty": 1e-5,
                "trajectory": 5e-2, "batch_independence": 1e-5} | OWN_SCALES,
}


@dataclass(frozen=True)
class ModelPair:
    """Where each backend defines one model, and which networks its trainer holds."""

    torch_module: object  # module with Generator, Discriminator/Critic, the trainer class and its losses
    keras_module: object
    trainer: str  # class name of the trainer in both modules
    networks: tuple[str, ...]  # trainer attributes holding the networks, generator first
    losses: tuple[str, ...]  # the loss each network minimises, as named by `gan_losses`
    randomness: Callable[[Harness], dict[str, np.ndarray]]  # injected randomness of one train step, in the
    # order the trainers' own `sample_noise(batch_size)` returns it
    checks: tuple[str, ...]  # the checks that apply
    direction: Callable[[object], str] = lambda config: "torch-to-keras"  # which way a configuration's weights
    # are copied: from the original into the port
    both_orders: bool = True  # checked in both update orders by default (a published model: in its original's)


def dcgan_randomness(h: Harness) -> dict[str, np.ndarray]:
    """z (N, latent_dim), from the model's distribution, and label noise (2, N, 1)."""
    shape = (h.batch_size, h.config.latent_dim)
    z = h.uniform(*shape, low=-1.0, high=1.0) if h.config.latent_distribution == "uniform" else h.normal(*shape)
    return {"z": z, "label_noise": h.uniform(2, h.batch_size, 1)}


def published_direction(config) -> str:
    """torch -> Keras for the torch originals, Keras -> torch for the TensorFlow and Keras ones."""
    return ARCHITECTURES[config.architecture].direction


def wgan_gp_randomness(h: Harness) -> dict[str, np.ndarray]:
    """z (critic_steps + 1, N, latent_dim) and alpha (critic_steps, N, 1, 1, 1)."""
    steps = h.config.critic_steps
    z = h.normal(steps + 1, h.batch_size, h.config.latent_dim)
    return {"z": z, "alpha": h.uniform(steps, h.batch_size, 1, 1, 1)}


MODELS = {
    "dcgan": ModelPair(
        torch_impl.dcgan, keras_impl.dcgan, "DCGAN", networks=("generator", "discriminator"),
        losses=("g_loss", "d_loss"), randomness=dcgan_randomness,
        checks=tuple(name for name in CHECKS if name not in CRITIC_ONLY),
    ),
    "wgan_gp": ModelPair(
        torch_impl.wgan_gp, keras_impl.wgan_gp, "WGANGP", networks=("generator", "critic"),
        losses=("g_loss", "c_loss"), randomness=wgan_gp_randomness, checks=CHECKS,
    ),
    "cgan": ModelPair(
        torch_impl.cgan, keras_impl.cgan, "CGAN", networks=("generator", "critic"),
        losses=("g_loss", "c_loss"), randomness=wgan_gp_randomness, checks=CHECKS,
    ),
    "published": ModelPair(
        torch_impl.published, keras_impl.published, "PublishedDCGAN", networks=("generator", "discriminator"),
        losses=("g_loss", "d_loss"), randomness=dcgan_randomness,
        checks=tuple(name for name in CHECKS if name not in CRITIC_ONLY), direction=published_direction,
        both_orders=False,
    ),
}


# ----------------------------------------------------------------------------------------------- The pair


@contextlib.contextmanager
def keras_dtype(dtype: str):
    """Build Keras layers, optimisers and their learning-rate variables in `dtype`. For float64 on JAX and PyTorch,
    two switches: JAX's x64 (without it every float64 array is made float32), and Keras's type promotion, which on
    every backend but TensorFlow turns a 64-bit result into a 32-bit one (keras.backend.result_type: float64 with
    float32 gives float32), so that BatchNormalization, which computes in result_type(inputs, "float32"), and
    `ops.tanh` would compute a float64 model in float32. On PyTorch also a third: the kernels Keras permutes to
    torch's layout are made contiguous, since torch's float64 CPU convolution (slow_conv2d; float32 goes through
    oneDNN) refuses to differentiate a permuted kernel of one output channel ("grad_weight must be contiguous")."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    if KERAS_BACKEND == "torch" and dtype == "float64":
        torch_nn = importlib.import_module("keras.src.backend.torch.nn")
        permute = torch_nn._transpose_conv_kernel
        torch_nn._transpose_conv_kernel = lambda kernel: permute(kernel).contiguous()
    promotion, promoted = keras_dtypes.BIT64_TO_BIT32_DTYPE, keras_dtypes.BIT64_TO_BIT32_DTYPE["float64"]
    x64 = KERAS_BACKEND == "jax" and importlib.import_module("jax").config.jax_enable_x64
    if KERAS_BACKEND == "jax":
        importlib.import_module("jax").config.update("jax_enable_x64", dtype == "float64")
    promotion["float64"] = "float64" if dtype == "float64" else promoted
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
        promotion["float64"] = promoted
        if KERAS_BACKEND == "jax":
            importlib.import_module("jax").config.update("jax_enable_x64", x64)
        if KERAS_BACKEND == "torch" and dtype == "float64":
            torch_nn._transpose_conv_kernel = permute


def versions() -> str:
    """What the numbers are measured with: torch, Keras, and the framework of Keras's backend."""
    framework = importlib.import_module(KERAS_BACKEND)  # loaded by Keras already
    name = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "torch"}[KERAS_BACKEND]
    return f"torch {torch.__version__}, Keras {keras.__version__} on {name} {framework.__version__}"


@dataclass
class Harness:
    """Two trainers built as the command lines build them, holding the same weights (unless `copy` is False), and
    the random inputs both are fed."""

    model: str
    config: object
    dtype: str
    batch_size: int
    seed: int
    mutate: Callable[[Harness], None] | None = None  # seeds a porting bug after the weights are copied
    copy: bool = True  # False: two fresh trainers, nothing copied (the initialization check)
    steps: int = TRAJECTORY_STEPS  # full train steps of the trajectory check
    torch_trainer: object = None
    keras_trainer: object = None
    table: list = None  # the weight table: every tensor that pairs
    problems: list = field(default_factory=list)  # what does not pair (parity/convert.py messages)

    def __post_init__(self) -> None:
        self.torch_trainer = build_torch_trainer(self.model, self.config, self.seed, TORCH_DEVICE[0])
        self.torch_trainer.to(getattr(torch, self.dtype))
        self.keras_trainer = build_keras_trainer(self.model, self.config, self.seed)
        self.table = convert.trainer_table(self.torch_trainer, self.keras_trainer, self.pair.networks, self.problems)
        if self.copy and not self.problems:  # from the original into the port
            keras_original = self.pair.direction(self.config) == "keras-to-torch"
            (convert.keras_to_torch if keras_original else convert.torch_to_keras)(self.table)
        exact_leaky_slopes(self)
        self.rng = np.random.default_rng(self.seed)
        if self.mutate is not None:
            self.mutate(self)

    @property
    def pair(self) -> ModelPair:
        return MODELS[self.model]

    def variant(self, **fields) -> Harness:
        """A fresh harness with some configuration fields replaced."""
        config = dataclasses.replace(self.config, **fields)
        return Harness(self.model, config, self.dtype, self.batch_size, self.seed, self.mutate, self.copy, self.steps)

    def networks(self):
        return [(name, getattr(self.torch_trainer, name), getattr(self.keras_trainer, name))
                for name in self.pair.networks]

    def normal(self, *shape) -> np.ndarray:
        return self.rng.standard_normal(shape).astype(self.dtype)

    def uniform(self, *shape, low=0.0, high=1.0) -> np.ndarray:
        return self.rng.uniform(low, high, shape).astype(self.dtype)

    def network_input(self, name: str) -> np.ndarray:
        """A batch for one network, in torch layout: its input vector for the generator, images otherwise."""
        if name == "generator":
            return self.normal(self.batch_size, self.config.generator_input_dim)
        return self.images(self.config.critic_input_channels)

    def images(self, channels: int) -> np.ndarray:
        size = self.config.image_size
        return self.uniform(self.batch_size, channels, size, size, low=-1.0, high=1.0)

    def real_batch(self):
        """What the trainer is fed: images in [-1, 1] (torch layout), with one-hot labels if conditional."""
        images = self.images(self.config.channels)
        if not self.config.conditional:
            return images
        labels = self.rng.integers(0, self.config.num_classes, self.batch_size)
        return images, np.eye(self.config.num_classes, dtype=self.dtype)[labels]

    def step_inputs(self) -> dict[str, np.ndarray]:
        """Injected randomness of one train step, in torch layout."""
        return self.pair.randomness(self)


def exact_leaky_slopes(h: Harness) -> None:
    """Off TensorFlow, torch's LeakyReLU slopes become the Python floats Keras multiplies by. torch_impl gives torch
    the float32 value of a slope (specs.models.torch_leaky_slope) because TensorFlow's LeakyRelu kernel holds it in
    float32 (0.2 is 0.20000000298); Keras's JAX and torch backends multiply by the Python float itself, 1.5e-8
    relative away, which float32 cannot tell apart and float64 can. Only a slope that rounds to torch's is taken:
    a slope that differs (a seeded bug) stays as it is."""
    if KERAS_BACKEND == "tensorflow":
        return
    for _, torch_net, keras_net in h.networks():
        keras_layers = {layer.name: layer for layer in keras_net.layers}
        for name, module in torch_net.named_children():
            slope = getattr(keras_layers.get(name), "negative_slope", None)
            if isinstance(module, torch.nn.LeakyReLU) and slope is not None and \
                    float(np.float32(slope)) == module.negative_slope:
                module.negative_slope = float(slope)


def both(data):
    """The same values as a torch tensor (torch layout) and a Keras backend tensor (Keras layout); tuples
    element-wise."""
    if isinstance(data, tuple):
        pairs = [both(item) for item in data]
        return tuple(pair[0] for pair in pairs), tuple(pair[1] for pair in pairs)
    keras_value = np.ascontiguousarray(nchw_to_nhwc(data))
    return to_torch(data), keras.ops.convert_to_tensor(keras_value, keras_value.dtype)


def _is_crop(layer) -> bool:
    """A layer that crops (torch: a ZeroPad2d of negative padding; Keras: Cropping2D), which belongs with the layer
    before it; any other layer on one side only (an explicit padding) belongs with the layer after it."""
    if isinstance(layer, (torch.nn.ZeroPad1d, torch.nn.ZeroPad2d)):
        return all(side <= 0 for side in layer.padding) and any(side < 0 for side in layer.padding)
    return isinstance(layer, (keras.layers.Cropping1D, keras.layers.Cropping2D))


def _grouped(items: list[tuple[str, object]], shared: list[str]) -> dict[str, list]:
    """Each layer both sides name, with the one-side-only layers that run with it (crops after, the rest before)."""
    groups: dict[str, list] = {}
    pending: list = []
    last = None
    for name, layer in items:
        if name in shared:
            groups[name], pending, last = pending + [layer], [], name
        elif _is_crop(layer) and last is not None:
            groups[last].append(layer)
        else:
            pending.append(layer)
    if pending and last is not None:
        groups[last] += pending
    return groups


def layer_outputs(torch_net, keras_net, inputs: np.ndarray, training: bool):
    """Run both networks layer by layer; yield (layer name, torch output, Keras output) for each layer both name.
    A layer of one side only (the explicit padding of a port of TensorFlow's "same", the crop of a port of torch's
    transposed-conv padding) runs on its side with its neighbour: a crop with the layer before it, a padding with
    the layer after it. Flat features from a Flatten, or going into a Reshape, are in torch's (C, H, W) order and
    Keras's (H, W, C): the torch output is put in Keras's order (parity/convert.py flat_feature_order)."""
    torch_net.train(training)
    torch_x, keras_x = both(inputs)
    torch_items = list(torch_net.named_children())
    keras_items = [(layer.name, layer) for layer in keras_net.layers]
    keras_names = [name for name, _ in keras_items]
    shared = [name for name, _ in torch_items if name in keras_names]
    if shared != [name for name in keras_names if name in shared]:
        raise ValueError(f"the layers both networks name come in another order: torch {shared}, Keras {keras_names}")
    torch_groups, keras_groups = _grouped(torch_items, shared), _grouped(keras_items, shared)
    for name in shared:
        for module in torch_groups[name]:
            torch_x = module(torch_x)
        for layer in keras_groups[name]:
            keras_x = layer(keras_x, training=training)
        order = convert.flat_feature_order(keras_net, keras_names.index(keras_groups[name][-1].name))
        yield name, torch_x if order is None else torch_x[:, torch.from_numpy(order)], keras_x


# ----------------------------------------------------------------------------------------------- The checks


def check_shapes(h: Harness) -> CheckResult:
    rows = []
    for name, torch_net, keras_net in h.networks():
        for layer, torch_y, keras_y in layer_outputs(torch_net, keras_net, h.network_input(name), training=False):
            expected = nchw_to_nhwc(np.empty(tuple(torch_y.shape), np.int8)).shape
            rows.append((f"{name}.{layer}", np.array(expected), np.array(tuple(keras_y.shape))))
    return compare("shapes", TOLERANCES[h.dtype]["shapes"], rows)


def check_forward(h: Harness) -> CheckResult:
    rows = []
    for training, harness in ((False, h), (True, h.variant(dropout=0.0))):
        mode = "train" if training else "inference"
        for name, torch_net, keras_net in harness.networks():
            for layer, torch_y, keras_y in layer_outputs(torch_net, keras_net, harness.network_input(name), training):
                rows.append((f"{name}.{mode}.{layer}", nchw_to_nhwc(to_numpy(torch_y)), to_numpy(keras_y)))
    return compare("forward", TOLERANCES[h.dtype]["forward"], rows)


def _torch_losses(h: Harness, real: np.ndarray, step: dict):
    h.torch_trainer.train()
    return h.torch_trainer.gan_losses(both(real)[0], **{key: both(value)[0] for key, value in step.items()})


def _keras_losses(h: Harness, real: np.ndarray, step: dict):
    return h.keras_trainer.gan_losses(both(real)[1], **{key: both(value)[1] for key, value in step.items()})


def check_losses(h: Harness) -> CheckResult:
    real, step = h.real_batch(), h.step_inputs()
    torch_out, keras_out = _torch_losses(h, real, step), _keras_losses(h, real, step)
    rows = [(key, nchw_to_nhwc(to_numpy(torch_out[key])), to_numpy(keras_out[key])) for key in torch_out]
    return compare("losses", TOLERANCES[h.dtype]["losses"], rows)


def check_gradients(h: Harness) -> CheckResult:
    real, step = h.real_batch(), h.step_inputs()
    pair = h.pair
    torch_out = _torch_losses(h, real, step)
    ports = [[port for port in h.table if port.trainable and port.name.startswith(f"{network}.")]
             for network in pair.networks]

    def keras_losses():  # one forward pass: each network's loss, differentiated in its own weights
        out = _keras_losses(h, real, step)
        return [out[loss] for loss in pair.losses], None

    _, _, keras_grads = gradients(keras_losses, [[port.keras_variable for port in group] for group in ports])
    rows = []
    for group, loss, keras_group in zip(ports, pair.losses, keras_grads):
        torch_grads = torch.autograd.grad(torch_out[loss], [port.torch_tensor for port in group],
                                          retain_graph=True, allow_unused=True)
        rows += gradient_rows(group, torch_grads, keras_group)
    result = compare("gradients", TOLERANCES[h.dtype]["gradients"], rows, finite=True)
    if result.passed or not all(np.all(np.isfinite(value)) for _, *values in rows for value in values):
        return result
    groups = [[(port.name, port.torch_tensor) for port in group] for group in ports]  # activations at a kink
    candidates = kinks.branches(h.torch_trainer, pair.networks, pair.losses, groups, real, step,
                                TOLERANCES[h.dtype]["forward"])
    passes = lambda moved: compare("gradients", result.tolerance, moved).passed  # noqa: E731
    moved, used = kinks.explained(rows, candidates, passes)
    if not used:
        return result
    rest = compare("gradients", result.tolerance, moved, finite=True)
    count = f"{len(used)} activation{'s' if len(used) > 1 else ''} at a kink"
    return dataclasses.replace(rest, worst=f"{rest.worst} ({count} allowed for: {', '.join(b.where for b in used)}; "
                                             f"{result.max_scaled_diff:.3g} in {result.worst} without)")


def gradient_rows(ports, torch_grads, keras_grads, label: str = "{}") -> list:
    """Rows comparing gradients in torch layout; a gradient that exists on one side only is a failing row, unless
    it is zero everywhere there: what a framework leaves out as not reaching the loss, another may give as zeros
    (JAX has no unused inputs; a penalty's written-out input gradient, torch_impl/loop.py, never reaches a bias that
    autograd's and TensorFlow's double backward give zeros)."""
    rows = []
    for port, torch_grad, keras_grad in zip(ports, torch_grads, keras_grads):
        if (torch_grad is None) != (keras_grad is None) and not np.any(to_numpy(
                torch_grad if keras_grad is None else keras_grad)):
            continue
        if (torch_grad is None) != (keras_grad is None):
            rows.append((f"{label.format(port.name)} (missing on one side)", np.zeros(1), np.full(1, np.nan)))
        elif torch_grad is not None:
            rows.append((label.format(port.name), to_numpy(torch_grad), port.to_torch(to_numpy(keras_grad))))
    return rows


def check_gradient_penalty(h: Harness) -> CheckResult:
    """The penalty at x^ = real + alpha (fake - real) with injected alpha, and its gradient in every critic weight."""
    critic = h.pair.networks[1]
    data, fake, alpha = h.real_batch(), h.images(h.config.channels), h.uniform(h.batch_size, 1, 1, 1)
    real, labels = data if isinstance(data, tuple) else (data, None)
    torch_inputs, keras_inputs = both((real, fake, alpha) + ((labels,) if labels is not None else ()))
    ports = [port for port in h.table if port.trainable and port.name.startswith(f"{critic}.")]
    h.torch_trainer.train()
    torch_gp = h.torch_trainer.penalty(*torch_inputs)
    torch_grads = [None] * len(ports)  # a penalty built without create_graph has no gradient at all
    if torch_gp.requires_grad:
        torch_grads = torch.autograd.grad(torch_gp, [port.torch_tensor for port in ports], allow_unused=True)
    keras_penalty = lambda: ([h.keras_trainer.penalty(*keras_inputs)], None)  # noqa: E731
    (keras_gp,), _, (keras_grads,) = gradients(keras_penalty, [[port.keras_variable for port in ports]])
    rows = [("penalty", to_numpy(torch_gp), to_numpy(keras_gp))]
    rows += gradient_rows(ports, torch_grads, keras_grads, "d penalty / d {}")
    return compare("gradient_penalty", TOLERANCES[h.dtype]["gradient_penalty"], rows)


def train_both(h: Harness, real, step: dict) -> None:
    """One full train step of each trainer on the same batch (torch layout) with the same injected randomness."""
    h.torch_trainer.train()
    h.torch_trainer.train_step(both(real)[0], **{key: both(value)[0] for key, value in step.items()})
    h.keras_trainer.train_step(both(real)[1], **{key: both(value)[1] for key, value in step.items()})


class WeightRows:
    """(name, torch value, Keras value in torch layout) of every weight and running statistic, the Keras running
    variance mapped onto torch's convention (`_unbiased_running_var`) from the state before the first step."""

    def __init__(self, h: Harness):
        self.h = h
        self.initial = {port.name: to_numpy(port.torch_tensor).copy() for port in h.table}
        self.counts = _batch_norm_counts(h)

    def __call__(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        rows = []
        for port in self.h.table:
            expected, actual = to_numpy(port.torch_tensor), port.to_torch(to_numpy(port.keras_variable))
            if port.name.endswith("running_var"):
                actual = _unbiased_running_var(self.h, port, actual, self.initial[port.name], self.counts[port.name])
            rows.append((port.name, expected, actual))
        return rows


def check_trajectory(h: Harness) -> CheckResult:
    weight_rows = WeightRows(h)
    for _ in range(h.steps):
        train_both(h, h.real_batch(), h.step_inputs())
    return compare("trajectory", TOLERANCES[h.dtype]["trajectory"], weight_rows(), finite=True)


def check_batch_independence(h: Harness) -> CheckResult:
    """Scores of the first half of a batch, in training mode, beside two different second halves: equal in each
    framework. Rows compare a framework with itself, so the check also fails when both sides share the defect."""
    half = h.batch_size // 2
    data, other = (item if isinstance(item, tuple) else (item,) for item in (h.real_batch(), h.real_batch()))
    mixed = tuple(np.concatenate([a[:half], b[half:]]) for a, b in zip(data, other))
    h.torch_trainer.train()
    torch_scores, keras_scores = [], []
    for batch in (data, mixed):
        torch_inputs, keras_inputs = both(batch)
        torch_scores.append(to_numpy(h.torch_trainer.score(*torch_inputs))[:half])
        keras_scores.append(to_numpy(h.keras_trainer.score(*keras_inputs, training=True))[:half])
    rows = [(f"{framework}: first half beside another second half", *scores)
            for framework, scores in (("torch", torch_scores), ("keras", keras_scores))]
    return compare("batch_independence", TOLERANCES[h.dtype]["batch_independence"], rows, finite=True)


def _batch_norm_counts(h: Harness) -> dict[str, int]:
    """Values per channel (N * H * W) that each BatchNorm layer normalises over, measured with a forward pass."""
    counts: dict[str, int] = {}
    hooks = []
    for port in h.table:
        if port.name.endswith("running_var"):
            network, layer = port.name.split(".")[:2]
            module = getattr(getattr(h.torch_trainer, network), layer)
            hooks.append(module.register_forward_pre_hook(
                lambda module, args, key=port.name: counts.__setitem__(key, args[0].numel() // args[0].shape[1])))
    with torch.no_grad():
        h.torch_trainer.eval()
        for name, torch_net, _ in h.networks():
            torch_net(both(h.network_input(name))[0])
    for hook in hooks:
        hook.remove()
    return counts


def _unbiased_running_var(h: Harness, port, keras_var, initial, count: int) -> np.ndarray:
    """Map Keras's moving variance onto torch's running variance after the same K updates.

    Both rules are r_K = (1 - m)^K r_0 + sum_k m (1 - m)^(K - k) v_k; torch's v_k is the unbiased batch variance,
    n / (n - 1) times Keras's biased one. Hence r_torch = d + n / (n - 1) (r_keras - d) with d = (1 - m)^K r_0.
    """
    network, layer = port.name.split(".")[:2]
    module = getattr(getattr(h.torch_trainer, network), layer)
    updates = int(module.num_batches_tracked)
    decay = (1 - module.momentum) ** updates * initial
    return decay + count / (count - 1) * (keras_var - decay)


CHECK_FUNCTIONS = {
    "shapes": check_shapes,
    "settings": check_settings,
    "initialization": check_initialization,
    "forward": check_forward,
    "dropout": check_dropout,
    "losses": check_losses,
    "gradients": check_gradients,
    "gradient_penalty": check_gradient_penalty,
    "trajectory": check_trajectory,
    "randomness": check_randomness,
    "batch_independence": check_batch_independence,
    "data": check_data,
}


def use_device(word: str) -> None:
    """Run the checks on the device a --device word names, in both frameworks: torch's trainers and inputs there,
    TensorFlow's placement as gan-keras sets it (cpu hides its GPUs). RunError when the machine lacks it."""
    TORCH_DEVICE[0] = torch_devices.select_device(word)
    keras_devices.select_device(word)


def run_checks(model: str, config, dtype: str = "float64", batch_size: int = 8, seed: int = 0,
               checks: tuple[str, ...] | None = None, mutate: Callable[[Harness], None] | None = None,
               patch: Callable[[], contextlib.AbstractContextManager] | None = None,
               steps: int = TRAJECTORY_STEPS) -> list[CheckResult]:
    """Each named check (default: all that apply to the model) on a fresh pair of trainers built from `config`;
    `mutate` may seed a bug in one side after the copy, `patch` (a context manager, active while the pair is
    built and checked) in the code one side runs; `steps`: train steps of the trajectory check."""
    torch_devices.exact_float32()  # TF32 off on both sides: on Ampere and newer GPUs float32 would lose 3 digits
    keras_devices.exact_float32()
    results = []
    for name in checks or MODELS[model].checks:
        if name not in MODELS[model].checks:
            continue
        check_config = dataclasses.replace(config, dropout=0.0) if name in TRAINING_CHECKS else config
        tolerance = TOLERANCES[dtype][name]
        with keras_dtype(dtype), (patch or contextlib.nullcontext)():
            harness = Harness(model, check_config, dtype, batch_size, seed, mutate, copy=name != "initialization",
                              steps=steps)
            if harness.problems and name in NEEDS_COPY:
                results.append(failed(name, tolerance, f"the pair does not convert: {harness.problems[0]}"))
                continue
            try:
                results.append(CHECK_FUNCTIONS[name](harness))
            except Exception as error:  # a pair that cannot even run the check fails it, and the others still run
                message = " ".join(f"{type(error).__name__}: {error}".split())[:300]
                results.append(failed(name, tolerance, f"the check raised {message}"))
    return results
