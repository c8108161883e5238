"""`python -m parity` (also `gan-parity`): prove that torch_impl and keras_impl compute the same thing.

  check MODEL       run the named checks for every preset and update order; exit 1 on any failure
  data              show the first batch of a data set as each backend sees it, and whether the bytes agree
  pitfalls          seed each catalogued porting bug and show which check catches it (parity/pitfalls.py)
  convert CHECKPOINT   a checkpoint of one backend as a checkpoint of the other (parity/checkpoint.py)
  sidebyside MODEL  the torch and Keras sources of a model as one HTML page (parity/sidebyside.py)
  drift MODEL       how far the two backends' weights part over a long run from one start (parity/drift.py)
  compare T K       check your own port: where a torch and a Keras network diverge, and why (parity/compare.py)
Each of the last five lives in its own module, which adds its parser with `register(commands)`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import sys
import time

from specs.cli import parse_device, positive_int
from specs.logs import native_notices_dropped
from specs.models import PRESETS, UPDATE_ORDERS, get_config
from specs.runs import RunError

try:
    with native_notices_dropped():  # TensorFlow's start-up notices (specs/logs.py)
        from parity import checks
except ImportError as error:  # the parity layer runs both backends: both frameworks, the [all] extra
    FRAMEWORKS = ("torch", "tensorflow", "keras")
    if (error.name or "").split(".")[0] not in FRAMEWORKS:
        raise
    MISSING = [name for name in FRAMEWORKS if importlib.util.find_spec(name) is None] or [error.name]
else:
    MISSING = None

SUBCOMMAND_MODULES = ("parity.pitfalls", "parity.checkpoint", "parity.sidebyside", "parity.drift", "parity.compare")


def check_variants(model: str, presets: list[str], orders: list[str]):
    """(label, configuration) for each preset, and each update order asked for where the model has one."""
    for preset in presets:
        config = get_config(model, preset)
        if not hasattr(config, "update_order"):
            yield preset, config
            continue
        for order in orders:
            yield f"{preset}/{order}", dataclasses.replace(config, update_order=order)


def format_table(rows: list[dict]) -> str:
    header = (f"{'variant':<28} {'dtype':<8} {'check':<16} {'max abs diff':>12} {'scaled diff':>12} "
              f"{'tolerance':>10}  verdict  worst")
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['variant']:<28} {row['dtype']:<8} {row['name']:<16} {row['max_abs_diff']:>12.3g} "
            f"{row['max_scaled_diff']:>12.3g} {row['tolerance']:>10.0e}  {'pass' if row['passed'] else 'FAIL':<7}  "
            f"{row['worst']}"
        )
    return "\n".join(lines)


def run_check(args: argparse.Namespace) -> int:
    try:
        checks.use_device(args.device)
    except RunError as error:
        print(f"gan-parity: error: {error}", file=sys.stderr)
        return 2
    rows = []
    start = time.perf_counter()
    for model in args.models:
        for label, config in check_variants(model, args.preset or list(PRESETS[model]), args.update_order):
            for dtype in args.dtype:
                for result in checks.run_checks(model, config, dtype, args.batch_size, args.seed, args.check,
                                                steps=args.steps):
                    rows.append({"model": model, "variant": f"{model} {label}", "dtype": dtype} | result.as_dict())
    failed = [row for row in rows if not row["passed"]]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
        verdict = f"{len(failed)} of {len(rows)} checks FAILED" if failed else f"all {len(rows)} checks passed"
        print(f"\n{verdict} ({time.perf_counter() - start:.0f} s)")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gan-parity", description=__doc__.split("\n")[0].split(": ", 1)[1])
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="run the parity checks of one model")
    check.add_argument("models", nargs="+", choices=list(checks.MODELS), metavar="MODEL",
                       help=f"one or more of: {', '.join(checks.MODELS)}")
    check.add_argument("--dtype", nargs="+", choices=("float64", "float32"), default=["float64"])
    check.add_argument("--preset", nargs="+", default=None, help="presets to check (default: all)")
    check.add_argument("--update-order", nargs="+", choices=UPDATE_ORDERS, default=list(UPDATE_ORDERS))
    check.add_argument("--check", nargs="+", choices=checks.CHECKS, default=None, help="default: all that apply")
    check.add_argument("--batch-size", type=positive_int, default=8, help="batch of the checks (default 8)")
    check.add_argument("--steps", type=positive_int, default=checks.TRAJECTORY_STEPS,
                       help=f"train steps of the trajectory check (default {checks.TRAJECTORY_STEPS})")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--device", type=parse_device, default="cpu", metavar="DEVICE",
                       help="where both sides compute: cpu (default), cuda, cuda:N, mps or auto (TF32 off on GPUs)")
    check.add_argument("--json", action="store_true", help="print the rows as JSON")
    check.set_defaults(func=run_check)

    data = commands.add_parser("data", help="compare the first batch each backend reads (--help for its flags)",
                               add_help=False)
    data.add_argument("args", nargs=argparse.REMAINDER)
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    if MISSING is not None:
        names, verb = " and ".join(", ".join(MISSING).rsplit(", ", 1)), "is" if len(MISSING) == 1 else "are"
        print(f"gan-parity: error: the parity layer runs both backends, and {names} {verb} not installed here: "
              "pip install 'gan-parity[all]'", file=sys.stderr)
        return 2
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["data"]:  # its own flags: parity/data.py
        from parity import data

        return data.main(argv[1:])
    args = build_parser().parse_args(argv)
    for model in args.models if args.command == "check" else ():
        unknown = sorted(set(args.preset or ()) - set(PRESETS[model]))
        if unknown:
            print(f"gan-parity: unknown preset {unknown} for {model}; known: {', '.join(PRESETS[model])}",
                  file=sys.stderr)
            return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
