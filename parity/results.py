"""What every parity check returns, and the one way two tensors are compared (parity/checks.py and its neighbours).

A check reports the max abs diff, and judges the max scaled diff: per tensor, max |torch - keras| divided by
max(1, max |keras|), i.e. absolute for tensors within [-1, 1] and relative to the tensor's magnitude beyond.
NaN or inf positions must match exactly; a NaN against a number fails.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras
import numpy as np
import torch


@dataclass
class CheckResult:
    name: str  # the check's name (parity/checks.py CHECKS)
    max_abs_diff: float  # worst |torch - keras| over every compared tensor (inf when NaN positions differ)
    max_scaled_diff: float  # worst max|torch - keras| / max(1, max|keras|) of a tensor: what the tolerance judges
    tolerance: float
    worst: str  # the tensor or field where the worst scaled difference was found
    compared: int  # number of tensors or fields compared

    @property
    def passed(self) -> bool:
        return self.max_scaled_diff <= self.tolerance

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"passed": self.passed}


def failed(name: str, tolerance: float, why: str) -> CheckResult:
    """The result of a check that could not compare anything, e.g. two networks that do not convert."""
    return CheckResult(name, float("inf"), float("inf"), tolerance, why, 0)


def nchw_to_nhwc(array: np.ndarray) -> np.ndarray:
    """torch layout to Keras layout for image tensors; other ranks pass unchanged."""
    return array.transpose(0, 2, 3, 1) if array.ndim == 4 else array


def diffs(expected: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """(max abs diff, max scaled diff) over finite entries; both inf when shapes or NaN/inf positions differ."""
    expected, actual = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
    if expected.shape != actual.shape or not np.array_equal(np.isnan(expected), np.isnan(actual)):
        return float("inf"), float("inf")
    infinite = np.isinf(expected) | np.isinf(actual)
    if not np.array_equal(expected[infinite], actual[infinite]):
        return float("inf"), float("inf")
    finite = ~(np.isnan(expected) | infinite)
    error = float(np.max(np.abs(expected[finite] - actual[finite]), initial=0.0))
    return error, error / max(1.0, float(np.max(np.abs(actual[finite]), initial=0.0)))


def worst_of(name: str, tolerance: float, rows: list[tuple[str, float, float]]) -> CheckResult:
    """One result over (label, abs diff, scaled diff) rows: the largest of each; `worst` names the first row with
    the largest scaled diff."""
    worst_abs, worst_scaled, worst_label = 0.0, 0.0, ""
    for label, abs_diff, scaled_diff in rows:
        worst_abs = max(worst_abs, abs_diff)
        if scaled_diff > worst_scaled or not worst_label:
            worst_scaled, worst_label = scaled_diff, label
    return CheckResult(name, worst_abs, worst_scaled, tolerance, worst_label, len(rows))


def compare(name: str, tolerance: float, pairs: list[tuple[str, np.ndarray, np.ndarray]],
            finite: bool = False) -> CheckResult:
    """One result over (label, torch value, Keras value) pairs given in the same layout; with `finite`, a NaN or
    inf even at the same position fails (a diverged trajectory proves nothing)."""
    rows = []
    for label, expected, actual in pairs:
        abs_diff, scaled_diff = diffs(expected, actual)
        if finite and not (np.all(np.isfinite(expected)) and np.all(np.isfinite(actual))):
            abs_diff, scaled_diff, label = float("inf"), float("inf"), f"{label} (not finite)"
        rows.append((label, abs_diff, scaled_diff))
    return worst_of(name, tolerance, rows)


def to_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return keras.ops.convert_to_numpy(value)


TORCH_DEVICE = [torch.device("cpu")]  # where the torch side of the checks computes (gan-parity check --device)


def to_torch(array: np.ndarray) -> torch.Tensor:
    """A numpy array as a torch tensor on the device the checks run on."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(TORCH_DEVICE[0])
