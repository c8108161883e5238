"""The parity layer on each Keras backend: a process holds one, so `--keras-backend all` starts one per backend.

Keras reads KERAS_BACKEND once, when it is imported, and cannot switch afterwards. `gan-parity check`, `pitfalls`,
`data` and `convert` take `--keras-backend tensorflow|jax|torch|all` (default: the environment's KERAS_BACKEND,
else tensorflow):
- one backend: set KERAS_BACKEND before Keras is imported and run in this process, or, when this process already
  runs Keras on another backend (a test, a notebook), run the command in a child process with KERAS_BACKEND set;
- all: one child process per backend, each asked for JSON; the parent merges their rows, each marked with its
  `keras_backend`, into one table (a child that fails to answer is a failing row naming its last error line).
torch is imported before TensorFlow in every process that loads both (parity/import_order.py, which the parity
package runs on import); JAX and Keras's torch backend need no order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

KERAS_BACKENDS = ("tensorflow", "jax", "torch")
CHOICES = (*KERAS_BACKENDS, "all")


def requested(argv: list[str]) -> str | None:
    """The value of --keras-backend in `argv` (either spelling), or None."""
    for index, word in enumerate(argv):
        if word == "--keras-backend" and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith("--keras-backend="):
            return word.split("=", 1)[1]
    return None


def running() -> str:
    """The Keras backend of this process: Keras's own answer once it is imported, else the one it will load."""
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return keras.backend.backend()
    return os.environ.get("KERAS_BACKEND") or "tensorflow"


def choose(argv: list[str]) -> list[str] | None:
    """Before Keras is imported: the backends that must run in child processes (None: run here). Sets
    KERAS_BACKEND for this process when one backend is asked for and Keras is not imported yet."""
    backend = requested(argv)
    if backend is None or backend not in CHOICES:
        return None  # the parser answers a wrong value
    if backend == "all":
        return list(KERAS_BACKENDS)
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend
        return None
    return None if running() == backend else [backend]


def with_backend(argv: list[str], backend: str) -> list[str]:
    """`argv` with its --keras-backend value replaced by `backend`."""
    out, skip = [], False
    for index, word in enumerate(argv):
        if skip:
            skip = False
            continue
        if word == "--keras-backend":
            skip = index + 1 < len(argv)
            continue
        if not word.startswith("--keras-backend="):
            out.append(word)
    return [*out, "--keras-backend", backend]


def child(argv: list[str], backend: str, capture: bool) -> subprocess.CompletedProcess:
    """`gan-parity argv` on `backend`, in a process of its own."""
    environment = os.environ | {"KERAS_BACKEND": backend}
    command = [sys.executable, "-m", "parity", *with_backend(argv, backend)]
    return subprocess.run(command, env=environment, text=True, capture_output=capture)


def json_rows(argv: list[str], backends: list[str], failed_row) -> tuple[list[dict], int]:
    """The JSON rows of `gan-parity argv --json` on each backend, each marked with its keras_backend, and the worst
    exit status; `failed_row(backend, why)` stands for the rows of a child that gave none."""
    rows, status = [], 0
    for backend in backends:
        done = child([*argv, "--json"] if "--json" not in argv else argv, backend, capture=True)
        sys.stderr.write(done.stderr)
        status = max(status, done.returncode)
        try:
            answer = json.loads(done.stdout)
        except json.JSONDecodeError:
            last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            rows.append(failed_row(backend, f"the {backend} process gave no result: {last}"))
            status = max(status, 1)
            continue
        rows += [row | {"keras_backend": backend} for row in answer]
    return rows, status


def passthrough(argv: list[str], backends: list[str]) -> int:
    """`gan-parity argv` on each backend in turn, its output shown as it comes; the worst exit status."""
    status = 0
    for backend in backends:
        print(f"== Keras backend: {backend}", flush=True)
        status = max(status, child(argv, backend, capture=False).returncode)
    return status
