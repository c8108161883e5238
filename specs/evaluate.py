"""`gan-torch eval` and `gan-keras eval`: a checkpoint's samples scored by the framework-neutral metric.

One command for both backends: each passes its checkpoint module (torch_impl/checkpoint.py or
keras_impl/checkpoint.py), whose `load_trained` reads the checkpoint and whose `generate` draws the samples; the
scoring is specs/quality.py's (FID, KID and class accuracy on a classifier's features), so samples of either backend
are scored by the same code and the same weights. `--inception` adds the standard Inception FID
(inception_fid/, which runs it in a process of its own).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np

import inception_fid
from specs import quality
from specs.datasets import to_uint8
from specs.runs import SampleInputs

BATCH = 250  # samples generated at once


def generate_images(generate, trainer, inputs: SampleInputs) -> np.ndarray:
    """uint8 (N, H, W, C) images from `generate(trainer, inputs)` (a backend's), BATCH at a time."""
    return np.concatenate([to_uint8(generate(trainer, part)) for part in quality.chunks(inputs, BATCH)])


def evaluate(model: str, checkpoint: Path, request: quality.EvalRequest, backend: ModuleType,
             device: str = "auto") -> int:
    """Score the samples of `checkpoint` as `request` asks; `backend`: the backend's checkpoint module; `device`:
    a --device word, where the samples are drawn."""
    request.check()
    trainer, meta, _ = backend.load_trained(model, checkpoint, device)
    inputs = quality.eval_inputs(trainer.config, request.seed, request.num)
    images = generate_images(backend.generate, trainer, inputs)
    inception = inception_fid.frechet_inception_distance if request.inception else None
    result = quality.evaluate(meta, trainer.config, images, inputs, request, inception)
    print(json.dumps(result) if request.as_json else quality.report(result))
    return 0
