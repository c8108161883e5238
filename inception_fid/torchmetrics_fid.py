"""The Inception FID through torchmetrics: the child process of inception_fid.frechet_inception_distance.

`python -m inception_fid.torchmetrics_fid REAL.npy FAKE.npy [BATCH]` prints one JSON line, {"fid": x} or
{"error": "..."}. Images are given to torchmetrics as uint8 (N, 3, H, W), grayscale repeated to three channels;
the metric resizes them to 299x299 itself.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from inception_fid import INSTALL


class MetricError(Exception):
    """The metric cannot run here; the message says what to install or do."""


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
        raise MetricError(f"--inception needs torchmetrics: {INSTALL}") from None
    try:
        metric = FrechetInceptionDistance(feature=feature)
    except ModuleNotFoundError:
        raise MetricError(f"--inception needs torch-fidelity: {INSTALL}") from None
    except (OSError, RuntimeError) as error:  # the weights could not be fetched
        raise MetricError(f"cannot load the Inception weights ({error}); the first --inception run needs internet "
                          "access to download them") from None
    with torch.no_grad():
        for images, is_real in ((real, True), (fake, False)):
            for start in range(0, len(images), batch_size):
                metric.update(inception_input(images[start : start + batch_size]), real=is_real)
        return float(metric.compute())


def main(argv: list[str]) -> int:
    real, fake = (np.load(path) for path in argv[:2])
    batch_size = int(argv[2]) if len(argv) > 2 else 100
    try:
        answer = {"fid": frechet_inception_distance(real, fake, batch_size=batch_size)}
    except MetricError as error:
        answer = {"error": str(error)}
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
