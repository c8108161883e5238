"""The statistical checks: what each framework draws at random, compared by its distribution, never value by value.

  randomness       what each trainer draws itself when nothing is injected (z, label noise, alpha): same shapes,
                   and mean, std and 1/50/99 % quantiles of a large draw (the other checks inject randomness)
  initialization   two fresh trainers, nothing copied: every weight and statistic has the same distribution in
                   both (the other checks copy the torch weights into Keras first, so they cannot see it)
  dropout          every dropout layer in training mode, in both frameworks: the fraction of zeros is the
                   configured rate and the kept values are scaled by 1 / (1 - rate) (the other checks run the
                   training mode with rate 0, since masks never agree across frameworks)
Differences of statistics are judged in units of their sampling noise, which shrinks with the number of values: for
n values of pooled standard deviation s, a mean differs by about s sqrt(2 / n) between two samples of one
distribution, a std by s / sqrt(n), the q-quantile by s sqrt(2 q (1 - q) / n) / f_q, f_q the density at the quantile
(in units of 1 / s: the smaller of the normal's and the uniform's, which the initialisers draw from), and the
largest |w| by 1.3 s sqrt(2) / sqrt(2 ln 2n) (the normal case; a uniform's maximum varies far less).
Beyond 6 units is no sampling noise (a one-in-a-billion event for a normal statistic): fresh pairs of the three
models reach 1.3 to 3.4 units (seeds 0 to 5), N(0, 0.02) against Glorot-uniform reaches 94 (catalogue entry 23).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
from keras import layers
from torch import nn

from parity.results import CheckResult, compare, failed, nchw_to_nhwc, to_numpy, to_torch, worst_of

if TYPE_CHECKING:
    from parity.checks import Harness

RANDOMNESS_BATCH = 8192  # the batch size of the randomness check's draw: at least 16k values per tensor
RANDOMNESS_TOLERANCE = 0.05  # with >= 16k values the statistics' standard errors are below 0.01; U(0, 1) against
# N(0, 1) differs by 0.7
NOISE_UNITS = 6.0  # the initialization check's bound, in units of each statistic's sampling noise
QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
DROPOUT_VALUES = 1 << 16  # values pushed through each dropout layer: the fraction's standard error <= 0.002
DROPOUT_TOLERANCE = 0.01  # on the fraction of zeros and on the scale of the kept values

# -------------------------------------------------------------------------------------------------- Randomness


def draw_statistics(values: np.ndarray) -> np.ndarray:
    """Mean, standard deviation and the 1, 50 and 99 % quantiles of every value drawn."""
    values = np.asarray(values, np.float64).ravel()
    return np.array([values.mean(), values.std(), *np.quantile(values, (0.01, 0.5, 0.99))])


def check_randomness(h: Harness) -> CheckResult:
    """The randomness each trainer draws when none is injected: same shapes and the same distributions."""
    names = list(h.step_inputs())
    torch_draws = h.torch_trainer.sample_noise(RANDOMNESS_BATCH)
    keras_draws = h.keras_trainer.sample_noise(RANDOMNESS_BATCH)
    rows = []
    for name, torch_draw, keras_draw in zip(names, torch_draws, keras_draws):
        torch_draw, keras_draw = to_numpy(torch_draw), to_numpy(keras_draw)
        if torch_draw.shape != keras_draw.shape:
            rows.append((f"{name} shape {torch_draw.shape} vs {keras_draw.shape}", np.zeros(1), np.full(1, np.nan)))
            continue
        rows.append((f"{name} (mean, std, q01, q50, q99)", draw_statistics(torch_draw), draw_statistics(keras_draw)))
    return compare("randomness", RANDOMNESS_TOLERANCE, rows, finite=True)


# ---------------------------------------------------------------------------------------------- Initialization


def noise_units(size: int, pooled_std: float) -> np.ndarray:
    """The sampling noise of each statistic of `initial_statistics` between two samples of `size` values."""
    normal, uniform_density = NormalDist(), 1 / (2 * math.sqrt(3))  # densities at the quantile, in units of 1/std
    quantiles = [math.sqrt(2 * q * (1 - q)) / min(normal.pdf(normal.inv_cdf(q)), uniform_density) for q in QUANTILES]
    per_root_n = np.array([math.sqrt(2), 1.0, *quantiles]) / math.sqrt(size)  # mean, std, quantiles
    largest = 1.3 * math.sqrt(2) / math.sqrt(2 * math.log(2 * size))  # max |w| shrinks with sqrt(log n) only
    return pooled_std * np.array([*per_root_n, largest])


def initial_statistics(values: np.ndarray) -> np.ndarray:
    """Mean, std, the QUANTILES and max |w| of a tensor's values."""
    values = np.asarray(values, np.float64).ravel()
    return np.array([values.mean(), values.std(), *np.quantile(values, QUANTILES), np.abs(values).max()])


STATISTIC_NAMES = ("mean", "std", *(f"q{round(q * 100):02d}" for q in QUANTILES), "max |w|")


def distribution_row(label: str, torch_values: np.ndarray, keras_values: np.ndarray) -> tuple[str, float, float]:
    """(label naming the worst statistic, its abs diff, its diff in noise units) for one tensor."""
    torch_stats, keras_stats = initial_statistics(torch_values), initial_statistics(keras_values)
    gaps = np.abs(torch_stats - keras_stats)
    pooled = math.sqrt((torch_stats[1] ** 2 + keras_stats[1] ** 2) / 2)
    if np.asarray(torch_values).size == 1 and gaps.max() > 0:  # one draw on each side (a Dense(1)'s bias) tells
        return f"{label} (1 value on each side: too few to judge a distribution)", float(gaps.max()), 0.0  # nothing
    if pooled == 0:  # constants on both sides (zeros, ones): equal or not
        units = np.where(gaps == 0, 0.0, math.inf)
    else:
        units = gaps / noise_units(np.asarray(torch_values).size, pooled)
    worst = int(np.argmax(units))
    detail = f"{STATISTIC_NAMES[worst]}: torch {torch_stats[worst]:.4g}, Keras {keras_stats[worst]:.4g}"
    return f"{label} ({detail})", float(gaps.max()), float(units[worst])


def check_initialization(h: Harness) -> CheckResult:
    """Two fresh trainers (`h.copy` False): every tensor of the weight table compared by its distribution."""
    rows = [distribution_row(port.name, to_numpy(port.torch_tensor), to_numpy(port.keras_variable))
            for port in h.table]
    rows += [(f"not comparable: {problem}", math.inf, math.inf) for problem in h.problems]
    return worst_of("initialization", NOISE_UNITS, rows)


# ----------------------------------------------------------------------------------------------------- Dropout


def torch_dropouts(network: nn.Module) -> dict[str, nn.Module]:
    return {name: module for name, module in network.named_children()
            if isinstance(module, nn.modules.dropout._DropoutNd) or "dropout" in type(module).__name__.lower()}


def keras_dropouts(network) -> dict[str, layers.Layer]:
    return {layer.name: layer for layer in network.layers if isinstance(layer, layers.Dropout)}


def dropped(values: np.ndarray) -> tuple[float, float]:
    """(fraction of zeros, mean of the kept values) of a dropout layer's output for an input of ones."""
    values = np.asarray(values, np.float64).ravel()
    kept = values[values != 0]
    return float(np.mean(values == 0)), float(kept.mean()) if kept.size else math.inf


def check_dropout(h: Harness) -> CheckResult:
    """Every dropout layer in training mode, fed ones of its input's shape (batch grown to DROPOUT_VALUES values)."""
    rate = h.config.dropout
    expected = np.array([rate, 1 / (1 - rate)])
    rows = []
    for network, torch_net, keras_net in h.networks():
        torch_layers, keras_layers = torch_dropouts(torch_net), keras_dropouts(keras_net)
        for name in list(torch_layers) + [name for name in keras_layers if name not in torch_layers]:
            label = f"{network}.{name}"
            if name not in torch_layers or name not in keras_layers:
                side = "torch" if name in torch_layers else "Keras"
                rows.append((f"{label}: dropout in {side} only", np.zeros(1), np.full(1, np.nan)))
                continue
            layer = keras_layers[name]
            shape = tuple(layer.input.shape[1:])  # Keras layout: (H, W, C) or (features,)
            batch = max(1, math.ceil(DROPOUT_VALUES / math.prod(shape)))
            ones = np.ones((batch, *shape), dtype=h.dtype)
            torch_layers[name].train()
            torch_input = to_torch(np.moveaxis(ones, -1, 1) if ones.ndim == 4 else ones)
            torch_out = nchw_to_nhwc(to_numpy(torch_layers[name](torch_input)))
            keras_out = to_numpy(layer(ones, training=True))
            torch_stats, keras_stats = np.array(dropped(torch_out)), np.array(dropped(keras_out))
            rows.append((f"{label} (zero fraction, kept scale)", torch_stats, keras_stats))
            rows.append((f"{label} torch against the configured rate {rate}", torch_stats, expected))
            rows.append((f"{label} Keras against the configured rate {rate}", keras_stats, expected))
    if not rows and rate == 0:
        return CheckResult("dropout", 0.0, 0.0, DROPOUT_TOLERANCE, "no dropout layer, and the configured rate is 0", 0)
    if not rows:
        return failed("dropout", DROPOUT_TOLERANCE, f"no dropout layer, but the configured rate is {rate}")
    return compare("dropout", DROPOUT_TOLERANCE, rows, finite=True)
