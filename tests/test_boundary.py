"""The import boundary: each backend stands alone (docs/design.md, "Each backend stands alone").

Every import in the source (module level or inside a function, `import x`, `from x import y`, and
`importlib.import_module("x")` / `__import__("x")` with a literal name) is read from the syntax tree:
- torch_impl imports nothing of keras_impl, TensorFlow, JAX or Keras;
- keras_impl imports nothing of torch_impl, and each framework that Keras runs on only where that Keras backend
  runs: torch in keras_impl/gradients_torch.py alone (the Keras torch backend's gradient code), jax in
  keras_impl/gradients_jax.py alone, TensorFlow in keras_impl/gradients_tensorflow.py or under an
  `if ... == "tensorflow":` (tf.data and tf.distribute, on the TensorFlow backend), and a backend's gradient module
  only under an `if ... == "<that backend>":` (keras_impl/gradients.py, which picks it);
- specs imports neither framework nor either backend (nor the parity layer);
- inception_fid's interface (its __init__) imports no framework; its child process (torchmetrics_fid.py) torch only.
Only parity, benchmarks and tests load both frameworks in one process (torch first: parity/import_order.py).
tests/test_standalone.py runs each command line with the other framework blocked, and tests/test_keras_backends.py
checks which frameworks a gan-keras run on JAX or PyTorch loads.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH = {"torch", "torchvision", "torchmetrics", "torch_fidelity", "functorch", "torch_impl"}
KERAS = {"tensorflow", "keras", "tf_keras", "tensorboard", "keras_impl", "jax", "jaxlib"}
FORBIDDEN = {  # the files, and the top-level packages they must not import anywhere
    "torch_impl/*.py": KERAS - {"tensorboard"},  # the tensorboard package writes torch's event files, without TF
    "keras_impl/*.py": TORCH - {"torch"},  # torch itself: by the rule of the Keras backends below
    "specs/*.py": TORCH | KERAS | {"parity"},
    "inception_fid/__init__.py": TORCH | KERAS,
    "inception_fid/torchmetrics_fid.py": KERAS,
}
# keras_impl: the framework each import loads, the file that may import it anywhere, and the backend under whose
# `if ... == "<backend>":` it may be imported elsewhere (None: nowhere else).
KERAS_BACKENDS = {
    "torch": ("keras_impl/gradients_torch.py", None),
    "jax": ("keras_impl/gradients_jax.py", None),
    "jaxlib": ("keras_impl/gradients_jax.py", None),
    "tensorflow": ("keras_impl/gradients_tensorflow.py", "tensorflow"),
    "keras_impl.gradients_torch": (None, "torch"),
    "keras_impl.gradients_jax": (None, "jax"),
    "keras_impl.gradients_tensorflow": (None, "tensorflow"),
}


def imported_modules(path: Path) -> list[tuple[int, str, set[str]]]:
    """(line, module, backends) for every import the file makes, wherever in the file it is; `backends`: the
    strings s of every `if x == s:` whose body holds the import."""
    found = []

    def walk(node, guards):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, guards) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, guards))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value, guards))
        if isinstance(node, ast.If):
            walk(node.test, guards)
            for child in node.body:
                walk(child, guards | equals(node.test))
            for child in node.orelse:
                walk(child, guards)
            return
        for child in ast.iter_child_nodes(node):
            walk(child, guards)

    walk(ast.parse(path.read_text(), str(path)), frozenset())
    return found


def equals(test: ast.expr) -> set[str]:
    """The string s of a test `x == s` (or `s == x`); nothing for any other test."""
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
        return {side.value for side in (test.left, test.comparators[0])
                if isinstance(side, ast.Constant) and isinstance(side.value, str)}
    return set()


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def violations(path: Path, forbidden: set[str]) -> list[str]:
    return [f"{relative(path)}:{line} imports {module}"
            for line, module, _ in imported_modules(path) if module.split(".")[0] in forbidden]


def backend_violations(path: Path) -> list[str]:
    """keras_impl: imports of a Keras backend's framework outside its own file and its guard."""
    found = []
    for line, module, guards in imported_modules(path):
        key = next((key for key in KERAS_BACKENDS if module == key or module.startswith(key + ".")), None)
        key = key or (module.split(".")[0] if module.split(".")[0] in KERAS_BACKENDS else None)
        if key is None:
            continue
        own_file, guard = KERAS_BACKENDS[key]
        if relative(path) != own_file and guard not in guards:
            where = f"only in {own_file}" if own_file else ""
            where += (" or " if own_file and guard else "") + (f'under `if ... == "{guard}":`' if guard else "")
            found.append(f"{relative(path)}:{line} imports {module} ({where})")
    return found


@pytest.mark.parametrize("pattern", list(FORBIDDEN))
def test_imports_stay_on_their_side(pattern):
    files = sorted(ROOT.glob(pattern))
    assert files, pattern
    found = [line for path in files for line in violations(path, FORBIDDEN[pattern])]
    assert not found, "\n".join(found)


def test_keras_impl_loads_each_framework_only_on_its_keras_backend():
    files = sorted(ROOT.glob("keras_impl/*.py"))
    found = [line for path in files for line in backend_violations(path)]
    assert not found, "\n".join(found)
    assert {Path(own).name for own, _ in KERAS_BACKENDS.values() if own} <= {path.name for path in files}


def test_the_walk_finds_every_kind_of_import(tmp_path):
    """The check can fail: each way of importing TensorFlow is found, at module level and inside a function."""
    (tmp_path / "pkg").mkdir()
    source = tmp_path / "pkg" / "mod.py"
    source.write_text("import os\nimport tensorflow as tf\nfrom keras import ops\n\n\ndef late():\n"
                      "    import tensorflow.summary\n    from keras.src import backend\n"
                      "    importlib.import_module('tensorflow')\n    __import__('keras')\n    import torch\n")
    assert [line.split(" imports ")[1] for line in violations(source, KERAS)] == [
        "tensorflow", "keras", "tensorflow.summary", "keras.src", "tensorflow", "keras"]
    assert violations(source, {"os"}) == ["mod.py:1 imports os"]


def test_the_backend_rule_reads_the_guards(tmp_path):
    """The rule can fail: an unguarded or wrongly guarded import of a Keras backend's framework is found; the
    guarded ones pass."""
    source = tmp_path / "mod.py"
    source.write_text('import keras\nBACKEND = "jax"\nif BACKEND == "tensorflow":\n    import tensorflow as tf\n'
                      'if BACKEND != "tensorflow":\n    import tensorflow\nelse:\n    import tensorflow.data\n'
                      'if BACKEND == "jax":\n    from keras_impl.gradients_jax import Trainer\n'
                      'elif BACKEND == "torch":\n    from keras_impl.gradients_torch import Trainer\n'
                      'else:\n    from keras_impl.gradients_jax import gradients\n'
                      'def late():\n    import torch\n    import jax.numpy\n')
    assert backend_violations(source) == [
        'mod.py:6 imports tensorflow (only in keras_impl/gradients_tensorflow.py or under `if ... == "tensorflow":`)',
        'mod.py:8 imports tensorflow.data (only in keras_impl/gradients_tensorflow.py or under '
        '`if ... == "tensorflow":`)',
        'mod.py:14 imports keras_impl.gradients_jax (under `if ... == "jax":`)',
        "mod.py:16 imports torch (only in keras_impl/gradients_torch.py)",
        "mod.py:17 imports jax.numpy (only in keras_impl/gradients_jax.py)",
    ]
