"""Command line of the PyTorch backend (`gan-torch`, `python -m torch_impl`): train, sample, eval and export.

The words are specs/cli.py's, shared with keras_impl/train.py (mirror). The commands are torch_impl/commands.py's
and the files torch_impl/checkpoint.py's, imported once the arguments are parsed: `gan-torch --help` and a mistyped
flag answer without loading torch, and where torch is missing the command says which extra installs it.
Before torch loads, its OpenMP threads are told to sleep, not spin, while they wait (OMP_WAIT_POLICY=PASSIVE, unless
the environment sets it): on a machine with other work, spinning threads take the cores from the thread they wait
for, and a digits DCGAN step with two threads took 3.3-4.5 s against 0.24-0.60 s with sleeping threads on a loaded
2-core machine (README, Speed); TensorFlow's own thread pool does not spin.
"""

from __future__ import annotations

import argparse
import os
import sys

from specs import cli

BACKEND = "torch"
OPENMP = {"OMP_WAIT_POLICY": "PASSIVE"}  # read by torch's OpenMP runtime as torch loads: see above


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, BACKEND, load_backend)


def load_backend(args: argparse.Namespace) -> tuple:
    """This backend's commands and checkpoint modules (imported now: torch loads here, with OPENMP's settings
    where the environment has none)."""
    for key, value in OPENMP.items():
        os.environ.setdefault(key, value)
    from torch_impl import checkpoint, commands

    return commands, checkpoint


if __name__ == "__main__":
    sys.exit(main())
