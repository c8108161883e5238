"""Where and in what precision the PyTorch backend computes: --device and --precision (mirror: keras_impl/devices.py).

Devices: the words of specs/cli.py mapped onto torch.device. `auto` is CUDA when torch sees a GPU, else the CPU
(mps only when asked for); under torchrun every process takes the GPU of its LOCAL_RANK. A device the machine lacks
is a RunError (one line, exit status 2). The trainers build their weights on the CPU (the same initial weights on
every device) and move to the device; batches, noise and samples are created there (noise is drawn on the CPU from
the trainer's seeded generator, so every device trains on the same z, and checkpoints resume on any device).

Precision: `precision_policy` is the one place a run's precision is set, before the trainer is built, as Keras's
global dtype policy is. Networks built under "bfloat16" or "float16" compute their layers in that dtype under
`torch.autocast` in training mode (loop.Network), keep float32 weights, and hand back float32 outputs, so losses,
the gradient penalty (its inner gradient is taken with respect to float32 images) and logged values are float32;
samples, eval and export compute in float32. "float16" adds dynamic loss scaling (optim.Adam.scale_loss and a
torch.amp.GradScaler per optimiser, as keras.optimizers.LossScaleOptimizer); bfloat16 has float32's exponent range
and needs none.
"""

from __future__ import annotations

import contextlib
import os

import torch

from specs.runs import RunError

# ------------------------------------------------------------------------------------------------------ Devices


def select_device(word: str = "auto") -> torch.device:
    """The torch.device that --device names: auto, cpu, cuda, cuda:N or mps; RunError when the machine lacks it."""
    if word == "auto":
        word = "cuda" if torch.cuda.is_available() else "cpu"
    if word == "cpu":
        return torch.device("cpu")
    if word == "mps":
        if not torch.backends.mps.is_available():
            raise RunError("--device mps: torch sees no Apple GPU (MPS) here; use --device cpu")
        return torch.device("mps")
    if not torch.cuda.is_available():
        build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "built for the CPU only"
        raise RunError(f"--device {word}: torch sees no CUDA GPU here (this torch is {build}); use --device cpu "
                       f"or auto")
    local = os.environ.get("LOCAL_RANK")  # torchrun: one GPU per process on each machine
    if word == "cuda":
        index = int(local) if local is not None else 0
    elif local is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RunError(f"--device {word}: under torchrun every process takes the GPU of its LOCAL_RANK; "
                       f"use --device cuda (and CUDA_VISIBLE_DEVICES to choose the GPUs)")
    else:
        index = int(word.split(":")[1])
    count = torch.cuda.device_count()
    if index >= count:
        raise RunError(f"--device {word}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
                       + (f" (LOCAL_RANK {local})" if local is not None else ""))
    torch.cuda.set_device(index)  # the current device: NCCL and torch.cuda calls without an index use it
    return torch.device("cuda", index)


def describe_device(device: torch.device) -> str:
    """The device as a log line names it: cuda:0 (NVIDIA H200), cpu (2 threads)."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    return str(device)


# ---------------------------------------------------------------------------------------------------- Precision

COMPUTE_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
_policy = ["float32"]  # the precision of the networks and optimisers built now (precision_policy)


@contextlib.contextmanager
def precision_policy(precision: str):
    """Networks and optimisers built inside compute in `precision` (float32, bfloat16, float16)."""
    if precision not in COMPUTE_DTYPES:
        raise RunError(f"--precision {precision}: expected one of {', '.join(COMPUTE_DTYPES)}")
    _policy.append(precision)
    try:
        yield
    finally:
        _policy.pop()


def compute_dtype() -> torch.dtype | None:
    """The dtype the layers of a network built now compute in under autocast; None: their weights' dtype."""
    return COMPUTE_DTYPES[_policy[-1]]


def loss_scaling() -> bool:
    """Whether an optimiser built now scales the loss: float16 only (its small range underflows gradients)."""
    return _policy[-1] == "float16"


def exact_float32() -> None:
    """float32 matmuls and convolutions in full float32 on CUDA (TF32 off), as the parity checks need: on Ampere
    and newer GPUs TF32 keeps 10 mantissa bits, so results would differ from the CPU's and Keras's by about 1e-3."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
