"""`gan-parity compare`: check your own port. Where does a hand-written torch <-> Keras port diverge, and why?

  gan-parity compare TORCH_FACTORY KERAS_FACTORY --input SHAPE [--direction torch-to-keras|keras-to-torch]
      [--weights copy|keep] [--loss NAME | --loss TORCH_LOSS KERAS_LOSS] [--optimizer TORCH_OPT KERAS_OPT]
      [--pair TORCH=KERAS ...] [--pairs FILE] [--show-pairs] [--dtype float64|float32] [--json]

A factory is `path/to/file.py:callable` or `package.module:callable` returning an nn.Module / a keras.Model
(Sequential, functional or subclassed); the torch optimiser factory takes the parameters, the Keras one nothing.
SHAPE is one sample's input in torch's layout (3,64,64 or 100; `labels:10` for class indices); give --input once
per input. What it does (parity/user_pair.py, parity/pairing.py, parity/gradients.py):
  1. traces a forward pass of each and pairs the layers: by name where they agree, else by order and kind (the
     table it prints; --pair or a --pairs file overrides it, --show-pairs prints it as such a file);
  2. copies the weights in the chosen direction with the strict converter (parity/convert.py: every tensor once,
     shapes asserted), or keeps each side's (--weights keep: weights you converted yourself);
  3. runs both on the same input (NCHW <-> NHWC), in inference and in training mode, and reports each layer's
     output shape and difference, marking the first layer that diverges; with --loss the gradients, with
     --optimizer one step of each optimiser and their settings;
  4. diagnoses the first divergence (parity/diagnose.py): tries the pitfall catalogue's fixes on that layer and
     names the entry whose fix makes it agree, with its wrong and right lines.
Exit 0 when everything agrees, 1 when something diverges, 2 for a usage error (one line).
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import importlib
import importlib.util
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import torch
from torch import nn

from parity import diagnose, gradients, pairing
from parity.checks import keras_dtype
from parity.findings import Finding
from parity.settings import TOLERANCE as SETTINGS_TOLERANCE
from parity.settings import difference
from parity.tracing import Unsupported
from parity.user_pair import DIRECTIONS, WEIGHTS, InputSpec, Row, UsageError, UserPair, one_line

SECTION_TITLES = {
    "structure": "Does not convert",
    "weights": "Weights (each side's own): the source through the strict map against the port",
    "inference": "Inference mode",
    "training": "Training mode (dropout off on both sides; BatchNorm on batch statistics; its running statistics "
                "after the pass, Keras's variance mapped onto torch's unbiased one)",
    "dropout": "Dropout in training mode, fed ones (fraction of zeros, scale of the rest)",
    "gradients": "Gradients of the loss, training mode, torch's layout",
    "step": "Weights after one optimiser step",
    "batch": "Batch independence (a critic's loss): a sample's score beside two other half batches",
}


# ------------------------------------------------------------------------------------------------ Factories


def load_factory(spec: str) -> Callable:
    """`path/to/file.py:callable` or `package.module:callable`; the callable may be dotted (Class.build) and take
    literal arguments: `models.py:generator(width=32, fixed=("batch_norm",))`."""
    arguments = None
    if spec.endswith(")") and "(" in spec:
        spec, arguments = spec[: spec.index("(")], spec[spec.index("("):]
    where, colon, name = spec.rpartition(":")
    if not colon or not where or not name:
        raise UsageError(f"{spec!r}: expected path/to/file.py:callable or package.module:callable")
    try:
        if where.endswith(".py") or "/" in where or "\\" in where:
            path = Path(where)
            if not path.is_file():
                raise UsageError(f"{spec!r}: no such file {where}")
            unique = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
            module_spec = importlib.util.spec_from_file_location(f"gan_parity_user_{path.stem}_{unique}", path)
            module = importlib.util.module_from_spec(module_spec)
            sys.path.insert(0, str(path.resolve().parent))  # the file may import its neighbours
            try:
                module_spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.resolve().parent))
        else:
            module = importlib.import_module(where)
    except UsageError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the user's file raises on import: one line
        raise UsageError(f"{spec!r} does not import: {one_line(error)}") from None
    target = module
    for part in name.split("."):
        if not hasattr(target, part):
            raise UsageError(f"{spec!r}: {where} has no {name!r}")
        target = getattr(target, part)
    if not callable(target):
        raise UsageError(f"{spec!r}: {name} is not callable")
    return target if arguments is None else with_arguments(target, f"{spec}{arguments}", arguments)


def with_arguments(target: Callable, spec: str, arguments: str) -> Callable:
    try:
        call = ast.parse(f"f{arguments}", mode="eval").body
        if not isinstance(call, ast.Call):
            raise ValueError
        args = [ast.literal_eval(node) for node in call.args]
        kwargs = {node.arg: ast.literal_eval(node.value) for node in call.keywords}
    except (SyntaxError, ValueError):
        raise UsageError(f"{spec!r}: the arguments must be Python literals, like (width=32, fixed=('a',))") from None
    return functools.partial(target, *args, **kwargs)


def build_torch(factory, seed: int, label: str) -> nn.Module:
    if isinstance(factory, nn.Module):
        return factory
    torch.manual_seed(seed)
    try:
        model = factory()
    except Exception as error:  # noqa: BLE001
        raise UsageError(f"{label} raised {one_line(error)}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"{label} returned a {type(model).__name__}, not a torch nn.Module")
    return model


def build_keras(factory, seed: int, dtype: str, label: str) -> keras.Model:
    if isinstance(factory, keras.Model):
        return factory
    keras.utils.set_random_seed(seed)
    try:
        with keras_dtype(dtype):
            model = factory()
    except Exception as error:  # noqa: BLE001
        raise UsageError(f"{label} raised {one_line(error)}") from None
    if not isinstance(model, keras.Model):
        raise UsageError(f"{label} returned a {type(model).__name__}, not a keras.Model")
    return model


def as_loss(loss) -> gradients.Loss | None:
    if loss is None or isinstance(loss, gradients.Loss):
        return loss
    if isinstance(loss, str):
        if loss not in gradients.LOSSES:
            raise UsageError(f"unknown loss {loss!r}: give one of {', '.join(gradients.LOSSES)}, or two callables")
        return gradients.LOSSES[loss]
    torch_loss, keras_loss = loss
    return gradients.Loss(getattr(torch_loss, "__name__", "given"), torch_loss, keras_loss)


# ----------------------------------------------------------------------------------------------------- Report


@dataclass
class Report:
    torch: str
    keras: str
    pair: UserPair
    rows: list[Row]
    findings: list[Finding]
    settings: list[tuple[int, str, object, object]] = field(default_factory=list)  # pair, field, torch, Keras
    optimizer_settings: list[tuple[str, object, object]] = field(default_factory=list)

    @property
    def first(self) -> Row | None:
        return diagnose.first_failure(self.rows)

    @property
    def agrees(self) -> bool:
        return self.first is None

    def as_dict(self) -> dict:
        pair = self.pair
        return {
            "torch": self.torch, "keras": self.keras, "direction": pair.direction, "weights": pair.weights,
            "dtype": pair.dtype, "batch_size": pair.batch_size, "inputs": [str(spec) for spec in pair.inputs],
            "agrees": self.agrees,
            "pairs": [{"index": i, "torch": p.torch.label if p.torch else None,
                       "keras": p.keras.label if p.keras else None,
                       "kind": (p.torch or p.keras).family, "paired_by": p.how} for i, p in enumerate(pair.pairs)],
            "settings": [{"pair": i, "field": key, "torch": repr(t), "keras": repr(k)}
                         for i, key, t, k in self.settings],
            "optimizer_settings": [{"field": key, "torch": repr(t), "keras": repr(k)}
                                   for key, t, k in self.optimizer_settings],
            "rows": [row.as_dict() for row in self.rows],
            "first_divergence": self.first.as_dict() if self.first else None,
            "diagnosis": [finding.as_dict() for finding in self.findings],
            "notes": pair.notes,
        }

    def text(self) -> str:
        from parity.compare_report import report_text

        return report_text(self)


def setting_differences(pair: UserPair) -> list[tuple[int, str, object, object]]:
    out = []
    for index, layer_pair in enumerate(pair.pairs):
        if layer_pair.torch is None or layer_pair.keras is None:
            continue
        torch_fields, keras_fields = layer_pair.torch.fields, layer_pair.keras.fields
        for key in list(torch_fields) + [key for key in keras_fields if key not in torch_fields]:
            a, b = torch_fields.get(key, "(absent)"), keras_fields.get(key, "(absent)")
            if difference(a, b)[1] > SETTINGS_TOLERANCE:
                out.append((index, key, a, b))
    return out


def compare(torch_model, keras_model, inputs, *, direction: str = "torch-to-keras", weights: str = "copy",
            loss=None, optimizers=None, pairs: dict | None = None, dtype: str = "float64", batch_size: int = 8,
            seed: int = 0, names: tuple[str, str] = ("torch model", "Keras model"), pairs_only: bool = False) -> Report:
    """Compare a torch module and a Keras model (or their factories): every layer, both modes, the diagnosis.

    `inputs`: InputSpecs or shapes (torch's layout, one sample); `loss`: a name of gradients.LOSSES or (torch_fn,
    keras_fn); `optimizers`: (torch factory of the parameters, Keras factory); `pairs`: torch name -> Keras name
    (None: no partner); `pairs_only`: pair the layers and stop (no rows). Raises UsageError, tracing.Unsupported or
    pairing.MappingError for what cannot run."""
    if direction not in DIRECTIONS or weights not in WEIGHTS or dtype not in ("float64", "float32"):
        raise UsageError(f"direction {direction!r}, weights {weights!r}, dtype {dtype!r}: expected one of "
                         f"{DIRECTIONS}, {WEIGHTS}, (float64, float32)")
    if batch_size < 2:
        raise UsageError("batch_size must be at least 2 (training-mode BatchNorm needs two samples)")
    if isinstance(inputs, InputSpec | str) or isinstance(inputs, tuple) and all(isinstance(n, int) for n in inputs):
        inputs = [inputs]  # one input
    specs = [spec if isinstance(spec, InputSpec) else InputSpec.parse(spec) if isinstance(spec, str)
             else InputSpec(tuple(spec)) for spec in inputs]
    loss = as_loss(loss)
    torch_net = build_torch(torch_model, seed, names[0])
    keras_net = build_keras(keras_model, seed, dtype, names[1])
    with keras_dtype(dtype):
        pair = UserPair(torch_net, keras_net, specs, direction, weights, dtype, batch_size, seed, pairs)
        wrong = [v for v in keras_net.weights if keras.backend.standardize_dtype(v.dtype) != dtype]
        if wrong:
            held = keras.backend.standardize_dtype(wrong[0].dtype)
            raise UsageError(f"the Keras model holds {held} weights ({wrong[0].path}): build every layer inside its "
                             f"factory, so that it is built in {dtype}, or use --dtype {held}")
        if pairs_only:
            return Report(*names, pair, [], [])
        rows = list(pair.problems)
        rows += pair.weight_rows() if weights == "keep" else []
        rows += pair.mode_rows(False) + pair.mode_rows(True) + pair.dropout_rows()
        optimizer_settings = []
        if loss is not None:
            rows += gradients.gradient_rows(pair, loss)
            if loss.critic:
                rows += gradients.batch_rows(pair)
            if optimizers is not None:
                optimizers = gradients.Optimizers(*optimizers) if isinstance(optimizers, tuple) else optimizers
                built = gradients.build_optimizers(pair, optimizers)
                optimizer_settings = gradients.optimizer_differences(*built)
                rows += gradients.step(pair, loss, *built)
        elif optimizers is not None:
            raise UsageError("an optimiser step needs a loss: give --loss too")
        findings = diagnose.diagnose(pair, rows, loss, optimizers)
        pair.restore(weights=True)
    return Report(*names, pair, rows, findings, setting_differences(pair), optimizer_settings)


# ------------------------------------------------------------------------------------------------ Command line


def parse_pairs(args: argparse.Namespace) -> dict | None:
    given = {}
    if args.pairs:
        try:
            text = Path(args.pairs).read_text()
        except OSError as error:
            raise UsageError(f"--pairs {args.pairs}: {error.strerror}") from None
        given |= pairing.read_mapping(text, args.pairs)
    for item in args.pair or []:
        torch_name, equals, keras_name = item.partition("=")
        if not equals or not torch_name.strip() or not keras_name.strip():
            raise UsageError(f"--pair {item!r}: expected TORCH_NAME=KERAS_NAME (KERAS_NAME '-' for no partner)")
        given[torch_name.strip()] = None if keras_name.strip() == "-" else keras_name.strip()
    return given or None


def command_report(args: argparse.Namespace) -> Report:
    """The report of `gan-parity compare` for its parsed arguments (raises the usage errors)."""
    torch_factory, keras_factory = load_factory(args.torch_factory), load_factory(args.keras_factory)
    loss = None
    if args.loss:
        if len(args.loss) > 2:
            raise UsageError("--loss takes a name or two callables (torch's, Keras's)")
        loss = args.loss[0] if len(args.loss) == 1 else tuple(load_factory(spec) for spec in args.loss)
    optimizers = tuple(load_factory(spec) for spec in args.optimizer) if args.optimizer else None
    inputs = [InputSpec.parse(text) for text in args.input]
    return compare(torch_factory, keras_factory, inputs, direction=args.direction, weights=args.weights,
                   loss=loss, optimizers=optimizers, pairs=parse_pairs(args), dtype=args.dtype,
                   batch_size=args.batch_size, seed=args.seed, names=(args.torch_factory, args.keras_factory),
                   pairs_only=args.show_pairs)


def run_command(args: argparse.Namespace) -> int:
    try:
        report = command_report(args)
    except (UsageError, Unsupported, pairing.MappingError) as error:
        print(f"gan-parity compare: {error}", file=sys.stderr)
        return 2
    if args.show_pairs:
        print(pairing.mapping_text(report.pair.pairs), end="")
        return 0
    print(json.dumps(finite(report.as_dict()), indent=2, default=repr) if args.json else report.text())
    return 0 if report.agrees else 1


def finite(value):
    """JSON without Infinity and NaN (not JSON): such numbers as the strings "inf", "-inf", "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def register(commands) -> None:
    parser = commands.add_parser("compare", help="check your own port: where a torch and a Keras network diverge, "
                                 "and which pitfall explains it", description=__doc__.split("\n\n")[0])
    parser.add_argument("torch_factory", metavar="TORCH_FACTORY", help="path/to/file.py:callable or "
                        "package.module:callable returning an nn.Module")
    parser.add_argument("keras_factory", metavar="KERAS_FACTORY", help="the same, returning a keras.Model")
    parser.add_argument("--input", action="append", required=True, metavar="SHAPE",
                        help="one sample's input in torch's layout: 3,64,64 or 100 or labels:K; once per input")
    parser.add_argument("--direction", choices=DIRECTIONS, default="torch-to-keras",
                        help="which side is the original: its weights are copied into the port (default "
                        "torch-to-keras)")
    parser.add_argument("--weights", choices=WEIGHTS, default="copy",
                        help="copy: the strict converter copies them; keep: each side keeps its own (weights you "
                        "converted yourself)")
    parser.add_argument("--loss", nargs="+", metavar="LOSS", help=f"{gradients.LOSS_HELP}; or TORCH_CALLABLE "
                        "KERAS_CALLABLE, each output -> scalar")
    parser.add_argument("--optimizer", nargs=2, metavar=("TORCH_OPT", "KERAS_OPT"),
                        help="factories: the torch one takes the parameters, the Keras one nothing (needs --loss)")
    parser.add_argument("--pair", action="append", metavar="TORCH=KERAS", help="pair two layers by name ('-': "
                        "no partner); repeatable")
    parser.add_argument("--pairs", metavar="FILE", help="a mapping file: one 'torch_name = keras_name' a line")
    parser.add_argument("--show-pairs", action="store_true", help="print the pairing as a mapping file and stop")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="float64 proves equality to round-off (default); float32 is what training uses")
    parser.add_argument("--batch-size", type=int, default=8, help="samples in the input batch (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run_command)
