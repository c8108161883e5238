"""Command line of the Keras backend (`gan-keras`, `python -m keras_impl`): train, sample, eval and export.

The words are specs/cli.py's, shared with torch_impl/train.py (mirror). The commands are keras_impl/commands.py's
and the files keras_impl/checkpoint.py's, imported once the arguments are parsed: `gan-keras --help` and a mistyped
flag answer without starting TensorFlow, and where TensorFlow or Keras is missing the command says which extra
installs it. Unless --verbose, TensorFlow's native log stays out of a run: TF_CPP_MIN_LOG_LEVEL=3 (when the
environment does not set it), and the notices its libraries print while they load, before that level applies
(specs/logs.py), are dropped; every Python exception and warning still shows.
"""

from __future__ import annotations

import os
import sys

from specs import cli, logs

BACKEND = "keras"


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, BACKEND, load_backend)


def load_backend(verbose: bool) -> tuple:
    """This backend's commands and checkpoint modules (imported now: TensorFlow starts here)."""
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # read by TensorFlow's native code as it loads
    with logs.native_notices_dropped(enabled=not verbose):
        from keras_impl import checkpoint, commands

    return commands, checkpoint


if __name__ == "__main__":
    sys.exit(main())
