"""gan-parity compare (parity/compare.py): a learner's own port, checked layer by layer and diagnosed.

Every pair here is written the way a user writes one: plain torch modules and Keras models, not this project's.
Correct ports (differing names; Sequential, functional and subclassed Keras models; 1d and 2d layers; a label
embedding) must agree to float64 round-off. Each catalogued pitfall that lives in a network is seeded into a small
pair, and compare must name the first layer that diverges and the entry whose fix makes that layer agree.
"""

import json
from collections import OrderedDict

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from keras import layers
from torch import nn

from parity import pairing
from parity.__main__ import main
from parity.compare import compare
from torch_impl.optim import Adam as KerasRuleAdam

HERE = __file__  # the factories of the command-line tests live in this file


def first_layer(report) -> str:
    """The torch name of the first layer that diverges (or the Keras name where torch has none)."""
    pair = report.pair.pairs[report.first.pair]
    return (pair.torch or pair.keras).name


def assert_diagnosed(report, layer: str, pitfall: int):
    assert not report.agrees
    assert first_layer(report) == layer, report.text()
    [finding] = report.findings
    assert finding.fixed and pitfall in finding.pitfalls, report.text()
    assert f"pitfall {pitfall} (" in report.text()


def sequential(shape, *stack) -> keras.Sequential:
    return keras.Sequential([keras.Input(shape), *stack])


# ------------------------------------------------------------------------------------------------ Correct ports


class TorchDCGAN(nn.Module):
    """A small DCGAN generator with names of its own: conv1, bn1, act1, ..."""

    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(OrderedDict(
            conv1=nn.ConvTranspose2d(4, 6, 4, 1, 0, bias=False), bn1=nn.BatchNorm2d(6), act1=nn.ReLU(True),
            conv2=nn.ConvTranspose2d(6, 3, 4, 2, 1, bias=False), out=nn.Tanh()))

    def forward(self, z):
        return self.main(z)


def keras_dcgan():
    return sequential((1, 1, 4), layers.Conv2DTranspose(6, 4, use_bias=False, name="up1"),
                      layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="norm1"), layers.ReLU(name="relu1"),
                      layers.Conv2DTranspose(3, 4, strides=2, padding="same", use_bias=False, name="up2"),
                      layers.Activation("tanh", name="tanh"))


def test_a_correct_port_with_other_names_is_paired_by_order_and_agrees():
    def adam(params):
        return KerasRuleAdam(params, lr=2e-4, betas=(0.5, 0.999), epsilon=1e-7)

    def keras_adam():
        return keras.optimizers.Adam(2e-4, beta_1=np.float64(0.5), beta_2=np.float64(0.999), epsilon=1e-7)

    report = compare(TorchDCGAN, keras_dcgan, (4, 1, 1), loss="mse", optimizers=(adam, keras_adam))
    assert report.agrees, report.text()
    assert [p.how for p in report.pair.pairs] == ["order"] * 5
    assert [p.torch.name for p in report.pair.pairs] == [f"main.{n}" for n in ("conv1", "bn1", "act1", "conv2",
                                                                               "out")]
    sections = {row.section for row in report.rows}
    assert sections == {"inference", "training", "gradients", "step"}
    assert max(row.scaled for row in report.rows) < 1e-12
    assert len(report.pair.table) == 6 and "Verdict: AGREES" in report.text()


class TorchMLPGenerator(nn.Module):
    """Linear -> BatchNorm1d over features -> view to an image -> transposed conv; and its discriminator half."""

    def __init__(self):
        super().__init__()
        self.project = nn.Linear(5, 3 * 2 * 2)
        self.bn = nn.BatchNorm1d(12, eps=1e-3, momentum=0.01)
        self.conv = nn.ConvTranspose2d(3, 2, 4, 2, 1)
        self.score = nn.Linear(2 * 4 * 4, 1)

    def forward(self, z):
        x = F.leaky_relu(self.bn(self.project(z)), 0.2).view(-1, 3, 2, 2)
        x = torch.tanh(self.conv(x))
        return self.score(x.flatten(1))


def keras_mlp_generator():
    z = keras.Input((5,))
    x = layers.Dense(12, name="project")(z)
    x = layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name="bn")(x)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Reshape((2, 2, 3))(x)
    x = layers.Conv2DTranspose(2, 4, strides=2, padding="same", activation="tanh", name="conv")(x)
    return keras.Model(z, layers.Dense(1, name="score")(layers.Flatten()(x)))


def test_a_functional_port_with_dense_reshape_and_flatten_agrees_by_name():
    report = compare(TorchMLPGenerator, keras_mlp_generator, (5,), loss="bce-logits")
    assert report.agrees, report.text()
    by_name = {p.torch.name for p in report.pair.pairs if p.how == "name"}
    assert by_name == {"project", "bn", "conv", "score"}
    keras_only = [p.keras.family for p in report.pair.pairs if p.torch is None]
    assert keras_only == ["activation", "reshape", "activation", "flatten"]  # in torch's forward: F.leaky_relu,
    # view, torch.tanh (Keras's conv applies it itself) and flatten
    orders = {p.torch.name: p.orders for p in report.pair.pairs if p.torch}
    assert orders["project"][1] is not None and orders["bn"][1] is not None and orders["score"][0] is not None


class TorchConditional1d(nn.Module):
    """A conditional 1d generator: label embedding, Conv1d, LayerNorm, upsampling, pooling, dropout."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(3, 8)
        self.conv = nn.Conv1d(2, 4, 3, padding=1)
        self.norm = nn.LayerNorm([4, 8], eps=1e-3)
        self.up = nn.Upsample(scale_factor=2)
        self.pool = nn.MaxPool1d(2)
        self.drop = nn.Dropout(0.25)
        self.deconv = nn.ConvTranspose1d(4, 1, 4, 2, 1)

    def forward(self, z, labels):
        x = torch.stack([z, self.embed(labels)], dim=1)  # (N, 2, 8)
        x = self.drop(self.pool(self.up(F.relu(self.norm(self.conv(x))))))
        return self.deconv(x)


class KerasConditional1d(keras.Model):
    """Its Keras port, subclassed: layers in __init__, the forward in call."""

    def __init__(self):
        super().__init__()
        self.embed = layers.Embedding(3, 8)
        self.conv = layers.Conv1D(4, 3, padding="same")
        self.norm = layers.LayerNormalization(axis=[1, 2], epsilon=1e-3)
        self.up = layers.UpSampling1D(2)
        self.pool = layers.MaxPooling1D(2)
        self.drop = layers.Dropout(0.25)
        self.deconv = layers.Conv1DTranspose(1, 4, strides=2, padding="same")

    def call(self, inputs, training=False):
        z, labels = inputs
        x = keras.ops.stack([z, self.embed(labels)], axis=-1)  # (N, 8, 2)
        x = self.norm(self.conv(x))
        x = self.drop(self.pool(self.up(keras.ops.relu(x))), training=training)
        return self.deconv(x)


def test_a_subclassed_conditional_1d_port_agrees():
    report = compare(TorchConditional1d, KerasConditional1d, ["8", "labels:3"], loss="wasserstein")
    assert report.agrees, report.text()
    kinds = [p.torch.family for p in report.pair.pairs if p.torch and p.keras]
    assert kinds == ["embedding", "conv1d", "layer_norm", "upsampling", "max_pool", "dropout", "conv_transpose1d"]
    assert {row.section for row in report.rows} >= {"dropout", "batch"}


# ------------------------------------------------------------------------------------------- Seeded pitfalls


class TorchBlock(nn.Module):
    """conv -> BatchNorm -> activation, the layers a test replaces."""

    def __init__(self, bn=None, act=None, conv=None):
        super().__init__()
        self.conv = conv or nn.Conv2d(2, 4, 3, padding=1)
        self.bn = bn or nn.BatchNorm2d(4)
        self.act = act or nn.LeakyReLU(0.2)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def keras_block(bn=None, act=None, conv=None, shape=(8, 8, 2)):
    """The Keras port of TorchBlock; `bn`, `act`, `conv` build the layers a test replaces (inside the factory, so
    that compare builds them in float64)."""
    return lambda: sequential(shape, conv() if conv else layers.Conv2D(4, 3, padding="same"),
                              bn() if bn else layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
                              act() if act else layers.LeakyReLU(0.2))


def test_01_batch_norm_momentum_copied_literally_shows_in_the_running_statistics():
    port = lambda: TorchBlock(bn=nn.BatchNorm2d(4, eps=1e-5, momentum=0.9))  # noqa: E731 - Keras's 0.9 as is
    report = compare(port, keras_block(), (2, 8, 8), direction="keras-to-torch")
    assert_diagnosed(report, "bn", 1)
    failing = {(row.section, row.what) for row in report.rows if not row.passed and row.pair == 1}
    assert failing == {("training", "state")}  # the outputs agree: only the running statistics part


def test_02_batch_norm_epsilon_left_at_the_keras_default():
    report = compare(TorchBlock, keras_block(bn=lambda: layers.BatchNormalization(momentum=0.9)), (2, 8, 8))
    assert_diagnosed(report, "bn", 2)


def test_03_keras_leaky_relu_default_slope():
    report = compare(TorchBlock, keras_block(act=layers.LeakyReLU), (2, 8, 8))
    assert_diagnosed(report, "act", 3)
    assert "off by the same factor 1.5" in report.text()


def test_04_relu_in_the_torch_port_where_keras_has_leaky_relu():
    report = compare(lambda: TorchBlock(act=nn.ReLU()), keras_block(), (2, 8, 8), direction="keras-to-torch")
    assert_diagnosed(report, "act", 4)


class TorchFlatten(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.dense = nn.Linear(48, 5)

    def forward(self, x):
        return self.dense(self.conv(x).flatten(1))


def keras_flatten():
    return sequential((4, 4, 2), layers.Conv2D(3, 3, padding="same", name="conv"), layers.Flatten(),
                      layers.Dense(5, name="dense"))


def keras_flatten_converted_by_hand():
    """The learner's own conversion of TorchFlatten's weights (seed 0): the Dense kernel as a plain transpose."""
    torch.manual_seed(0)
    source, model = TorchFlatten().double(), keras_flatten()
    model.get_layer("conv").kernel.assign(source.conv.weight.detach().numpy().transpose(2, 3, 1, 0))
    model.get_layer("conv").bias.assign(source.conv.bias.detach().numpy())
    model.get_layer("dense").kernel.assign(source.dense.weight.detach().numpy().T)  # rows in torch's (C, H, W)
    model.get_layer("dense").bias.assign(source.dense.bias.detach().numpy())
    return model


def test_05_flatten_order_of_a_hand_converted_dense():
    report = compare(TorchFlatten, keras_flatten_converted_by_hand, (2, 4, 4), weights="keep")
    assert_diagnosed(report, "dense", 5)
    assert report.first.section == "weights" and report.first.label == "dense.weight"


class TorchChannelsLastFlatten(TorchFlatten):
    """A torch port that flattens (H, W, C) as Keras does: the weights must then not be reordered."""

    def forward(self, x):
        return self.dense(self.conv(x).permute(0, 2, 3, 1).flatten(1))


def test_05_flatten_order_of_a_port_that_flattens_channels_last():
    report = compare(TorchChannelsLastFlatten, keras_flatten, (2, 4, 4), direction="keras-to-torch")
    assert_diagnosed(report, "dense", 5)


def test_06_k5_same_conv_ported_with_symmetric_padding():
    conv = nn.Conv2d(2, 4, 5, stride=2, padding=2)
    keras_conv = lambda: layers.Conv2D(4, 5, strides=2, padding="same")  # noqa: E731
    report = compare(lambda: TorchBlock(conv=conv), keras_block(conv=keras_conv), (2, 8, 8), direction="keras-to-torch")
    assert_diagnosed(report, "conv", 6)


def test_07_k5_same_transposed_conv_ported_with_output_padding():
    conv = nn.ConvTranspose2d(2, 4, 5, stride=2, padding=2, output_padding=1)
    keras_conv = lambda: layers.Conv2DTranspose(4, 5, strides=2, padding="same")  # noqa: E731
    report = compare(lambda: TorchBlock(conv=conv), keras_block(conv=keras_conv, shape=(4, 4, 2)), (2, 4, 4),
                     direction="keras-to-torch")
    assert_diagnosed(report, "conv", 7)


class TorchTwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.up = nn.ConvTranspose2d(3, 2, 4, 2, 1)

    def forward(self, x):
        return self.up(F.relu(self.conv(x)))


def keras_two_convs(kernel_map=lambda w: w.transpose(2, 3, 1, 0), transposed_map=lambda w: w.transpose(2, 3, 1, 0)):
    """The learner's own conversion of TorchTwoConvs's weights (seed 0), with the kernel maps given."""

    def build():
        torch.manual_seed(0)
        source = TorchTwoConvs().double()
        model = sequential((4, 4, 2), layers.Conv2D(3, 3, padding="same", name="conv"), layers.ReLU(),
                           layers.Conv2DTranspose(2, 4, strides=2, padding="same", name="up"))
        for name, to_kernel in (("conv", kernel_map), ("up", transposed_map)):
            module = getattr(source, name)
            model.get_layer(name).kernel.assign(np.ascontiguousarray(to_kernel(module.weight.detach().numpy())))
            model.get_layer(name).bias.assign(module.bias.detach().numpy())
        return model

    return build


def test_a_hand_converted_pair_with_the_right_maps_agrees():
    assert compare(TorchTwoConvs, keras_two_convs(), (2, 4, 4), weights="keep").agrees


def test_08_conv_kernel_permuted_with_its_spatial_axes_swapped():
    report = compare(TorchTwoConvs, keras_two_convs(kernel_map=lambda w: w.transpose(3, 2, 1, 0)), (2, 4, 4),
                     weights="keep")
    assert_diagnosed(report, "conv", 8)


def test_09_transposed_conv_kernel_spatially_flipped():
    flipped = keras_two_convs(transposed_map=lambda w: w.transpose(2, 3, 1, 0)[::-1, ::-1])
    report = compare(TorchTwoConvs, flipped, (2, 4, 4), weights="keep")
    assert_diagnosed(report, "up", 9)


class TorchFunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        return self.conv2(F.dropout(self.conv1(x), 0.5))  # no training=self.training: it drops at inference too


def test_11_functional_dropout_without_the_training_flag():
    keras_net = lambda: sequential((8, 8, 2), layers.Conv2D(4, 3, padding="same"), layers.Dropout(0.5),  # noqa: E731
                                   layers.Conv2D(2, 3, padding="same"))
    report = compare(TorchFunctionalDropout, keras_net, (2, 8, 8))
    assert_diagnosed(report, "conv2", 11)
    assert {row.section for row in report.rows if not row.passed} == {"inference"}
    assert "not deterministic at inference" in report.text()


class TorchSigmoidScore(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 4, 2, 1)
        self.score = nn.Linear(2 * 2 * 2, 1)
        self.sigmoid = nn.Sigmoid()  # then BCEWithLogitsLoss: the sigmoid is taken twice

    def forward(self, x):
        return self.sigmoid(self.score(F.leaky_relu(self.conv(x), 0.2).flatten(1)))


def test_12_a_sigmoid_before_a_with_logits_loss_on_one_side_only():
    keras_net = lambda: sequential((4, 4, 2), layers.Conv2D(2, 4, strides=2, padding="same"),  # noqa: E731
                                   layers.LeakyReLU(0.2), layers.Flatten(), layers.Dense(1))
    report = compare(TorchSigmoidScore, keras_net, (2, 4, 4), loss="bce-logits")
    assert report.first.label == "model output" and report.findings[0].layer == "the model's output"
    assert report.findings[0].fixed and 12 in report.findings[0].pitfalls, report.text()


class BiasedBatchNorm(nn.BatchNorm2d):
    """A hand-written torch BatchNorm that stores the biased batch variance, as Keras does."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean((0, 2, 3)))
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * x.var((0, 2, 3), unbiased=False))
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


def test_18_a_torch_batch_norm_that_stores_the_biased_variance():
    report = compare(lambda: TorchBlock(bn=BiasedBatchNorm(4)), keras_block(), (2, 8, 8))
    assert_diagnosed(report, "bn", 18)


class TorchCritic(nn.Module):
    def __init__(self, batch_norm: bool):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 4, 2, 1)
        self.norm = nn.BatchNorm2d(4) if batch_norm else nn.Identity()
        self.score = nn.Linear(4 * 2 * 2, 1)

    def forward(self, x):
        return self.score(F.leaky_relu(self.norm(self.conv(x)), 0.2).flatten(1))


def keras_critic(batch_norm: bool):
    def build():
        norm = [layers.BatchNormalization(momentum=0.9, epsilon=1e-5)] if batch_norm else []
        return sequential((4, 4, 2), layers.Conv2D(4, 4, strides=2, padding="same"), *norm, layers.LeakyReLU(0.2),
                          layers.Flatten(), layers.Dense(1))

    return build


def test_19_batch_norm_in_the_torch_critic_only():
    report = compare(lambda: TorchCritic(True), keras_critic(False), (2, 4, 4), loss="wasserstein")
    assert report.first.section == "structure"
    assert_diagnosed(report, "norm", 19)


def test_19_batch_norm_in_both_critics_makes_the_scores_depend_on_the_batch():
    report = compare(lambda: TorchCritic(True), keras_critic(True), (2, 4, 4), loss="wasserstein")
    assert report.first.section == "batch"
    assert_diagnosed(report, "norm", 19)


def test_22_a_dropout_rate_that_differs():
    torch_net = lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Dropout(0.3))  # noqa: E731
    keras_net = lambda: sequential((8, 8, 2), layers.Conv2D(4, 3, padding="same"), layers.Dropout(0.5))  # noqa: E731
    report = compare(torch_net, keras_net, (2, 8, 8))
    assert report.first.section == "dropout"
    assert_diagnosed(report, "1", 22)
    assert all(row.passed for row in report.rows if row.section in ("inference", "training"))


def test_28_batch_norm_without_centre_in_the_keras_port():
    uncentred = lambda: layers.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False)  # noqa: E731
    report = compare(TorchBlock, keras_block(bn=uncentred), (2, 8, 8))
    assert report.first.section == "structure" and "present in only one framework" in report.first.label
    assert_diagnosed(report, "bn", 28)


def test_40_batch_norm_with_a_positional_epsilon():
    pytorch_gan = lambda: TorchBlock(bn=nn.BatchNorm2d(4, 0.8))  # noqa: E731 - PyTorch-GAN's dcgan.py
    report = compare(pytorch_gan, keras_block(bn=lambda: layers.BatchNormalization(momentum=0.8)), (2, 8, 8))
    assert_diagnosed(report, "bn", 40)


def test_41_transposed_conv_padding_ported_as_valid_without_a_crop():
    conv = nn.ConvTranspose2d(2, 4, 4, stride=2, padding=1)
    valid = lambda: layers.Conv2DTranspose(4, 4, strides=2)  # noqa: E731 - padding=1 left out
    report = compare(lambda: TorchBlock(conv=conv), keras_block(conv=valid, shape=(4, 4, 2)), (2, 4, 4))
    assert_diagnosed(report, "conv", 41)
    assert report.first.torch_shape == (8, 4, 8, 8) and report.first.keras_shape == (8, 10, 10, 4)


def test_42_keras_batch_norm_left_at_its_default_momentum():
    default_momentum = lambda: layers.BatchNormalization(epsilon=1e-5)  # noqa: E731 - momentum 0.99
    report = compare(TorchBlock, keras_block(bn=default_momentum), (2, 8, 8))
    assert_diagnosed(report, "bn", 42)


def test_17_adam_beta_2_that_differs():
    def torch_adam(params):
        return KerasRuleAdam(params, lr=2e-4, betas=(0.5, 0.999), epsilon=1e-7)

    def keras_adam():  # the WGAN-GP recipe's beta_2 on one side only
        return keras.optimizers.Adam(2e-4, beta_1=np.float64(0.5), beta_2=np.float64(0.9), epsilon=1e-7)

    report = compare(TorchDCGAN, keras_dcgan, (4, 1, 1), loss="mse", optimizers=(torch_adam, keras_adam))
    assert report.first.section == "step" and ("beta_2", 0.999, 0.9) in report.optimizer_settings
    [finding] = report.findings
    assert finding.fixed and 17 in finding.pitfalls, report.text()


def test_16_torch_adam_against_keras_adam_diverge_in_the_step():
    def torch_adam(params):
        return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))

    def keras_adam():
        return keras.optimizers.Adam(2e-4, beta_1=0.5)

    report = compare(TorchDCGAN, keras_dcgan, (4, 1, 1), loss="mse", optimizers=(torch_adam, keras_adam))
    assert report.first.section == "step"
    assert ("epsilon", 1e-8, 1e-7) in report.optimizer_settings
    [finding] = report.findings
    assert finding.fixed and finding.pitfalls == [16], report.text()


# ---------------------------------------------------------------------------------------------- Command line


def keras_block_factory():
    return keras_block(act=layers.LeakyReLU)()


def test_the_command_marks_the_first_divergence_and_exits_1(capsys):
    assert main(["compare", f"{HERE}:TorchBlock", f"{HERE}:keras_block_factory", "--input", "2,8,8"]) == 1
    out = capsys.readouterr().out
    assert "act / leaky_re_lu" in out and "<- first" in out and "pitfall 3 (keras-leaky-default)" in out
    assert "Keras wrong: layers.LeakyReLU()  # negative_slope=0.3" in out
    assert out.strip().endswith("Keras LeakyReLU() default slope 0.3 where 0.2 is meant")


def test_the_command_exits_0_when_the_port_agrees_and_prints_json(capsys):
    arguments = ["compare", f"{HERE}:TorchDCGAN", f"{HERE}:keras_dcgan", "--input", "4,1,1", "--json"]
    assert main([*arguments, "--dtype", "float32", "--loss", "bce-logits"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["agrees"] and report["first_divergence"] is None and report["dtype"] == "float32"
    assert [p["paired_by"] for p in report["pairs"]] == ["order"] * 5
    assert {row["section"] for row in report["rows"]} == {"inference", "training", "gradients"}


class TorchTransposed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.ConvTranspose2d(2, 4, 4, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


def keras_uncropped():
    return sequential((4, 4, 2), layers.Conv2DTranspose(4, 4, strides=2))


def test_json_of_a_divergence_is_strict_json(capsys):
    arguments = ["compare", f"{HERE}:TorchTransposed", f"{HERE}:keras_uncropped", "--input", "2,4,4", "--json"]
    assert main(arguments) == 1

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    report = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert report["first_divergence"]["scaled"] == "inf" and not report["agrees"]
    [finding] = report["diagnosis"]
    assert finding["fixed"] and finding["pitfalls"][0]["slug"] == "transposed-padding-uncropped"
    assert finding["pitfalls"][0]["keras_wrong"].startswith("layers.Conv2DTranspose(c_out, 4, strides=2)")


def test_show_pairs_writes_a_mapping_file_that_pairs_back(capsys, tmp_path):
    arguments = ["compare", f"{HERE}:TorchDCGAN", f"{HERE}:keras_dcgan", "--input", "4,1,1"]
    assert main([*arguments, "--show-pairs"]) == 0
    text = capsys.readouterr().out
    mapping = pairing.read_mapping(text)
    assert mapping == {"main.conv1": "up1", "main.bn1": "norm1", "main.act1": "relu1", "main.conv2": "up2",
                       "main.out": "tanh"}
    (tmp_path / "pairs.txt").write_text(text)
    assert main([*arguments, "--pairs", str(tmp_path / "pairs.txt"), "--json"]) == 0
    assert {p["paired_by"] for p in json.loads(capsys.readouterr().out)["pairs"]} == {"given"}


def test_a_given_pair_overrides_the_order():
    """Two activations swapped by hand: the tanh paired with the ReLU diverges there."""
    report = compare(TorchDCGAN, keras_dcgan, (4, 1, 1), pairs={"main.act1": "tanh", "main.out": "relu1"})
    assert not report.agrees and first_layer(report) == "main.act1"
    assert {p.torch.name: p.how for p in report.pair.pairs}["main.out"] == "given"


# ---------------------------------------------------------------------------------------------- Usage errors


class TorchPReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.act = nn.PReLU()

    def forward(self, x):
        return self.act(self.conv(x))


def keras_prelu():
    return sequential((8, 8, 2), layers.Conv2D(2, 3, padding="same"), layers.PReLU())


def keras_conv():
    return sequential((8, 8, 2), layers.Conv2D(2, 3, padding="same"))


def torch_conv():
    return nn.Sequential(nn.Conv2d(2, 2, 3, padding=1))


@pytest.mark.parametrize(("torch_factory", "keras_factory", "shape", "message"), [
    (f"{HERE}:TorchPReLU", f"{HERE}:keras_conv", "2,8,8", "not supported: torch PReLU 'act'"),
    (f"{HERE}:torch_conv", f"{HERE}:keras_prelu", "2,8,8", "not supported: Keras PReLU"),
    ("no/such/file.py:Net", f"{HERE}:keras_conv", "2,8,8", "no such file no/such/file.py"),
    ("no_such_package.models:Net", f"{HERE}:keras_conv", "2,8,8", "does not import: ModuleNotFoundError"),
    (f"{HERE}:NoSuchNet", f"{HERE}:keras_conv", "2,8,8", "has no 'NoSuchNet'"),
    (f"{HERE}", f"{HERE}:keras_conv", "2,8,8", "expected path/to/file.py:callable"),
    (f"{HERE}:torch_conv", f"{HERE}:keras_conv", "3,8,8", "shapes do not fit: the torch model fails on --input 3,8,8"),
    (f"{HERE}:torch_conv", f"{HERE}:keras_conv", "2,4,4", "shapes do not fit: --input 2,4,4 is (8, 4, 4, 2)"),
    (f"{HERE}:torch_conv", f"{HERE}:keras_conv", "2,a", "--input '2,a': expected a shape"),
    (f"{HERE}:keras_conv", f"{HERE}:keras_conv", "2,8,8", "returned a Sequential, not a torch nn.Module"),
])
def test_usage_errors_are_one_line_and_exit_2(capsys, torch_factory, keras_factory, shape, message):
    assert main(["compare", torch_factory, keras_factory, "--input", shape]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.err.startswith("gan-parity compare: ") and message in captured.err, captured.err


def test_a_mapping_that_pairs_different_kinds_is_a_usage_error(capsys):
    arguments = ["compare", f"{HERE}:TorchDCGAN", f"{HERE}:keras_dcgan", "--input", "4,1,1"]
    assert main([*arguments, "--pair", "main.conv1=relu1"]) == 2
    assert "cannot pair torch 'main.conv1' (conv_transpose2d) with Keras 'relu1' (activation)" in \
        capsys.readouterr().err
    assert main([*arguments, "--pair", "main.nothing=relu1"]) == 2
    assert "no torch layer named 'main.nothing'" in capsys.readouterr().err
