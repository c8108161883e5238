"""The import boundary: each backend stands alone (docs/design.md, "Each backend stands alone").

Every import in the source (module level or inside a function, `import x`, `from x import y`, and
`importlib.import_module("x")` / `__import__("x")` with a literal name) is read from the syntax tree:
- torch_impl imports nothing of keras_impl, TensorFlow or Keras;
- keras_impl imports nothing of torch_impl or torch (nor torch's libraries);
- specs imports neither framework nor either backend (nor the parity layer);
- inception_fid's interface (its __init__) imports no framework; its child process (torchmetrics_fid.py) torch only.
Only parity, benchmarks and tests load both frameworks in one process (torch first: parity/import_order.py).
tests/test_standalone.py runs each command line with the other framework blocked.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH = {"torch", "torchvision", "torchmetrics", "torch_fidelity", "functorch", "torch_impl"}
KERAS = {"tensorflow", "keras", "tf_keras", "tensorboard", "keras_impl"}
FORBIDDEN = {  # the files, and the top-level packages they must not import
    "torch_impl/*.py": KERAS - {"tensorboard"},  # the tensorboard package writes torch's event files, without TF
    "keras_impl/*.py": TORCH,
    "specs/*.py": TORCH | KERAS | {"parity"},
    "inception_fid/__init__.py": TORCH | KERAS,
    "inception_fid/torchmetrics_fid.py": KERAS,
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import the file makes, wherever in the file it is."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def violations(path: Path, forbidden: set[str]) -> list[str]:
    return [f"{path.relative_to(path.parents[1])}:{line} imports {module}"
            for line, module in imported_modules(path) if module.split(".")[0] in forbidden]


@pytest.mark.parametrize("pattern", list(FORBIDDEN))
def test_imports_stay_on_their_side(pattern):
    files = sorted(ROOT.glob(pattern))
    assert files, pattern
    found = [line for path in files for line in violations(path, FORBIDDEN[pattern])]
    assert not found, "\n".join(found)


def test_the_walk_finds_every_kind_of_import(tmp_path):
    """The check can fail: each way of importing TensorFlow is found, at module level and inside a function."""
    (tmp_path / "pkg").mkdir()
    source = tmp_path / "pkg" / "mod.py"
    source.write_text("import os\nimport tensorflow as tf\nfrom keras import ops\n\n\ndef late():\n"
                      "    import tensorflow.summary\n    from keras.src import backend\n"
                      "    importlib.import_module('tensorflow')\n    __import__('keras')\n    import torch\n")
    assert [line.split(" imports ")[1] for line in violations(source, KERAS)] == [
        "tensorflow", "keras", "tensorflow.summary", "keras.src", "tensorflow", "keras"]
    assert violations(source, {"os"}) == ["pkg/mod.py:1 imports os"]
