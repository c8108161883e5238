"""Shared test setup: torch (with torch._dynamo) is imported before any test module can import TensorFlow; runs
that several tests read are made once."""

import contextlib
import io

import pytest

from parity.import_order import torch_first

torch_first()


@pytest.fixture(scope="session")
def made_once(tmp_path_factory):
    """made_once(name, train): the folder of the finished run that `train(out)` makes (status 0), made once per
    session under `name`; read-only (copy it before changing it). What the run prints is kept out of the calling
    test's capsys."""
    runs = {}

    def get(name: str, train):
        if name not in runs:
            out = tmp_path_factory.mktemp(name) / "run"
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                status = train(out)
            assert status == 0, printed.getvalue()
            runs[name] = out
        return runs[name]

    return get
