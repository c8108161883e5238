"""`gan-keras eval`: a checkpoint's samples scored by the framework-neutral metric (mirror: torch_impl/evaluate.py).

The checkpoint is read and the samples drawn with keras_impl/train.py's own functions; the scoring is
specs/quality.py's (FID, KID and class accuracy on a classifier's features), so samples of either backend are
scored by the same code and the same weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_impl.train import generate, load_trained
from specs import quality
from specs.datasets import to_uint8
from specs.runs import SampleInputs

BATCH = 250  # samples generated at once

# ---------------------------------------------------------------------------------------------------- Samples


def generate_images(trainer, inputs: SampleInputs) -> np.ndarray:
    """uint8 (N, H, W, C) images from the generator in inference mode, BATCH at a time."""
    return np.concatenate([to_uint8(generate(trainer, part)) for part in quality.chunks(inputs, BATCH)])


# --------------------------------------------------------------------------------------------------- Command


def evaluate(model: str, checkpoint: Path, request: quality.EvalRequest) -> int:
    trainer, meta, _ = load_trained(model, checkpoint)
    inputs = quality.eval_inputs(trainer.config, request.seed, request.num)
    images = generate_images(trainer, inputs)
    inception = None
    if request.inception:
        from torch_impl.inception import frechet_inception_distance as inception
    result = quality.evaluate(meta, trainer.config, images, inputs, request, inception)
    print(json.dumps(result) if request.as_json else quality.report(result))
    return 0
