"""What the command lines say, framework-free: their messages through `logging`, and the native libraries' notices.

- `setup(prog, quiet, verbose)`: every message of gan-torch and gan-keras goes through the loggers of this project's
  packages (`logging.getLogger(__name__)`), to stderr, as `gan-torch: ...`. Default: INFO (what a run wrote, where);
  `--quiet`: warnings and errors only; `--verbose`: DEBUG too. Other libraries' Python loggers are left alone.
- `native_notices_dropped()`: while a framework's native libraries load, file descriptor 2 is read instead of
  shown, and what they wrote goes back to stderr less their informational notices: the absl banner "All log
  messages before absl::InitializeLog() is called are written to STDERR", INFO lines (`I0000 ... file.cc:N] ...`:
  oneDNN is on, no CUDA driver) and the CPU-instructions note. TensorFlow prints these before its own log level
  (TF_CPP_MIN_LOG_LEVEL) applies. Every other line -- a warning, an error, a Python traceback -- is written back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile

PACKAGES = ("specs", "torch_impl", "keras_impl", "inception_fid")  # the loggers the command lines configure
NATIVE_NOTICES = (
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    re.compile(r"I\d{4} [\d:.]+ +\d+ [\w.-]+:\d+\] "),  # absl's INFO line: I<mmdd> <time> <thread> <file:line>]
    re.compile(r"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$"),
)


class StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is when a message is emitted (tests redirect it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler assigns it; the property always answers sys.stderr
        pass


def setup(prog: str, quiet: bool = False, verbose: bool = False) -> None:
    """Send this project's messages to stderr as `<prog>: <message>` at the level the flags ask for."""
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter(f"{prog}: %(message)s"))
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    for name in PACKAGES:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False


def is_native_notice(line: str) -> bool:
    return any(pattern.match(line.rstrip("\n")) for pattern in NATIVE_NOTICES)


@contextlib.contextmanager
def native_notices_dropped(enabled: bool = True):
    """Within: file descriptor 2 goes to a temporary file; on leaving (normally or by an exception), what was
    written there goes back to stderr without NATIVE_NOTICES."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to borrow: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if not is_native_notice(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
