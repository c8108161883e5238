"""The standard Inception FID for uint8 samples of either backend, framework-neutral: numpy in, a number out.

`gan-torch eval --inception` and `gan-keras eval --inception` both call `frechet_inception_distance`. The metric
itself exists as a torch library (torchmetrics's FrechetInceptionDistance over torch-fidelity's port of the
TensorFlow Inception graph, inception_fid/torchmetrics_fid.py), so it runs in a child process of its own: the
calling process loads no framework for it (a Keras process never loads torch), and the two backends' samples reach
it as the same uint8 arrays. It needs `pip install 'gan-parity[inception]'` (torchmetrics, torch-fidelity, and with
them torch) and, the first time, internet access: torch-fidelity downloads the Inception weights (about 100 MB)
into torch's hub cache. Scores are comparable only between runs at the same image size and number of samples.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from specs.runs import RunError

INSTALL = "pip install 'gan-parity[inception]' (torchmetrics and torch-fidelity)"


def frechet_inception_distance(real: np.ndarray, fake: np.ndarray, batch_size: int = 100) -> float:
    """FID between uint8 image sets (N, H, W, C) on Inception's 2048-d pool features, computed by
    inception_fid/torchmetrics_fid.py in a child process; RunError with its one-line reason when it cannot."""
    for package in ("torch", "torchmetrics"):
        if importlib.util.find_spec(package) is None:
            raise RunError(f"--inception needs {package}: {INSTALL}")
    with tempfile.TemporaryDirectory(prefix="gan-parity-inception-") as folder:
        paths = [Path(folder) / "real.npy", Path(folder) / "fake.npy"]
        for path, images in zip(paths, (real, fake)):
            np.save(path, np.ascontiguousarray(images, dtype=np.uint8))
        root = str(Path(__file__).resolve().parents[1])  # where this package is, for the child to import it
        env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "inception_fid.torchmetrics_fid", *map(str, paths), str(batch_size)]
        process = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = process.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        detail = " ".join(process.stderr.split())[-300:] or f"exit status {process.returncode}"
        raise RunError(f"the Inception FID failed: {detail}") from None
    if "error" in answer:
        raise RunError(answer["error"])
    return float(answer["fid"])
