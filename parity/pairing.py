"""Which torch layer is which Keras layer, for `gan-parity compare` (parity/compare.py).

Both sides' positions (parity/tracing.py) are first grouped the way a port spells one layer twice: a zero padding
directly before a conv belongs to that conv, a cropping directly after a transposed conv to it (as in
parity/settings.py `folded`). Groups then pair:
  1. as given: `--pair TORCH=KERAS` or a mapping file, one `torch_name = keras_name` a line (`= -`: no partner);
  2. by name, where a torch name (`conv1`, `main.0`) is the name of a Keras layer of the same family;
  3. by order and kind: the longest sequence of same-family pairs that keeps both forward orders (layers with
     weights count double), over what is left.
Families: conv1d, conv2d, conv_transpose1d/2d, dense, batch_norm, layer_norm, embedding, flatten, reshape,
zero_padding, cropping, pooling and upsampling kinds, dropout, and "activation" for every activation (a ReLU pairs
with a LeakyReLU, so that the settings show the difference). A layer that pairs with nothing is listed as present
on one side only; one that holds weights makes the pair not convert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from parity import convert
from parity.settings import folded
from parity.tracing import Position

KINDS = {"conv", "conv_transpose", "dense", "batch_norm", "layer_norm", "embedding", "flatten", "reshape",
         "zero_padding", "cropping", "max_pool", "avg_pool", "global_avg_pool", "upsampling"}
DROPOUTS = {"dropout", "spatial_dropout"}
ELEMENTWISE = {"activation", "dropout", "batch_norm", "layer_norm"}  # keep a vector's feature order


class MappingError(ValueError):
    """A mapping that names a layer that does not exist, or pairs layers of different families."""


@dataclass
class Group:
    """Positions of one side that act as one layer of the other (a padding and its conv); `main` carries the name."""

    positions: list[Position]
    fields: dict  # the group's settings, padding folded into its conv
    main: Position
    weighted: bool

    @property
    def name(self) -> str:
        return self.main.name

    @property
    def label(self) -> str:
        return " + ".join(position.name for position in self.positions)

    @property
    def family(self) -> str:
        return family(self.fields)

    @property
    def first(self) -> Position:
        return self.positions[0]

    @property
    def last(self) -> Position:
        return self.positions[-1]


@dataclass
class LayerPair:
    torch: Group | None
    keras: Group | None
    how: str  # "given", "name", "order", or "" for a group on one side only
    orders: tuple = (None, None)  # a Dense's row order (after a Flatten) and column order (before a Reshape)

    @property
    def label(self) -> str:
        return f"{self.torch.label if self.torch else '-'} / {self.keras.label if self.keras else '-'}"

    @property
    def in_order(self):
        """The Keras order of the input's features (a Dense after a Flatten; a BatchNorm over such features)."""
        return self.orders[0] if self.torch and self.torch.main.kind == "dense" else self.orders[1]

    @property
    def out_order(self):
        return self.orders[1]


def family(fields: dict) -> str:
    kind = fields["kind"]
    if kind in ("conv", "conv_transpose"):
        return f"{kind}{len(fields['kernel'])}d"
    if kind in DROPOUTS:
        return "dropout"
    if kind in KINDS:
        return kind
    return "other" if kind.startswith(("torch ", "keras ")) else "activation"


def groups(positions: list[Position], weighted) -> list[Group]:
    """Positions grouped: a zero padding into the conv after it, a cropping into the transposed conv before it."""
    out: list[Group] = []
    for position in positions:
        previous = out[-1] if out else None
        if previous is not None and len(previous.positions) == 1:
            merged = folded([(previous.main.name, previous.fields), (position.name, position.fields)])
            if len(merged) == 1:
                main = position if position.kind == "conv" else previous.main
                out[-1] = Group([previous.main, position], merged[0][1], main, weighted(main.layer))
                continue
        out.append(Group([position], position.fields, position, weighted(position.layer)))
    return out


def torch_weighted(module) -> bool:
    return bool(convert._tensors(module))


def keras_weighted(layer) -> bool:
    return bool(layer.weights)


# ----------------------------------------------------------------------------------------------------- Pairing


def _find(groups_: list[Group], name: str, side: str) -> Group:
    for group in groups_:
        if name == group.name or name in [position.name for position in group.positions]:
            return group
    known = ", ".join(group.name for group in groups_[:12]) + (", ..." if len(groups_) > 12 else "")
    raise MappingError(f"no {side} layer named {name!r} in the forward pass (its layers: {known})")


def pair_layers(torch_groups: list[Group], keras_groups: list[Group],
                given: dict[str, str | None] | None = None) -> list[LayerPair]:
    """Every group of both sides, paired as given, by name, then by order and kind; in the torch forward order,
    each Keras-only group after the pair before it."""
    pairs: dict[int, LayerPair] = {}  # id(torch group) -> pair
    taken: set[int] = set()  # ids of paired Keras groups
    for torch_name, keras_name in (given or {}).items():
        torch_group = _find(torch_groups, torch_name, "torch")
        keras_group = None if keras_name is None else _find(keras_groups, keras_name, "Keras")
        if keras_group is not None and torch_group.family != keras_group.family:
            raise MappingError(f"cannot pair torch {torch_group.name!r} ({torch_group.family}) with Keras "
                               f"{keras_group.name!r} ({keras_group.family})")
        if keras_group is not None and id(keras_group) in taken:
            raise MappingError(f"Keras layer {keras_group.name!r} is given two torch partners")
        pairs[id(torch_group)] = LayerPair(torch_group, keras_group, "given")
        taken |= {id(keras_group)} if keras_group else set()
    by_name = {}
    for group in keras_groups:
        by_name.setdefault(group.name, []).append(group)
    for group in torch_groups:
        candidates = [other for other in by_name.get(group.name, []) if id(other) not in taken]
        if id(group) not in pairs and len(candidates) == 1 and candidates[0].family == group.family:
            pairs[id(group)] = LayerPair(group, candidates[0], "name")
            taken.add(id(candidates[0]))
    rest_torch = [group for group in torch_groups if id(group) not in pairs]
    rest_keras = [group for group in keras_groups if id(group) not in taken]
    for torch_group, keras_group in _aligned(rest_torch, rest_keras):
        pairs[id(torch_group)] = LayerPair(torch_group, keras_group, "order")
        taken.add(id(keras_group))
    return _ordered(torch_groups, keras_groups, pairs, taken)


def _aligned(torch_groups: list[Group], keras_groups: list[Group]) -> list[tuple[Group, Group]]:
    """The best order-keeping matching of same-family groups (dynamic programming; weighted layers count 2)."""
    n, m = len(torch_groups), len(keras_groups)
    score = np.zeros((n + 1, m + 1))
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            a, b = torch_groups[i], keras_groups[j]
            match = (1 + a.weighted) + score[i + 1, j + 1] if a.family == b.family else -math.inf
            score[i, j] = max(match, score[i + 1, j], score[i, j + 1])
    out, i, j = [], 0, 0
    while i < n and j < m:
        a, b = torch_groups[i], keras_groups[j]
        if a.family == b.family and score[i, j] == (1 + a.weighted) + score[i + 1, j + 1]:
            out.append((a, b))
            i, j = i + 1, j + 1
        elif score[i, j] == score[i + 1, j]:
            i += 1
        else:
            j += 1
    return out


def _ordered(torch_groups, keras_groups, pairs: dict[int, LayerPair], taken: set[int]) -> list[LayerPair]:
    out = [pairs.get(id(group)) or LayerPair(group, None, "") for group in torch_groups]
    for group in keras_groups:
        if id(group) in taken:
            continue
        after = [k for k, pair in enumerate(out) if pair.keras is not None and pair.keras.main.index < group.main.index]
        out.insert(after[-1] + 1 if after else 0, LayerPair(None, group, ""))
    return out


# -------------------------------------------------------------------------------------------- Flatten orders


def _features(shape: tuple) -> int:
    return math.prod(shape[1:])


def flat_orders(keras_positions: list[Position], position: Position) -> tuple:
    """(in_order, out_order) of the Keras Dense (or BatchNorm over features) at `position`: the rows of a Dense read
    a channels-last tensor flattened by a Flatten (or by code outside layers), its columns feed a Reshape to one."""
    index = keras_positions.index(position)
    if len(position.input_shape) != 2:  # over a channel axis: nothing to reorder
        return None, None

    def order(shape: tuple):
        return convert.chw_to_hwc_order(shape[1:]) if len(shape) >= 3 else None

    in_order = out_order = None
    for earlier in reversed(keras_positions[:index]):
        if earlier.kind == "flatten" or len(earlier.output_shape) >= 3:
            source = earlier.input_shape if earlier.kind == "flatten" else earlier.output_shape
            if _features(source) == _features(position.input_shape):
                in_order = order(source)
            break
        if family(earlier.fields) not in ELEMENTWISE:
            break
    for later in keras_positions[index + 1:]:
        if later.kind == "reshape" or len(later.input_shape) >= 3:
            target = later.output_shape if later.kind == "reshape" else later.input_shape
            if _features(target) == _features(position.output_shape):
                out_order = order(target)
            break
        if family(later.fields) not in ELEMENTWISE:
            break
    if position.kind != "dense":  # a BatchNorm over features: one order for its channels
        return None, in_order if in_order is not None else out_order
    return in_order, out_order


# ------------------------------------------------------------------------------------------------ Mapping file


def read_mapping(text: str, source: str = "the mapping") -> dict[str, str | None]:
    """`torch_name = keras_name` a line (`-` for no partner); `#` starts a comment."""
    mapping: dict[str, str | None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        torch_name, equals, keras_name = (part.strip() for part in line.partition("="))
        if not equals or not torch_name or not keras_name:
            raise MappingError(f"{source}, line {number}: expected 'torch_name = keras_name', got {line!r}")
        if torch_name in mapping:
            raise MappingError(f"{source}, line {number}: torch layer {torch_name!r} is mapped twice")
        mapping[torch_name] = None if keras_name == "-" else keras_name
    return mapping


def mapping_text(pairs: list[LayerPair]) -> str:
    """The pairing as a mapping file: edit it and pass it back with --pairs."""
    lines = ["# torch layer = Keras layer ('-': no partner); gan-parity compare ... --pairs FILE"]
    for pair in pairs:
        if pair.torch is None:
            lines.append(f"# Keras only: {pair.keras.label}")
        else:
            target = pair.keras.name if pair.keras else "-"
            lines.append(f"{pair.torch.name} = {target}" + (f"  # {pair.how}" if pair.how else ""))
    return "\n".join(lines) + "\n"
