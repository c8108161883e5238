"""The pitfall catalogue: each porting bug seeded on one side of a pair, caught by a named parity check.

A parity check that cannot fail proves nothing. Each entry seeds one mistake a person porting a GAN between
PyTorch and Keras makes, into a freshly converted pair of trainers (parity/checks.py) or, where the three models
have no layer of the kind involved, into a small probe network; and names the check that must catch it. `run`
measures the check with the bug and without it: the entry holds when the bugged pair fails and the clean pair
passes. Every entry carries the wrong and the right line in each framework and one paragraph on why; the
functions that seed the bugs live in parity/seeded_bugs.py.

  python -m parity pitfalls [--number N ...] [--json]    the table: entry, check, diff with and without the bug
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from parity import backends
from parity import seeded_bugs as bugs
from parity.checks import CheckResult


@dataclass(frozen=True)
class Pitfall:
    number: int  # position in the catalogue
    slug: str  # HTML anchor (docs/pitfalls.html#slug)
    title: str
    models: tuple[str, ...]  # the models it concerns; () for a probe network or the data
    check: str  # the check expected to catch it
    explanation: str  # one paragraph: what goes wrong and why
    torch_wrong: str
    torch_right: str
    keras_wrong: str
    keras_right: str
    measure: Callable[[bool], CheckResult]  # the named check's result with the bug (True) or without it (False)


@dataclass(frozen=True)
class Outcome:
    pitfall: Pitfall
    bugged: CheckResult
    clean: CheckResult

    @property
    def caught(self) -> bool:
        """The named check fails with the bug and passes without it."""
        return not self.bugged.passed and self.clean.passed


def run(pitfall: Pitfall) -> Outcome:
    return Outcome(pitfall, pitfall.measure(True), pitfall.measure(False))


def for_model(model: str) -> list[Pitfall]:
    return [pitfall for pitfall in CATALOGUE if model in pitfall.models]


ALL = ("dcgan", "wgan_gp", "cgan", "published")  # measured on a book model; the published ones have these layers too
SMALL = {"width": 2, "latent_dim": 8}  # the published models' entries: every layer of the original, few numbers
CRITICS = ("wgan_gp", "cgan")

CATALOGUE: tuple[Pitfall, ...] = (
    Pitfall(
        1, "bn-momentum-literal", "BatchNorm momentum copied literally (torch momentum=0.9)", ALL, "trajectory",
        "Keras's momentum is the weight of the old running statistic, torch's the weight of the new batch. The "
        "book's 0.9 copied into torch makes the running mean and variance follow the last batch almost entirely; "
        "nothing fails until inference, where the generator then normalises with the wrong statistics.",
        "nn.BatchNorm2d(width, momentum=0.9)", "nn.BatchNorm2d(width, momentum=1 - 0.9)  # torch_bn_momentum",
        "", "layers.BatchNormalization(momentum=0.9)",
        bugs.on_model("dcgan", "trajectory", bugs.literal_torch_momentum),
    ),
    Pitfall(
        2, "bn-epsilon-default", "BatchNorm epsilon left at a framework default", ALL, "forward",
        "torch's BatchNorm divides by sqrt(var + 1e-5) unless told otherwise, Keras's by sqrt(var + 1e-3). Every "
        "normalised activation differs by a factor close to 1, enough to move every later layer.",
        "nn.BatchNorm2d(width)  # eps=1e-5", "nn.BatchNorm2d(width, eps=config.bn_epsilon)",
        "layers.BatchNormalization()  # epsilon=1e-3", "layers.BatchNormalization(epsilon=config.bn_epsilon)",
        bugs.on_model("dcgan", "forward", bugs.torch_default_bn_epsilon),
    ),
    Pitfall(
        3, "keras-leaky-default", "Keras LeakyReLU() default slope 0.3 where 0.2 is meant", ALL, "forward",
        "Keras's LeakyReLU defaults to negative_slope 0.3 (torch's to 0.01). A bare LeakyReLU() in the Keras port "
        "changes every negative activation.",
        "", "nn.LeakyReLU(torch_leaky_slope(config.leaky_slope))",
        "layers.LeakyReLU()  # negative_slope=0.3", "layers.LeakyReLU(negative_slope=config.leaky_slope)",
        bugs.on_model("dcgan", "forward", bugs.keras_default_slope),
    ),
    Pitfall(
        4, "relu-for-leaky", "ReLU in the torch generator where the design has LeakyReLU 0.2", ALL, "forward",
        "pytorch/examples' DCGAN generator uses ReLU; the book's uses LeakyReLU(0.2). Copying the familiar torch "
        "example into a port of the book's model zeroes every negative activation of the generator.",
        "nn.ReLU(True)", "nn.LeakyReLU(torch_leaky_slope(config.leaky_slope))",
        "", "layers.LeakyReLU(negative_slope=config.leaky_slope)",
        bugs.on_model("dcgan", "forward", bugs.relu_in_torch_generator),
    ),
    Pitfall(
        5, "flatten-order", "NCHW flatten order before a Dense layer", (), "forward",
        "torch flattens (C, H, W), Keras (H, W, C). A Linear weight copied into a Dense kernel with a plain "
        "transpose multiplies every input by the wrong row: errors of the order of the activations themselves. "
        "The rows must be permuted (parity/convert.py chw_to_hwc_order). Probe: conv, flatten, dense on 4x4.",
        "", "",
        "dense.kernel.assign(weight.T)", "dense.kernel.assign(weight[:, chw_to_hwc_order((H, W, C))].T)",
        bugs.flatten_probe,
    ),
    Pitfall(
        6, "k5-same-conv", 'k5 stride-2 "same" conv ported as symmetric padding=2', (), "forward",
        'TF pads the odd pixel of a "same" stride-2 convolution at the bottom and right; torch\'s padding=2 pads '
        "both sides equally. The shapes agree and the values do not. torch refuses padding='same' with a stride, "
        "so pad explicitly. Probe: k5 s2 conv on 8x8.",
        "nn.Conv2d(c_in, c_out, 5, stride=2, padding=2)",
        "nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(c_in, c_out, 5, stride=2))",
        "", 'layers.Conv2D(c_out, 5, strides=2, padding="same")',
        bugs.same_conv_probe,
    ),
    Pitfall(
        7, "k5-same-transposed", 'k5 stride-2 "same" transposed conv ported with output_padding=1', (), "forward",
        'A k5 stride-2 "same" Conv2DTranspose equals torch\'s ConvTranspose2d(padding=1) with the last row and '
        "column cropped, not padding=2, output_padding=1: that one has the right shape and is shifted by a pixel. "
        "Probe: k5 s2 transposed conv from 4x4 to 8x8.",
        "nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1)",
        "nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=1)  # then x[:, :, :-1, :-1]",
        "", 'layers.Conv2DTranspose(c_out, 5, strides=2, padding="same")',
        bugs.same_transposed_probe,
    ),
    Pitfall(
        8, "swapped-kernel-axes", "conv kernel permuted with kh and kw swapped", ALL, "forward",
        "torch's (out, in, kh, kw) becomes Keras's (kh, kw, in, out) by permute(2, 3, 1, 0). permute(3, 2, 1, 0) "
        "gives the same shape for a square kernel and transposes every filter spatially.",
        "", "",
        "kernel = weight.permute(3, 2, 1, 0)", "kernel = weight.permute(2, 3, 1, 0)",
        bugs.on_model("dcgan", "forward", bugs.swapped_conv_kernel),
    ),
    Pitfall(
        9, "flipped-transposed-kernel", "transposed-conv kernel spatially flipped", ALL, "forward",
        "A transposed convolution is the gradient of a convolution, which tempts a spatial flip when porting its "
        "kernel. Both frameworks store it unflipped: (in, out, kh, kw) in torch, (kh, kw, out, in) in Keras, the "
        "same permutation as a convolution and nothing more.",
        "", "",
        "kernel = weight.permute(2, 3, 1, 0)[::-1, ::-1]", "kernel = weight.permute(2, 3, 1, 0)",
        bugs.on_model("dcgan", "forward", bugs.flipped_transposed_kernel),
    ),
    Pitfall(
        10, "label-noise-direction", "label-noise direction flipped (real 1 + 0.1·U vs 1 − 0.1·U)", ("dcgan",),
        "losses",
        "The book adds noise outside [0, 1] (real 1 + 0.1·U, fake −0.1·U); label smoothing keeps it inside (1 − "
        "0.1·U, 0.1·U). Porting one side with the other convention changes the discriminator's targets and its "
        "loss, silently: BCE from logits accepts any target.",
        "real_targets = 1 + amount * noise[0]  # the other side smooths", "real_targets = 1 - amount * noise[0]",
        "", "real_targets = 1 - amount * noise[0]",
        bugs.on_model("dcgan", "losses", bugs.flipped_label_noise),
    ),
    Pitfall(
        11, "dropout-training-flag", "F.dropout without the training flag", ALL, "forward",
        "F.dropout(x, p) defaults to training=True: it keeps dropping at inference, where Keras's Dropout (called "
        "with training=False) and nn.Dropout (in eval mode) pass activations through.",
        "x = F.dropout(x, p)", "x = F.dropout(x, p, training=self.training)  # or nn.Dropout(p)",
        "", "layers.Dropout(rate)  # training decides",
        bugs.on_model("dcgan", "forward", bugs.dropout_without_training_flag, dropout=0.3),
    ),
    Pitfall(
        12, "sigmoid-then-logits", "sigmoid followed by a with-logits loss", ("dcgan",), "losses",
        "A discriminator that ends in a sigmoid, fed to BCE-with-logits, trains on BCE(sigmoid(sigmoid(x))) "
        "without an error. Keep the logits and use the with-logits loss on both sides.",
        "nn.Sequential(..., nn.Flatten(), nn.Sigmoid())  # then BCEWithLogitsLoss",
        "nn.Sequential(..., nn.Flatten())  # logits; F.binary_cross_entropy_with_logits",
        "", "keras.losses.binary_crossentropy(targets, logits, from_logits=True)",
        bugs.on_model("dcgan", "losses", bugs.sigmoid_before_logit_loss),
    ),
    Pitfall(
        13, "gp-alpha-normal", "GP α drawn from N(0, 1)", CRITICS, "randomness",
        "The interpolation weight of the gradient penalty is U(0, 1) per sample, shape (B, 1, 1, 1). The book draws "
        "it from N(0, 1), which puts 66% of the points outside the segment between real and fake. The other "
        "checks inject α, so only a check of the trainers' own draws sees it.",
        "alpha = torch.randn(batch, 1, 1, 1)", "alpha = torch.rand(batch, 1, 1, 1)",
        "", "alpha = keras.random.uniform((batch, 1, 1, 1))",
        bugs.on_model("wgan_gp", "randomness", bugs.normal_alpha),
    ),
    Pitfall(
        14, "gp-norm-axis", "GP norm over one axis instead of C, H, W", CRITICS, "gradient_penalty",
        "The penalty constrains the norm of each sample's whole input gradient. A norm over dim=1 alone gives one "
        "norm per pixel and penalises something else.",
        "norms = grads.square().sum(dim=1).sqrt()", "norms = (grads.square().sum(dim=(1, 2, 3)) + epsilon).sqrt()",
        "", "norms = ops.sqrt(ops.sum(ops.square(grads), axis=(1, 2, 3)) + epsilon)",
        bugs.on_model("wgan_gp", "gradient_penalty", bugs.buggy_penalty((1,), create_graph=True)),
    ),
    Pitfall(
        15, "gp-create-graph", "torch GP without create_graph=True", CRITICS, "gradient_penalty",
        "Without create_graph=True the input gradient is a constant: the penalty has the right value and adds no "
        "gradient to the critic. TF's nested tapes record the inner gradient by themselves.",
        "grads, = torch.autograd.grad(scores.sum(), x_hat)",
        "grads, = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)",
        "", "with tf.GradientTape() as tape: tape.watch(x_hat); scores = critic(x_hat)",
        bugs.on_model("wgan_gp", "gradient_penalty", bugs.buggy_penalty((1, 2, 3), create_graph=False)),
    ),
    Pitfall(
        16, "adam-epsilon", "Adam epsilon defaults left unmapped", ALL, "trajectory",
        "torch's Adam defaults to eps 1e-8 and adds it to sqrt(v) / sqrt(1 - β₂ᵗ); Keras's to 1e-7, added to "
        "sqrt(v). Set one epsilon on both sides, and for exact agreement give torch eps / sqrt(1 - β₂ᵗ) at every "
        "step (torch_impl/optim.py, the Adam the torch trainers use): where gradients are small, epsilon is a "
        "large part of the step.",
        "torch.optim.Adam(params, lr, betas)  # eps=1e-8, added after the bias correction",
        "Adam(params, lr, betas, epsilon=config.adam_epsilon)  # torch_impl/optim.py",
        "keras.optimizers.Adam(lr, beta_1, beta_2)  # epsilon=1e-7",
        "keras.optimizers.Adam(lr, beta_1, beta_2, epsilon=config.adam_epsilon)",
        bugs.on_model("wgan_gp", "trajectory", bugs.torch_default_adam_epsilon),
    ),
    Pitfall(
        17, "adam-beta-2", "Adam β₂ differing (0.999 vs 0.9)", CRITICS, "trajectory",
        "The WGAN-GP recipe uses β = (0.5, 0.9). A port that passes only the learning rate and β₁ keeps the "
        "framework's β₂ of 0.999, and the second moment then averages over ten times as many steps.",
        "torch.optim.Adam(params, lr, betas=(0.5, 0.999))", "torch.optim.Adam(params, lr, betas=(0.5, 0.9))",
        "", "keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.9)",
        bugs.on_model("wgan_gp", "trajectory", bugs.torch_default_beta_2),
    ),
    Pitfall(
        18, "running-variance-bias", "unbiased vs biased running variance ignored", ALL, "trajectory",
        "Both frameworks normalise with the biased batch variance, but torch stores the unbiased one (n / (n − 1)) "
        "in running_var and Keras the biased one in moving_variance. A port that treats the two as the same "
        "quantity (here: torch made to store the biased one) drifts apart at inference; the trajectory check maps "
        "them through the exact relation and sees it.",
        "running_var = (1 - m) * running_var + m * x.var(unbiased=False)", "nn.BatchNorm2d(...)  # unbiased",
        "", "layers.BatchNormalization(...)  # biased",
        bugs.on_model("dcgan", "trajectory", bugs.biased_torch_running_var),
    ),
    Pitfall(
        19, "batchnorm-in-critic", "BatchNorm inside the WGAN-GP critic", CRITICS, "batch_independence",
        "The gradient penalty is a per-sample constraint on the critic. With BatchNorm in training mode a sample's "
        "score depends on the rest of its batch, and the penalty no longer means what it says; the paper uses "
        "layer norm or none. The check scores half a batch beside two different other halves.",
        "nn.Conv2d(...), nn.BatchNorm2d(width), nn.LeakyReLU(0.2)", "nn.Conv2d(...), nn.LeakyReLU(0.2)",
        "layers.Conv2D(...), layers.BatchNormalization(), layers.LeakyReLU(0.2)",
        "layers.Conv2D(...), layers.LeakyReLU(0.2)",
        bugs.on_model("wgan_gp", "batch_independence", bugs.batch_norm_in_torch_critic),
    ),
    Pitfall(
        20, "celeba-label-join", "CelebA labels joined by listing order", ("cgan",), "labels_follow_image_id",
        "list_attr_celeba holds one row per image_id; a directory listing has its own order (os.listdir is "
        "unordered). Zipping the two gives every image some other face's attribute and the CGAN learns noise. "
        "The check writes a small CelebA folder whose rows are shuffled and whose pixels name each image.",
        "labels = attributes[attribute].values  # zipped with os.listdir(folder)",
        "labels = [attributes.loc[image_id, attribute] for image_id in files]",
        "", "(the same reader: specs/datasets.py read_celeba)",
        bugs.labels_measure,
    ),
    Pitfall(
        21, "stale-generator-step", "generator step on stale fake images", ("dcgan",), "trajectory",
        "In the alternating order the generator's loss must come from a fresh pass of the just-updated "
        "discriminator. Reusing the logits of the pass before the discriminator's update is silent in TF (the tape "
        "kept the old values) and turns the step into the simultaneous one; in torch it raises 'modified by an "
        "inplace operation'. The torch side here alternates, the Keras side reuses the stale logits.",
        "", "g_loss = generator_loss(self.discriminator(fake))  # after the D step",
        "g_loss = generator_loss(fake_logits)  # from before the D step",
        "with g_tape: g_loss = generator_loss(self.discriminator(fake, training=True))",
        bugs.on_model("dcgan", "trajectory", bugs.stale_keras_generator_step, update_order="alternating"),
    ),
    Pitfall(
        22, "dropout-rate-scaled", "dropout rate that follows the configuration on one side, scaled", ALL,
        "dropout",
        "Training-mode comparisons run with dropout 0 (masks never agree across frameworks), and dropout is off at "
        "inference, so a port whose rate is wrong yet still derived from the configuration (here Keras's "
        "Dropout(config.dropout * 5 / 3): 0.5 for 0.3) passes every check that compares values. The dropout check "
        "feeds ones through each dropout layer in training mode and compares the fraction of zeros and the scale "
        "of the kept values, 1 / (1 - rate), with each other and with the configured rate.",
        "", "nn.Dropout(config.dropout)",
        "layers.Dropout(config.dropout * 5 / 3)", "layers.Dropout(config.dropout)",
        bugs.on_model("dcgan", "dropout", bugs.scaled_keras_dropout),
    ),
    Pitfall(
        23, "init-one-side", "N(0, 0.02) initialisation on one side only", ALL, "initialization",
        "pytorch/examples re-initialises every conv with N(0, 0.02) and BatchNorm γ with N(1, 0.02) "
        "(weights_init), while Keras layers start Glorot-uniform. Every value check copies the torch weights into "
        "Keras first, so two fresh models are never compared there, and a port that keeps one side's initialiser "
        "trains another model from its first step. The initialization check compares two fresh trainers tensor by "
        "tensor (mean, std, quantiles, max |w|) in units of each statistic's sampling noise.",
        "model.apply(weights_init)  # N(0, 0.02) here, Glorot-uniform in Keras",
        "nn.init.xavier_uniform_(module.weight)  # keras_default_init: as Keras, or N(0, 0.02) on both sides",
        "", "layers.Conv2D(..., kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02))  # if torch does",
        bugs.on_model("dcgan", "initialization", bugs.normal_torch_init),
    ),
    Pitfall(
        24, "signed-one-hot", "one-hot labels written as ±1 by one data pipeline", ("cgan",), "data",
        "A conditional model sees its label as concat(z, one_hot) in the generator and as label planes in the "
        "critic. A pipeline that writes them as 2·one_hot − 1 (CelebA's ±1 attribute convention carried through) "
        "still has one maximum per row and trains, on another input than the other backend's. The checks that "
        "inject their own labels cannot see it; the data check compares the batches each loader hands the trainer "
        "with each other and with the shared cache.",
        "", "F.one_hot(labels, num_classes).float()",
        "return images, 2 * tf.one_hot(labels, num_classes) - 1", "return images, tf.one_hot(labels, num_classes)",
        bugs.on_model("cgan", "data", patch=bugs.signed_keras_labels),
    ),
    Pitfall(
        25, "pixels-over-128", "pixels scaled by 1/128 on one side", ALL, "data",
        "(x − 127.5) / 127.5 maps 0..255 onto [−1, 1]; the shortcut x / 128 − 1 maps it onto [−1, 0.992] and moves "
        "every pixel by up to 1/256. The generator's tanh still reaches 1, so the discriminator of that backend can "
        "learn a tell the real images never show. The data check compares each loader's batches, byte for byte, "
        "with the other's and with the cache scaled once (specs.datasets.to_unit).",
        "images.float() / 128 - 1", "(images.float() - 127.5) / 127.5",
        "", "(tf.cast(images, tf.float32) - 127.5) / 127.5",
        bugs.on_model("dcgan", "data", patch=bugs.torch_pixels_over_128),
    ),
    Pitfall(
        26, "torch-weight-decay", "weight decay on one torch optimiser", ALL, "settings",
        "torch's Adam(weight_decay=...) adds an L2 term to the gradient (Keras's weight_decay is decoupled, as in "
        "AdamW). A recipe's weight_decay=1e-4 pasted into one torch optimiser shrinks that network's weights at "
        "every step, which five steps of trajectory show only as a small drift. The settings check reads every "
        "optimiser's fields off the built objects and names the one that differs.",
        "torch.optim.Adam(params, lr, betas, weight_decay=1e-4)", "Adam(params, lr, betas, epsilon)  # no decay",
        "", "keras.optimizers.Adam(lr, beta_1, beta_2, epsilon)",
        bugs.on_model("dcgan", "settings", bugs.torch_weight_decay),
    ),
    Pitfall(
        27, "keras-clipnorm", "clipnorm on one Keras optimiser", ALL, "settings",
        "keras.optimizers.Adam(clipnorm=1.0) clips every gradient tensor to norm 1 inside apply_gradients; torch's "
        "optimisers have no such argument (torch clips in the loop, with clip_grad_norm_). A clipnorm on one Keras "
        "optimiser changes only the steps whose gradients are large, which a short trajectory may never take.",
        "", "Adam(params, lr, betas, epsilon)  # nothing clipped on either side",
        "keras.optimizers.Adam(lr, beta_1, beta_2, epsilon, clipnorm=1.0)",
        "keras.optimizers.Adam(lr, beta_1, beta_2, epsilon)",
        bugs.on_model("dcgan", "settings", bugs.keras_clipnorm),
    ),
    Pitfall(
        28, "bn-without-center", "BatchNorm without centre in one Keras layer", ALL, "settings",
        "BatchNormalization(center=False) has no beta, so that layer can no longer shift its output. The converter "
        "refuses the pair (a torch bias with no Keras counterpart), which fails every check that needs the copy "
        "with the converter's message instead of stopping the command; the settings check names the field.",
        "", "nn.BatchNorm2d(width, eps=config.bn_epsilon, momentum=torch_bn_momentum(config.bn_momentum))",
        "layers.BatchNormalization(momentum=0.9, epsilon=1e-3, center=False)",
        "layers.BatchNormalization(momentum=config.bn_momentum, epsilon=config.bn_epsilon)",
        bugs.on_model("dcgan", "settings", patch=bugs.keras_batch_norm_without_center),
    ),
    # Entries 40 on: porting traps of published GAN code, found with `gan-parity compare` (parity/compare.py).
    Pitfall(
        40, "bn-positional-epsilon", "BatchNorm2d(C, 0.8): the second positional argument is eps, not momentum", (),
        "forward",
        "PyTorch-GAN's gan.py and dcgan.py write nn.BatchNorm1d(n, 0.8) and nn.BatchNorm2d(128, 0.8), a Keras "
        "momentum of 0.8 in mind; torch's second positional parameter is eps, so every activation is divided by "
        "sqrt(var + 0.8) and the momentum stays 0.1. A port that reads it as momentum=0.8 builds another network. "
        "Probe: conv and BatchNorm on 4x4, inference mode.",
        "nn.BatchNorm2d(channels, 0.8)  # eps=0.8", "nn.BatchNorm2d(channels, momentum=1 - 0.8)",
        "layers.BatchNormalization(momentum=0.8)  # the port of BatchNorm2d(c, 0.8)",
        "layers.BatchNormalization(momentum=0.9, epsilon=0.8)  # what torch's line computes",
        bugs.positional_epsilon_probe,
    ),
    Pitfall(
        41, "transposed-padding-uncropped", 'torch ConvTranspose2d(padding=p) ported as a "valid" Conv2DTranspose',
        (), "forward",
        "torch's padding on a transposed conv crops p rows and columns from each border of the full output. Keras's "
        'Conv2DTranspose has only "valid" (the full output) and "same"; k4 s2 p1 happens to equal "same", any '
        'other padding is "valid" and a Cropping2D(p). Left "valid", each layer grows the image by 2p (8x8 becomes '
        "10x10). Probe: k4 s2 p1 transposed conv from 4x4.",
        "", "nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)",
        "layers.Conv2DTranspose(c_out, 4, strides=2)  # padding=1 left out",
        'layers.Conv2DTranspose(c_out, 4, strides=2), layers.Cropping2D(1)  # or padding="same" for k4 s2 p1',
        bugs.uncropped_transposed_probe,
    ),
    Pitfall(
        42, "bn-momentum-default", "Keras BatchNormalization() left at its default momentum 0.99", ALL, "trajectory",
        "torch's BatchNorm2d defaults to momentum 0.1, which is Keras's 0.9; Keras's BatchNormalization() defaults "
        "to 0.99, as tf.layers.batch_normalization did. A port that writes BatchNormalization() for BatchNorm2d(c) "
        "trains the same weights and keeps running statistics that move ten times slower: the outputs agree in "
        "training mode and part at inference.",
        "", "nn.BatchNorm2d(channels)  # momentum=0.1: Keras's 0.9",
        "layers.BatchNormalization()  # momentum=0.99", "layers.BatchNormalization(momentum=0.9)",
        bugs.on_model("dcgan", "trajectory", bugs.keras_default_bn_momentum),
    ),
    # Entries 43 on: the published models' porting traps, seeded into those models (the `published` model).
    Pitfall(
        43, "bn1d-positional-epsilon", "BatchNorm1d(n, 0.8) as published against a port reading momentum 0.8 "
        "(pytorch-gan-mlp)", ("published",), "forward",
        "PyTorch-GAN's gan.py builds its generator blocks with nn.BatchNorm1d(out_feat, 0.8), ported from the "
        "author's Keras-GAN, where BatchNormalization(momentum=0.8) stands. torch's second positional parameter is "
        "eps: the published network divides by sqrt(var + 0.8) and keeps torch's momentum 0.1. A Keras port that "
        "writes the momentum it sees builds what was meant, not what was published: the activations after every "
        "BatchNorm differ. The published model defaults to what was meant (bn_momentum 0.8) and reproduces the "
        "published slip with --bn-positional-epsilon true, in both frameworks.",
        "nn.BatchNorm1d(out_feat, 0.8)  # eps=0.8, momentum=0.1",
        "nn.BatchNorm1d(out_feat, momentum=1 - 0.8)  # what was meant; or eps=0.8 on both sides",
        "layers.BatchNormalization(momentum=0.8)  # the port of BatchNorm1d(out_feat, 0.8)",
        "layers.BatchNormalization(momentum=0.9, epsilon=0.8)  # what the published line computes",
        bugs.on_model("published", "forward", bugs.positional_bn_epsilon, preset="pytorch-gan-mlp", **SMALL),
    ),
    Pitfall(
        44, "transposed-padding-uncropped-face32", "torch ConvTranspose2d(padding=1) ported without a crop "
        "(face32)", ("published",), "shapes",
        "The face generator's last layer, ConvTranspose2d(32, 3, 4, stride=1, padding=1), takes 31x31 to 32x32: "
        "the full transposed output is 34x34 and torch's padding=1 crops a row and a column from each border. "
        "Keras's Conv2DTranspose has no such padding: \"valid\" gives the full 34x34 and \"same\" crops (1, 2), "
        "another window. The port needs \"valid\" and a Cropping2D(1); without it the generator draws 34x34 images "
        "that the discriminator refuses.",
        "", "nn.ConvTranspose2d(conv_dim, 3, 4, stride=1, padding=1, bias=False)",
        'layers.Conv2DTranspose(3, 4, strides=1, padding="valid", use_bias=False)  # 34x34',
        'layers.Conv2DTranspose(3, 4, strides=1, padding="valid", use_bias=False), layers.Cropping2D(1)',
        bugs.on_model("published", "shapes", patch=bugs.keras_transposed_without_crop, preset="face32", **SMALL),
    ),
    Pitfall(
        45, "tf-same-k5-s2-svhn", 'TensorFlow\'s k5 stride-2 "same" ported as symmetric padding (svhn-tf1)',
        ("published",), "forward",
        "The TF1 tutorial's convolutions are k5 stride 2 with padding=\"same\": on an even input TensorFlow pads 1 "
        "pixel before and 2 after. torch's Conv2d(..., 5, 2, padding=2) pads 2 and 2: the same shape, another "
        "window, every value different. Its transposed convs crop 1 before and 2 after; ConvTranspose2d(padding=2, "
        "output_padding=1) crops 2 and 1. The port pads with an explicit ZeroPad2d((1, 2, 1, 2)) and crops with "
        "padding=1 and a ZeroPad2d((0, -1, 0, -1)).",
        "nn.Conv2d(c_in, c_out, 5, stride=2, padding=2); nn.ConvTranspose2d(c_in, c_out, 5, 2, 2, output_padding=1)",
        "nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(c_in, c_out, 5, stride=2); "
        "nn.ConvTranspose2d(c_in, c_out, 5, 2, padding=1), nn.ZeroPad2d((0, -1, 0, -1))",
        "", 'tf.layers.conv2d(x, c_out, 5, strides=2, padding="same")  # layers.Conv2D in Keras 3',
        bugs.on_model("published", "forward", patch=bugs.torch_symmetric_same_padding, preset="svhn-tf1", **SMALL),
    ),
    Pitfall(
        46, "tf-layers-bn-defaults", "tf.layers.batch_normalization's defaults mapped where the code passes its own "
        "(svhn-tf1)", ("published",), "forward",
        "tf.layers.batch_normalization defaults to momentum 0.99 and epsilon 1e-3 (as Keras's BatchNormalization "
        "does); torch's BatchNorm2d to 0.1 (Keras's 0.9) and 1e-5. The tutorial's batch_norm helper passes "
        "momentum=0.9 and epsilon=1e-5 itself, which torch's defaults happen to equal. A port that maps TensorFlow's "
        "defaults (eps=1e-3, momentum=0.01) instead of reading the helper's arguments normalises with another "
        "epsilon and keeps running statistics ten times slower; code that relies on TensorFlow's defaults is the "
        "opposite case, where torch's defaults are wrong.",
        "nn.BatchNorm2d(c, eps=1e-3, momentum=1 - 0.99)  # tf.layers' defaults",
        "nn.BatchNorm2d(c, eps=1e-5, momentum=1 - 0.9)  # the helper's epsilon and momentum",
        "", "tf.layers.batch_normalization(x, training=training, epsilon=1e-5, momentum=0.9)",
        bugs.on_model("published", "forward", bugs.tf_layers_bn_defaults, preset="svhn-tf1", **SMALL),
    ),
    Pitfall(
        47, "keras-trainable-at-compile", "Keras trainable = False of the combined model, read at compile time in "
        "Keras 2 and at every step in Keras 3 (celeba-keras)", ("published",), "forward",
        "The post compiles the discriminator, sets discriminator.trainable = False and compiles the combined model "
        "G -> D. Keras 2 read trainable when a model was compiled, so discriminator.train_on_batch still trained D "
        "and the combined model trained G alone. Keras 3 reads it whenever a step runs: the post's code trains no "
        "discriminator at all (train_on_batch warns that the model has no trainable weights), and a frozen "
        "BatchNormalization runs in inference mode even when called with training=True. Kept on the Keras side of "
        "this port, the flag changes every training-mode output of D's BatchNorm layers, and D's optimiser is "
        "handed no variables. The order of updates the pattern stands for is the alternating one, which the "
        "trainer takes with two optimisers and no flag: the G step applies G's gradients only.",
        "for p in discriminator.parameters(): p.requires_grad_(False)  # once: D never trains",
        "g_grads = torch.autograd.grad(g_loss, generator_params)  # only G's step, D left as it is",
        "discriminator.trainable = False  # for the combined model, then a custom or Keras 3 train step",
        "g_grads = tape.gradient(g_loss, generator.trainable_weights)  # no trainable flag",
        bugs.on_model("published", "forward", bugs.keras_discriminator_frozen, preset="celeba-keras", **SMALL),
    ),
)

# ------------------------------------------------------------------------------------------------ Command


def as_row(outcome: Outcome) -> dict:
    p = outcome.pitfall
    return {"number": p.number, "title": p.title, "check": p.check, "caught": outcome.caught,
            "bugged": outcome.bugged.as_dict(), "clean": outcome.clean.as_dict()}


def format_table(rows: list[dict]) -> str:
    """One line per entry; rows of several Keras backends (`keras_backend`) get a column naming theirs."""
    keras = any("keras_backend" in row for row in rows)
    header = (f"{'keras':<11}" * keras + f"{'#':>2}  {'pitfall':<66} {'check':<22} {'with bug':>10} {'without':>10} "
              f"{'tolerance':>9}  verdict")
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row.get('keras_backend', ''):<11}" * keras +
                     f"{row['number']:>2}  {row['title'][:66]:<66} {row['check']:<22} "
                     f"{row['bugged']['max_scaled_diff']:>10.3g} {row['clean']['max_scaled_diff']:>10.3g} "
                     f"{row['bugged']['tolerance']:>9.0e}  {'caught' if row['caught'] else 'MISSED'}")
    return "\n".join(lines)


def run_command(args: argparse.Namespace, rows: list[dict] | None = None, start: float | None = None) -> int:
    """The catalogue's entries on this process's Keras backend, or the `rows` other processes measured (since
    `start`)."""
    start = start or time.perf_counter()
    if rows is None:
        rows = [as_row(run(pitfall)) for pitfall in CATALOGUE if not args.number or pitfall.number in args.number]
    missed = [row for row in rows if not row["caught"]]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
        verdict = f"{len(missed)} of {len(rows)} pitfalls MISSED" if missed else \
            f"all {len(rows)} pitfalls caught by their checks"
        print(f"\n{verdict} ({time.perf_counter() - start:.0f} s)")
    return 1 if missed else 0


def run_elsewhere(args: argparse.Namespace, argv: list[str], keras_backends: list[str]) -> int:
    """`gan-parity pitfalls` on each of `keras_backends` in a process of its own; one merged table."""
    start = time.perf_counter()
    result = {"max_abs_diff": float("inf"), "max_scaled_diff": float("inf"), "tolerance": 0.0}
    rows, status = backends.json_rows(argv, keras_backends, lambda backend, why: {
        "number": 0, "title": why, "check": "", "caught": False, "bugged": result, "clean": result,
        "keras_backend": backend})
    return max(run_command(args, rows, start), 1 if status else 0)


def register(commands) -> None:
    parser = commands.add_parser("pitfalls", help="seed each catalogued porting bug and show the check catching it")
    parser.add_argument("--number", nargs="+", type=int, default=None, help="entries to run (default: all)")
    parser.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    parser.add_argument("--keras-backend", choices=backends.CHOICES, default=None,
                        help="the Keras backend: tensorflow, jax, torch, or all (one process each, one table); "
                             "default: $KERAS_BACKEND, else tensorflow")
    parser.set_defaults(func=run_command, elsewhere=run_elsewhere)


if __name__ == "__main__":
    sys.exit(run_command(argparse.Namespace(number=None, json=False)))
