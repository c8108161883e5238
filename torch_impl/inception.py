"""The standard Inception FID, for uint8 samples of either backend: torchmetrics's FrechetInceptionDistance.

`gan-torch eval --inception` and `gan-keras eval --inception` both call this (the metric exists as a torch library:
torch-fidelity's port of the TensorFlow Inception graph; Keras samples reach it as the same uint8 arrays).
It needs `pip install 'gan-parity[inception]'` (torchmetrics, torch-fidelity) and, the first time, internet access:
torch-fidelity downloads the Inception weights (about 100 MB) into torch's hub cache. Images are given to it as
uint8 (N, 3, H, W), grayscale repeated to three channels; the metric resizes them to 299x299 itself.
Scores are comparable only between runs at the same image size and number of samples.
"""

from __future__ import annotations

import numpy as np
import torch

from specs.runs import RunError

INSTALL = "pip install 'gan-parity[inception]' (torchmetrics and torch-fidelity)"


def inception_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> uint8 (N, 3, H, W), a grayscale channel repeated three times."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return tensor.expand(-1, 3, -1, -1).contiguous() if tensor.shape[1] == 1 else tensor.contiguous()


def frechet_inception_distance(real: np.ndarray, fake: np.ndarray, feature: int | torch.nn.Module = 2048,
                               batch_size: int = 100) -> float:
    """FID between uint8 image sets (N, H, W, C); `feature`: Inception's 2048-d pool features, or any module that
    maps uint8 (N, 3, H, W) to (N, d) (tests use a small stand-in; nothing is downloaded then)."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError:
        raise RunError(f"--inception needs torchmetrics: {INSTALL}") from None
    try:
        metric = FrechetInceptionDistance(feature=feature)
    except ModuleNotFoundError:
        raise RunError(f"--inception needs torch-fidelity: {INSTALL}") from None
    except (OSError, RuntimeError) as error:  # the weights could not be fetched
        raise RunError(f"cannot load the Inception weights ({error}); the first --inception run needs internet "
                       "access to download them") from None
    with torch.no_grad():
        for images, is_real in ((real, True), (fake, False)):
            for start in range(0, len(images), batch_size):
                metric.update(inception_input(images[start : start + batch_size]), real=is_real)
        return float(metric.compute())
