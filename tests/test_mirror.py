"""The mirror (docs/design.md): each torch_impl file and its keras_impl twin define the same public names, in the
same order, under the same section headers; classes define the same methods (framework hooks mapped). The gradient
code of Keras's three backends (keras_impl/gradients_<backend>.py) mirrors itself the same way."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIRRORED = ["dcgan", "wgan_gp", "cgan", "published", "trainers", "train", "commands", "checkpoint", "data",
            "distributed", "devices"]
# Methods that each framework names or requires differently: torch forward <-> Keras call; Keras-only hooks.
TORCH_TO_KERAS = {"forward": "call"}
KERAS_ONLY = {"compile", "metrics"}
TORCH_ONLY = {"on_train_end"}  # torch closes its own TensorBoard writer; Keras's TensorBoard callback closes its


def outline(path: Path):
    tree = ast.parse(path.read_text())
    names, methods = [], {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            names.append(node.name)
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):  # private helpers differ
            methods[node.name] = [item.name for item in node.body if isinstance(item, ast.FunctionDef)]
    headers = [line.strip("# -") for line in path.read_text().splitlines() if line.startswith("# ----")]
    return names, headers, methods


@pytest.mark.parametrize("module", MIRRORED)
def test_public_names_and_order_match(module):
    torch_names, torch_headers, torch_methods = outline(ROOT / "torch_impl" / f"{module}.py")
    keras_names, keras_headers, keras_methods = outline(ROOT / "keras_impl" / f"{module}.py")
    assert torch_names == keras_names
    assert torch_headers == keras_headers
    for cls, methods in torch_methods.items():
        mapped = [TORCH_TO_KERAS.get(name, name) for name in methods if name not in TORCH_ONLY]
        assert mapped == [name for name in keras_methods[cls] if name not in KERAS_ONLY], cls


KERAS_BACKENDS = ["gradients_tensorflow", "gradients_jax", "gradients_torch"]


def test_the_keras_backends_gradient_code_mirrors_itself():
    """The same public names in the same order under the same headers in each backend's module, and the names
    keras_impl/gradients.py takes from them. `Trainer`'s methods may differ: they are what fit needs per backend
    (none on TensorFlow and PyTorch; JAX's stateless step)."""
    outlines = {name: outline(ROOT / "keras_impl" / f"{name}.py")[:2] for name in KERAS_BACKENDS}
    first = outlines[KERAS_BACKENDS[0]]
    for name, found in outlines.items():
        assert found == first, name
    taken = ["Trainer", "apply_gradients", "gradients", "input_gradient", "recorded"]
    assert sorted(first[0]) == taken
    selector = (ROOT / "keras_impl" / "gradients.py").read_text()
    for name in KERAS_BACKENDS:
        assert f"from keras_impl.{name} import {', '.join(taken)}" in selector, name


def test_the_mirror_test_can_fail(tmp_path):
    (tmp_path / "a.py").write_text("def generator_loss():\n    pass\n\n\ndef discriminator_loss():\n    pass\n")
    (tmp_path / "b.py").write_text("def discriminator_loss():\n    pass\n\n\ndef generator_loss():\n    pass\n")
    assert outline(tmp_path / "a.py")[0] != outline(tmp_path / "b.py")[0]
