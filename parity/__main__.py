"""`python -m parity` (also `gan-parity`): prove that torch_impl and keras_impl compute the same thing.

  check MODEL       run the named checks for every preset and update order; exit 1 on any failure
  data              show the first batch of a data set as each backend sees it, and whether the bytes agree
  pitfalls          seed each catalogued porting bug and show which check catches it (parity/pitfalls.py)
  convert CHECKPOINT   a checkpoint of one backend as a checkpoint of the other (parity/checkpoint.py)
  sidebyside MODEL  the torch and Keras sources of a model as one HTML page (parity/sidebyside.py)
  drift MODEL       how far the two backends' weights part over a long run from one start (parity/drift.py)
  compare T K       check your own port: where a torch and a Keras network diverge, and why (parity/compare.py)
  quality RUN...    runs of either backend scored side by side: FID, KID, class accuracy (parity/quality.py)
Each of the last six lives in its own module, which adds its parser with `register(commands)`.
check, data, pitfalls and convert take --keras-backend tensorflow|jax|torch (check, data and pitfalls also all): the
Keras backend the Keras side runs on, one process per backend (parity/backends.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import sys
import time

from parity import backends
from specs.cli import parse_device, positive_int
from specs.logs import native_notices_dropped
from specs.models import PRESETS, UPDATE_ORDERS, get_config
from specs.runs import RunError

FRAMEWORKS = ("torch", "tensorflow", "keras")  # what the parity layer names when it cannot start


def load() -> list[str] | None:
    """Import the checks now (torch, Keras and its backend's framework load here): None, or the frameworks that
    are missing (the parity layer runs both backends: the [all] extra)."""
    try:
        with native_notices_dropped():  # TensorFlow's start-up notices (specs/logs.py)
            importlib.import_module("parity.checks")
    except ImportError as error:
        package = (error.name or "").split(".")[0]
        if package not in (*FRAMEWORKS, "jax", "jaxlib"):
            raise
        return [name for name in FRAMEWORKS if importlib.util.find_spec(name) is None] or [package]
    return None


SUBCOMMAND_MODULES = ("parity.pitfalls", "parity.checkpoint", "parity.sidebyside", "parity.drift", "parity.compare",
                      "parity.quality")


def check_variants(model: str, presets: list[str], orders: list[str] | None):
    """(label, configuration) for each preset, and each update order asked for where the model has one. Without
    orders: both for the book's models, each published preset's own (its original's) for the published model."""
    from parity import checks

    for preset in presets:
        config = get_config(model, preset)
        if not hasattr(config, "update_order"):
            yield preset, config
            continue
        chosen = orders or (list(UPDATE_ORDERS) if checks.MODELS[model].both_orders else [config.update_order])
        for order in chosen:
            yield f"{preset}/{order}", dataclasses.replace(config, update_order=order)


def format_table(rows: list[dict]) -> str:
    """One line per row; rows of several Keras backends (`keras_backend`) get a column naming theirs."""
    keras = any("keras_backend" in row for row in rows)
    header = (f"{'keras':<11}" * keras + f"{'variant':<28} {'dtype':<8} {'check':<16} {'max abs diff':>12} "
              f"{'scaled diff':>12} {'tolerance':>10}  verdict  worst")
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.get('keras_backend', ''):<11}" * keras +
            f"{row['variant']:<28} {row['dtype']:<8} {row['name']:<16} {row['max_abs_diff']:>12.3g} "
            f"{row['max_scaled_diff']:>12.3g} {row['tolerance']:>10.0e}  {'pass' if row['passed'] else 'FAIL':<7}  "
            f"{row['worst']}"
        )
    return "\n".join(lines)


def run_check(args: argparse.Namespace, rows: list[dict] | None = None, start: float | None = None) -> int:
    """The checks asked for, on this process's Keras backend and args.device, or the `rows` other processes
    measured (since `start`)."""
    from parity import checks

    start = start or time.perf_counter()
    if rows is None:
        try:
            checks.use_device(args.device)
        except RunError as error:
            print(f"gan-parity: error: {error}", file=sys.stderr)
            return 2
        rows = []
        for model in args.models:
            for label, config in check_variants(model, args.preset or list(PRESETS[model]), args.update_order):
                for dtype in args.dtype:
                    for result in checks.run_checks(model, config, dtype, args.batch_size, args.seed, args.check,
                                                    steps=args.steps):
                        rows.append({"model": model, "variant": f"{model} {label}", "dtype": dtype}
                                    | result.as_dict())
    failed = [row for row in rows if not row["passed"]]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
        verdict = f"{len(failed)} of {len(rows)} checks FAILED" if failed else f"all {len(rows)} checks passed"
        print(f"\n{verdict} ({time.perf_counter() - start:.0f} s)")
    return 1 if failed else 0


def check_elsewhere(args: argparse.Namespace, argv: list[str], keras_backends: list[str]) -> int:
    """`gan-parity check` on each of `keras_backends` in a process of its own; one merged table."""
    start = time.perf_counter()
    failure = {"model": "", "variant": "(the whole process)", "dtype": "", "name": "all", "max_abs_diff": float("inf"),
               "max_scaled_diff": float("inf"), "tolerance": 0.0, "compared": 0, "passed": False}
    rows, status = backends.json_rows(argv, keras_backends,
                                      lambda backend, why: failure | {"worst": why, "keras_backend": backend})
    return max(run_check(args, rows, start), 1 if status else 0)


def build_parser() -> argparse.ArgumentParser:
    from parity import checks

    parser = argparse.ArgumentParser(prog="gan-parity", description=__doc__.split("\n")[0].split(": ", 1)[1])
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="run the parity checks of one model")
    check.add_argument("models", nargs="+", choices=list(checks.MODELS), metavar="MODEL",
                       help=f"one or more of: {', '.join(checks.MODELS)}")
    check.add_argument("--dtype", nargs="+", choices=("float64", "float32"), default=["float64"])
    check.add_argument("--preset", nargs="+", default=None, help="presets to check (default: all)")
    check.add_argument("--update-order", nargs="+", choices=UPDATE_ORDERS, default=None,
                       help="default: both for dcgan, each published preset's own")
    check.add_argument("--check", nargs="+", choices=checks.CHECKS, default=None, help="default: all that apply")
    check.add_argument("--batch-size", type=positive_int, default=8, help="batch of the checks (default 8)")
    check.add_argument("--steps", type=positive_int, default=checks.TRAJECTORY_STEPS,
                       help=f"train steps of the trajectory check (default {checks.TRAJECTORY_STEPS})")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--device", type=parse_device, default="cpu", metavar="DEVICE",
                       help="where both sides compute: cpu (default), cuda, cuda:N, mps or auto (TF32 off on GPUs)")
    check.add_argument("--json", action="store_true", help="print the rows as JSON")
    check.add_argument("--keras-backend", choices=backends.CHOICES, default=None,
                       help="the Keras backend: tensorflow, jax, torch, or all (one process each, one table); "
                            "default: $KERAS_BACKEND, else tensorflow")
    check.set_defaults(func=run_check, elsewhere=check_elsewhere)

    data = commands.add_parser("data", help="compare the first batch each backend reads (--help for its flags)",
                               add_help=False)
    data.add_argument("args", nargs=argparse.REMAINDER)
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    elsewhere = backends.choose(argv)  # before Keras is imported: KERAS_BACKEND, or other processes
    missing = load()
    if missing is not None:
        names, verb = " and ".join(", ".join(missing).rsplit(", ", 1)), "is" if len(missing) == 1 else "are"
        print(f"gan-parity: error: the parity layer runs both backends, and {names} {verb} not installed here: "
              "pip install 'gan-parity[all]'", file=sys.stderr)
        return 2
    if argv[:1] == ["data"]:  # its own flags: parity/data.py
        if elsewhere:
            return backends.passthrough(argv, elsewhere)
        from parity import data

        return data.main(argv[1:])
    args = build_parser().parse_args(argv)
    for model in args.models if args.command == "check" else ():
        unknown = sorted(set(args.preset or ()) - set(PRESETS[model]))
        if unknown:
            print(f"gan-parity: unknown preset {unknown} for {model}; known: {', '.join(PRESETS[model])}",
                  file=sys.stderr)
            return 2
    if elsewhere and hasattr(args, "elsewhere"):
        return args.elsewhere(args, argv, elsewhere)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
