"""Where and in what precision the Keras backend computes: --device and --precision (mirror: torch_impl/devices.py).

Devices: the words of specs/cli.py mapped onto TensorFlow's device placement. TensorFlow places every op on its
first GPU by itself when it sees one, so `auto` changes nothing; `cpu` hides the GPUs, `cuda:N` all GPUs but N
(tf.config.set_visible_devices, before TensorFlow initialises its devices: the first thing a command does);
`mps` is the Apple GPU that the tensorflow-metal plugin shows as a GPU. A device the machine lacks is a RunError
(one line, exit status 2). With --strategy mirrored the replicas are the visible GPUs.

Precision: `precision_policy` is the one place a run's precision is set, before the trainer is built: Keras's
global dtype policy (float32, mixed_bfloat16, mixed_float16), which every layer and optimiser built under it keeps.
Under a mixed policy the layers compute in bfloat16 or float16 with float32 variables, the networks' last layers in
float32 (so losses and the gradient penalty are float32), and mixed_float16 wraps each Adam in a
keras.optimizers.LossScaleOptimizer; bfloat16 has float32's exponent range and needs none.
"""

from __future__ import annotations

import contextlib
import sys

import keras

from specs.runs import RunError

BACKEND = keras.backend.backend()
if BACKEND == "tensorflow":
    import tensorflow as tf  # its device placement, set after it loads

# ------------------------------------------------------------------------------------------------------ Devices


def select_device(word: str = "auto") -> str:
    """Make --device the device TensorFlow computes on: auto, cpu, cuda, cuda:N or mps; the TensorFlow device
    name it places ops on. RunError when the machine lacks it or TensorFlow has started on other devices.
    On JAX and PyTorch the device was named to the framework as it loaded (keras_impl/train.py): one value is
    placed there, RunError when that fails."""
    if BACKEND != "tensorflow":
        return _placed(word)
    gpus = tf.config.list_physical_devices("GPU")  # reads the machine; does not initialise the devices
    if word == "auto":
        return "/GPU:0" if gpus else "/CPU:0"
    if word == "mps" and sys.platform != "darwin":
        raise RunError("--device mps: the Apple GPU exists on macOS only (tensorflow-metal); use --device cpu")
    if word != "cpu" and not gpus:
        kind = "the tensorflow-metal plugin's GPU" if word == "mps" else "a CUDA GPU"
        cuda = "built with CUDA" if tf.test.is_built_with_cuda() else "built for the CPU only"
        raise RunError(f"--device {word}: TensorFlow sees no GPU here (it looks for {kind}; this TensorFlow is "
                       f"{cuda}); use --device cpu or auto")
    index = int(word.split(":")[1]) if word.startswith("cuda:") else 0
    if word != "cpu" and index >= len(gpus):
        raise RunError(f"--device {word}: this machine has {len(gpus)} GPU(s), cuda:0 to cuda:{len(gpus) - 1}")
    visible = [] if word == "cpu" else [gpus[index]]
    try:
        tf.config.set_visible_devices(visible, "GPU")
    except RuntimeError:  # TensorFlow has set up its devices already (another command ran in this process)
        raise RunError(f"--device {word}: TensorFlow has started on other devices in this process; run the "
                       f"command in a new process") from None
    return "/CPU:0" if word == "cpu" else "/GPU:0"


def _placed(word: str) -> str:
    """The device Keras's JAX or PyTorch backend computes on (as its framework names it), once one value is there."""
    try:
        value = keras.ops.zeros((1,))
    except Exception as error:  # the framework's own error for a device it cannot open
        reason = next(iter(str(error).splitlines()), "") or "it found no such device"
        raise RunError(f"--device {word}: Keras's {BACKEND} backend cannot compute there ({reason[:160]}); use "
                       "--device cpu or auto") from None
    device = str(getattr(value, "device", "cpu"))
    if word not in ("auto", "cpu") and "cpu" in device.lower():
        raise RunError(f"--device {word}: Keras's {BACKEND} backend sees no such device here (it computes on "
                       f"{device}); use --device cpu or auto")
    return device


def describe_device(device: str) -> str:
    """The device as a log line names it: /GPU:0 (NVIDIA H200), /CPU:0."""
    if BACKEND != "tensorflow":
        return f"{device} (Keras on {BACKEND})"
    if device.startswith("/GPU"):
        gpu = tf.config.get_visible_devices("GPU")[0]
        return f"{device} ({tf.config.experimental.get_device_details(gpu).get('device_name', 'GPU')})"
    return device


# ---------------------------------------------------------------------------------------------------- Precision

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@contextlib.contextmanager
def precision_policy(precision: str):
    """Networks and optimisers built inside compute in `precision` (float32, bfloat16, float16): Keras's global
    dtype policy, set for the building only (each layer keeps the policy it was built with)."""
    if precision not in POLICIES:
        raise RunError(f"--precision {precision}: expected one of {', '.join(POLICIES)}")
    policy = keras.config.dtype_policy()
    if precision != "float32":  # float32 keeps the policy in force (the float64 parity checks set theirs)
        keras.config.set_dtype_policy(POLICIES[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)


def compute_dtype() -> str:
    """The dtype the layers of a network built now compute in."""
    return keras.config.dtype_policy().compute_dtype


def loss_scaling() -> bool:
    """Whether an optimiser built now scales the loss: under mixed_float16 only."""
    return keras.config.dtype_policy().name == "mixed_float16"


def exact_float32() -> None:
    """float32 matmuls and convolutions in full float32 on GPUs (TF32 off), as the parity checks need: on Ampere
    and newer GPUs TensorFlow uses TF32 by default, which keeps 10 mantissa bits (results differ by about 1e-3).
    Keras's PyTorch backend follows torch_impl's switch (one torch); JAX's GPU matmuls are not switched here."""
    if BACKEND == "tensorflow":
        tf.config.experimental.enable_tensor_float_32_execution(False)
