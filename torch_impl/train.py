"""Command line of the PyTorch backend (`gan-torch`, `python -m torch_impl`): train, sample, eval and export.

The words are specs/cli.py's, shared with keras_impl/train.py (mirror). The commands are torch_impl/commands.py's
and the files torch_impl/checkpoint.py's, imported once the arguments are parsed: `gan-torch --help` and a mistyped
flag answer without loading torch, and where torch is missing the command says which extra installs it.
"""

from __future__ import annotations

import argparse
import sys

from specs import cli

BACKEND = "torch"


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, BACKEND, load_backend)


def load_backend(args: argparse.Namespace) -> tuple:
    """This backend's commands and checkpoint modules (imported now: torch loads here)."""
    from torch_impl import checkpoint, commands

    return commands, checkpoint


if __name__ == "__main__":
    sys.exit(main())
