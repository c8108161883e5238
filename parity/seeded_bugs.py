"""The seeded porting bugs of the pitfall catalogue (parity/pitfalls.py): each a small function that breaks one side.

A `mutate(harness)` function changes one side of a freshly converted pair of trainers (parity/checks.py Harness)
after the weights are copied; a `patch` (a context manager) changes the code one side runs while the pair is built
and checked (a layer factory, a data pipeline); `on_model` measures one named check with and without the bug.
`probe` does the same on a small network built twice, for layers the three models do not have (Flatten -> Dense,
odd kernels).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from unittest import mock

import keras
import numpy as np
import torch
import torch.nn.functional as F
from keras import layers
from torch import nn

import keras_impl.data
import keras_impl.dcgan
import keras_impl.published
import torch_impl.data
import torch_impl.published
from parity import checks, convert
from parity.checks import CheckResult
from parity.data import check_labels_follow_image_id
from specs.datasets import Cached, read_celeba_attribute, read_image_files
from specs.models import get_config

# ------------------------------------------------------------------------------------ Seeding into the trainers


def on_model(model: str, check: str, mutate: Callable[[checks.Harness], None] | None = None, preset: str = "digits",
             patch: Callable[[], contextlib.AbstractContextManager] | None = None,
             **fields) -> Callable[[bool], CheckResult]:
    """Measure `check` in float64 on a small pair of `model` trainers, with `mutate` and `patch` applied when
    bugged."""

    def measure(bugged: bool) -> CheckResult:
        config = get_config(model, preset, **{"width": 8} | fields)
        [result] = checks.run_checks(model, config, "float64", batch_size=4, checks=(check,),
                                     mutate=mutate if bugged else None, patch=patch if bugged else None)
        return result

    return measure


def torch_modules(h: checks.Harness, network: str, kind: type) -> list[tuple[str, nn.Module]]:
    return [(name, module) for name, module in getattr(h.torch_trainer, network).named_children()
            if isinstance(module, kind)]


def keras_layers(h: checks.Harness, network: str, kind: type) -> list:
    return [layer for layer in getattr(h.keras_trainer, network).layers if type(layer) is kind]


def literal_torch_momentum(h):
    for _, module in torch_modules(h, "generator", nn.BatchNorm2d) + torch_modules(h, "discriminator", nn.BatchNorm2d):
        module.momentum = 0.9


def torch_default_bn_epsilon(h):
    for _, module in torch_modules(h, "generator", nn.BatchNorm2d) + torch_modules(h, "discriminator", nn.BatchNorm2d):
        module.eps = 1e-5


def keras_default_slope(h):
    for layer in keras_layers(h, "generator", layers.LeakyReLU) + keras_layers(h, "discriminator", layers.LeakyReLU):
        layer.negative_slope = 0.3


def relu_in_torch_generator(h):
    for name, _ in torch_modules(h, "generator", nn.LeakyReLU):
        setattr(h.torch_trainer.generator, name, nn.ReLU())


def swapped_conv_kernel(h):
    for layer in keras_layers(h, "discriminator", layers.Conv2D):
        layer.kernel.assign(np.transpose(keras.ops.convert_to_numpy(layer.kernel), (1, 0, 2, 3)))


def flipped_transposed_kernel(h):
    for layer in keras_layers(h, "generator", layers.Conv2DTranspose):
        layer.kernel.assign(keras.ops.convert_to_numpy(layer.kernel)[::-1, ::-1])


def flipped_label_noise(h):
    h.torch_trainer.config = dataclasses.replace(h.config, book_label_noise=not h.config.book_label_noise)


class AlwaysDropout(nn.Module):
    """The bug: F.dropout(x, p) defaults to training=True, so it drops at inference too."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        return F.dropout(x, self.rate)


def dropout_without_training_flag(h):
    for name, module in torch_modules(h, "discriminator", nn.Dropout):
        setattr(h.torch_trainer.discriminator, name, AlwaysDropout(module.p))


def sigmoid_before_logit_loss(h):
    h.torch_trainer.discriminator.flatten = nn.Sequential(nn.Flatten(), nn.Sigmoid())


def normal_alpha(h):
    h.torch_trainer.config = dataclasses.replace(h.config, alpha_distribution="normal")


def buggy_penalty(norm_dims: tuple[int, ...], create_graph: bool) -> Callable[[checks.Harness], None]:
    """Replace torch's penalty by one whose norm runs over `norm_dims`, taken with or without create_graph."""

    def mutate(h):
        trainer = h.torch_trainer

        def penalty(real, fake, alpha, labels=None):
            x_hat = real + alpha * (fake - real)
            if not create_graph:
                x_hat = x_hat.detach()
            x_hat.requires_grad_(True)
            scores = trainer.score(x_hat, labels)
            (grads,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=create_graph)
            norms = torch.sqrt(grads.square().sum(dim=norm_dims) + trainer.config.gp_epsilon)
            return ((norms - 1) ** 2).mean()

        trainer.penalty = penalty

    return mutate


def torch_default_adam_epsilon(h):
    """torch's own Adam with its defaults (eps 1e-8, added after the bias correction) where Keras's rule is meant."""
    trainer = h.torch_trainer
    for name in ("g_optimizer", "c_optimizer"):
        group = getattr(trainer, name).param_groups[0]
        setattr(trainer, name, torch.optim.Adam(group["params"], lr=group["lr"], betas=group["betas"]))


def torch_default_beta_2(h):
    for optimizer in (h.torch_trainer.g_optimizer, h.torch_trainer.c_optimizer):
        for group in optimizer.param_groups:
            group["betas"] = (group["betas"][0], 0.999)


def biased_torch_running_var(h):
    """torch made to store the biased batch variance, as Keras does: the two running statistics silently part."""
    modules = [module for network in ("generator", "discriminator")
               for _, module in torch_modules(h, network, nn.BatchNorm2d)]
    for module in modules:
        def keep_old(module, args):
            module.previous_var = module.running_var.clone()

        def store_biased(module, args, output):
            if module.training:
                biased = args[0].detach().var(dim=(0, 2, 3), unbiased=False)
                stored = (1 - module.momentum) * module.previous_var + module.momentum * biased
                module.running_var.data.copy_(stored)  # .data: the batch-norm graph saved running_var

        module.register_forward_pre_hook(keep_old)
        module.register_forward_hook(store_biased)


def batch_norm_in_torch_critic(h):
    critic = h.torch_trainer.critic
    width = critic.conv2.out_channels
    critic.act2 = nn.Sequential(nn.BatchNorm2d(width).double(), critic.act2)


def stale_keras_generator_step(h):
    h.keras_trainer.config = dataclasses.replace(h.config, update_order="simultaneous")


def scaled_keras_dropout(h):
    """The Keras port follows the configuration, scaled: Dropout(config.dropout * 5 / 3), 0.5 for 0.3."""
    for layer in keras_layers(h, "discriminator", layers.Dropout):
        layer.rate = h.config.dropout * 5 / 3


def normal_torch_init(h):
    """pytorch/examples' weights_init on the torch side alone: conv weights N(0, 0.02), BatchNorm gamma N(1, 0.02)."""
    with torch.no_grad():
        for network in (h.torch_trainer.generator, h.torch_trainer.discriminator):
            for module in network.modules():
                if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.normal_(module.weight, 0.0, 0.02)
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.normal_(module.weight, 1.0, 0.02)
                    nn.init.zeros_(module.bias)


_keras_to_batch = keras_impl.data.to_batch


def _signed_one_hot_batch(images, labels, num_classes: int, one_hot: bool):
    """The Keras pipeline's batch with its one-hot labels written as +-1 (2 * one_hot - 1)."""
    batch = _keras_to_batch(images, labels, num_classes, one_hot)
    return (batch[0], 2 * batch[1] - 1) if one_hot else batch


def signed_keras_labels():
    return mock.patch.object(keras_impl.data, "to_batch", _signed_one_hot_batch)


def _pixels_over_128(images: torch.Tensor) -> torch.Tensor:
    """x / 128 - 1: a port's shortcut for (x - 127.5) / 127.5, onto [-1, 0.992]."""
    return images.to(torch.float32, memory_format=torch.contiguous_format, copy=True).div_(128).sub_(1)


def torch_pixels_over_128():
    return mock.patch.object(torch_impl.data, "to_unit", _pixels_over_128)


def torch_weight_decay(h):
    """A recipe's weight_decay=1e-4 pasted into one torch optimiser (torch adds it to the gradient as L2)."""
    h.torch_trainer.d_optimizer.param_groups[0]["weight_decay"] = 1e-4


def keras_clipnorm(h):
    """keras.optimizers.Adam(..., clipnorm=1.0) for the Keras generator alone."""
    h.keras_trainer.g_optimizer.clipnorm = 1.0


_keras_batch_norm = keras_impl.dcgan.batch_norm


def _batch_norm_without_center(name: str, config) -> layers.BatchNormalization:
    """The Keras factory's BatchNorm, with center=False (no beta) in bn2."""
    if name != "bn2":
        return _keras_batch_norm(name, config)
    return layers.BatchNormalization(momentum=config.bn_momentum, epsilon=config.bn_epsilon, center=False, name=name)


def keras_batch_norm_without_center():
    return mock.patch.object(keras_impl.dcgan, "batch_norm", _batch_norm_without_center)


# ------------------------------------------------------------------------------------------ Probe networks


def probe(torch_layers: list, keras_stack: list, input_chw: tuple[int, int, int],
          corrupt: Callable[[list], None] | None = None) -> Callable[[bool], CheckResult]:
    """A forward check on a small network built twice: torch layers (name, module) and named Keras layers."""

    def measure(bugged: bool) -> CheckResult:
        torch.manual_seed(0)
        torch_net = nn.Sequential(OrderedDict(torch_layers(bugged))).double()
        with checks.keras_dtype("float64"):  # built and run in float64 (on JAX and PyTorch: run, too)
            channels, height, width = input_chw
            keras_net = keras.Sequential([keras.Input((height, width, channels)), *keras_stack()])
            table = convert.weight_table(torch_net, keras_net)
            convert.torch_to_keras(table)
            if bugged and corrupt is not None:
                corrupt(table)
            x = np.random.default_rng(0).standard_normal((2, *input_chw))
            torch_y, keras_y = torch_net(torch.from_numpy(x)), keras_net(checks.nchw_to_nhwc(x))
            row = ("output", checks.nchw_to_nhwc(checks.to_numpy(torch_y)), checks.to_numpy(keras_y))
        return checks.compare("forward", checks.TOLERANCES["float64"]["forward"], [row])

    return measure


def plain_transpose(table: list) -> None:
    """The Dense kernel copied as weight.T, its rows left in torch's (C, H, W) flatten order."""
    port = next(port for port in table if port.name == "dense.weight")
    port.keras_variable.assign(port.torch_tensor.detach().numpy().T)


class CropLast(nn.Module):
    """Drop the last row and column: what TF's "same" output leaves out of a k5 s2 transposed conv."""

    def forward(self, x):
        return x[:, :, :-1, :-1]


flatten_probe = probe(
    lambda bugged: [("conv", nn.Conv2d(2, 3, 3, padding=1)), ("flatten", nn.Flatten()), ("dense", nn.Linear(48, 5))],
    lambda: [layers.Conv2D(3, 3, padding="same", name="conv"), layers.Flatten(name="flatten"),
             layers.Dense(5, name="dense")],
    (2, 4, 4), corrupt=plain_transpose,
)
same_conv_probe = probe(
    lambda bugged: [("conv", nn.Conv2d(2, 3, 5, stride=2, padding=2))] if bugged
    else [("pad", nn.ZeroPad2d((1, 2, 1, 2))), ("conv", nn.Conv2d(2, 3, 5, stride=2))],
    lambda: [layers.Conv2D(3, 5, strides=2, padding="same", name="conv")],
    (2, 8, 8),
)
same_transposed_probe = probe(
    lambda bugged: [("conv", nn.ConvTranspose2d(2, 3, 5, stride=2, padding=2, output_padding=1))] if bugged
    else [("conv", nn.ConvTranspose2d(2, 3, 5, stride=2, padding=1)), ("crop", CropLast())],
    lambda: [layers.Conv2DTranspose(3, 5, strides=2, padding="same", name="conv")],
    (2, 4, 4),
)


def labels_by_listing_order(spec, raw):
    """The bug: attribute rows zipped with the image files in the order each happens to be listed."""
    attribute_file, images = raw.files[0], raw.files[1:]
    rows = list(read_celeba_attribute(attribute_file, spec.attribute).values())  # file order, image_id dropped
    labels = np.array(rows[: len(images)], dtype=np.int64)
    return Cached(read_image_files(images, spec), labels, 2, (f"not {spec.attribute}", spec.attribute))


def labels_measure(bugged: bool) -> CheckResult:
    return check_labels_follow_image_id(labels_by_listing_order if bugged else None)


# ------------------------------------------------------------------------- Probe networks of ported GANs' layers


def keras_side_probe(torch_layers: list, keras_stack: Callable[[bool], list],
                     input_chw: tuple[int, int, int]) -> Callable[[bool], CheckResult]:
    """`probe` with the bug on the Keras side: `keras_stack(bugged)` builds the Keras layers."""

    def measure(bugged: bool) -> CheckResult:
        return probe(lambda _: torch_layers(), lambda: keras_stack(bugged), input_chw)(bugged)

    return measure


positional_epsilon_probe = probe(  # PyTorch-GAN's dcgan.py: nn.BatchNorm2d(128, 0.8), read as Keras's momentum 0.8
    lambda bugged: [("conv", nn.Conv2d(2, 3, 3, padding=1)),
                    ("bn", (nn.BatchNorm2d(3, 0.8) if bugged else nn.BatchNorm2d(3, eps=1e-3, momentum=0.2)).eval())],
    lambda: [layers.Conv2D(3, 3, padding="same", name="conv"),
             layers.BatchNormalization(momentum=0.8, epsilon=1e-3, name="bn")],
    (2, 4, 4),
)
uncropped_transposed_probe = keras_side_probe(  # torch padding=1 ported as "valid" without Cropping2D(1)
    lambda: [("conv", nn.ConvTranspose2d(2, 3, 4, stride=2, padding=1))],
    lambda bugged: [layers.Conv2DTranspose(3, 4, strides=2, name="conv")]
    + ([] if bugged else [layers.Cropping2D(1, name="crop")]),
    (2, 4, 4),
)


def keras_default_bn_momentum(h):
    """Every Keras BatchNormalization left at its default momentum 0.99 (torch's 0.1 is Keras's 0.9)."""
    for network in ("generator", "discriminator"):
        for layer in keras_layers(h, network, layers.BatchNormalization):
            layer.momentum = 0.99


# ------------------------------------------------------------------------------- Published models' porting traps


def positional_bn_epsilon(h):
    """PyTorch-GAN's BatchNorm1d(out_feat, 0.8) as published, in torch (eps 0.8, momentum torch's 0.1), against the
    Keras port that reads the 0.8 as BatchNormalization(momentum=0.8), which the author meant."""
    for network in ("generator", "discriminator"):
        for _, module in torch_modules(h, network, nn.BatchNorm1d):
            module.eps, module.momentum = h.config.bn_momentum, 0.1


_keras_torch_transposed = keras_impl.published._torch_transposed


def _uncropped_transposed(name, filters, kernel, stride, padding, config, use_bias=True):
    """torch's ConvTranspose2d(padding=p) ported as a Conv2DTranspose, "valid" unless "same" fits, without its crop."""
    return _keras_torch_transposed(name, filters, kernel, stride, padding, config, use_bias)[:1]


def keras_transposed_without_crop():
    return mock.patch.object(keras_impl.published, "_torch_transposed", _uncropped_transposed)


def _symmetric_conv(name, in_channels, out_channels, kernel, stride, size, bias=True):
    """TF's "same" ported as torch's symmetric padding = kernel // 2 (k5: 2 on both sides, where TF pads 1 and 2)."""
    return [(name, nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=bias))]


def _padded_transposed(name, in_channels, out_channels, kernel, stride, bias=True):
    """TF's "same" transposed conv ported as padding = kernel // 2, output_padding = stride - 1 (k5 s2: 2 and 1)."""
    return [(name, nn.ConvTranspose2d(in_channels, out_channels, kernel, stride, kernel // 2, stride - 1, bias=bias))]


@contextlib.contextmanager
def _patched(*patches):
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield


def torch_symmetric_same_padding():
    return _patched(mock.patch.object(torch_impl.published, "_same_conv", _symmetric_conv),
                    mock.patch.object(torch_impl.published, "_same_transposed", _padded_transposed))


def tf_layers_bn_defaults(h):
    """The torch port given tf.layers.batch_normalization's defaults (momentum 0.99: torch's 0.01; epsilon 1e-3)
    where the tutorial's helper passes momentum 0.9 and epsilon 1e-5."""
    for network in ("generator", "discriminator"):
        for _, module in torch_modules(h, network, nn.BatchNorm2d):
            module.eps, module.momentum = 1e-3, 1 - 0.99


def keras_discriminator_frozen(h):
    """The post's `discriminator.trainable = False` (set before compiling the combined model) kept on the Keras
    discriminator the custom train step uses: Keras 3 reads it at every step, not at compile time."""
    h.keras_trainer.discriminator.trainable = False
