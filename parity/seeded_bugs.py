"""The seeded porting bugs of the pitfall catalogue (parity/pitfalls.py): each a small function that breaks one side.

A `mutate(harness)` function changes one side of a freshly converted pair of trainers (parity/checks.py Harness)
after the weights are copied; `on_model` measures one named check with and without it. `probe` does the same on a
small network built twice, for layers the three models do not have (Flatten -> Dense, odd kernels).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable

import keras
import numpy as np
import torch
import torch.nn.functional as F
from keras import layers
from torch import nn

from parity import checks, convert
from parity.checks import CheckResult
from parity.data import check_labels_follow_image_id
from specs.datasets import Cached, read_celeba_attribute, read_image_files
from specs.models import get_config

# ------------------------------------------------------------------------------------ Seeding into the trainers


def on_model(model: str, check: str, mutate: Callable[[checks.Harness], None], preset: str = "digits",
             **fields) -> Callable[[bool], CheckResult]:
    """Measure `check` in float64 on a small pair of `model` trainers, with `mutate` applied when bugged."""

    def measure(bugged: bool) -> CheckResult:
        config = get_config(model, preset, width=8, **fields)
        [result] = checks.run_checks(model, config, "float64", batch_size=4, checks=(check,),
                                     mutate=mutate if bugged else None)
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
    for hook in h.epsilon_hooks:
        hook.remove()
    for optimizer in (h.torch_trainer.g_optimizer, h.torch_trainer.c_optimizer):
        for group in optimizer.param_groups:
            group["eps"] = 1e-8


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


# ------------------------------------------------------------------------------------------ Probe networks


def probe(torch_layers: list, keras_stack: list, input_chw: tuple[int, int, int],
          corrupt: Callable[[list], None] | None = None) -> Callable[[bool], CheckResult]:
    """A forward check on a small network built twice: torch layers (name, module) and named Keras layers."""

    def measure(bugged: bool) -> CheckResult:
        torch.manual_seed(0)
        torch_net = nn.Sequential(OrderedDict(torch_layers(bugged))).double()
        with checks.keras_dtype("float64"):
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
