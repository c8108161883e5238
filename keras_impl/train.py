"""Command line of the Keras backend (`gan-keras`, `python -m keras_impl`): train, sample, eval and export.

The words are specs/cli.py's, shared with torch_impl/train.py (mirror). The commands are keras_impl/commands.py's
and the files keras_impl/checkpoint.py's, imported once the arguments are parsed: `gan-keras --help` and a mistyped
flag answer without starting TensorFlow, and where TensorFlow or Keras is missing the command says which extra
installs it. `--backend tensorflow|jax|torch` picks the Keras backend (KERAS_BACKEND, set before Keras is imported;
default: the environment's KERAS_BACKEND, else tensorflow). Unless --verbose, TensorFlow's native log stays out
of a run: TF_CPP_MIN_LOG_LEVEL=3 (when the environment does not set it), and the notices its libraries print
while they load, before that level applies (specs/logs.py), are dropped; every Python exception and warning
still shows.
"""

from __future__ import annotations

import argparse
import os
import sys

from specs import cli, logs
from specs.runs import RunError

BACKEND = "keras"


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, BACKEND, load_backend)


def load_backend(args: argparse.Namespace) -> tuple:
    """This backend's commands and checkpoint modules (imported now: Keras and its backend's framework start here),
    on the Keras backend that --backend or KERAS_BACKEND names (`args.backend` is set to it)."""
    args.backend = getattr(args, "backend", None) or os.environ.get("KERAS_BACKEND") or "tensorflow"
    if args.backend not in cli.KERAS_BACKENDS:
        raise RunError(f"KERAS_BACKEND={args.backend}: gan-keras trains on {', '.join(cli.KERAS_BACKENDS)}; "
                       "choose one with --backend")
    running = sys.modules.get("keras")
    if running is not None and running.backend.backend() != args.backend:  # a process holds one Keras backend
        raise RunError(f"this process already runs Keras on {running.backend.backend()}; run gan-keras --backend "
                       f"{args.backend} in a process of its own")
    os.environ["KERAS_BACKEND"] = args.backend  # read once, when Keras is imported
    os.environ.update(_device_environment(getattr(args, "device", "auto"), args.backend))
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # read by TensorFlow's native code as it loads
    with logs.native_notices_dropped(enabled=not args.verbose):
        from keras_impl import checkpoint, commands

    return commands, checkpoint


def _device_environment(word: str, backend: str) -> dict[str, str]:
    """What JAX and Keras's PyTorch backend read as they load to compute on the device --device names (TensorFlow's
    placement is set after it loads: keras_impl/devices.py); keras_impl/devices.py then checks the device is there."""
    if backend == "tensorflow" or word == "auto":
        return {}
    if word == "mps" and backend == "jax":
        raise RunError("--device mps: JAX has no Apple GPU backend; use --backend torch or tensorflow, or --device cpu")
    kind = word.split(":")[0]
    environment = {"jax": {"JAX_PLATFORMS": kind}, "torch": {"KERAS_TORCH_DEVICE": kind}}[backend]
    if ":" in word:
        environment["CUDA_VISIBLE_DEVICES"] = word.split(":")[1]  # GPU N, which the framework then calls its first
    return environment


if __name__ == "__main__":
    sys.exit(main())
