"""`gan-parity quality RUN...`: runs of either backend scored side by side, as each backend's `eval` scores them.

Each run folder (or checkpoint file) is read by the checkpoint module of the backend that wrote it, its generator
draws `--num` samples from the same z, and specs/quality.py scores them against the run's own data set: FID, KID
and, for a conditional model, the classifier's accuracy on each requested class (mean and weakest class), beside
the real-vs-real floor of each data set. One process loads both frameworks once, where `eval` per run would start
one for each; the numbers are the ones `gan-torch eval` and `gan-keras eval` print for the same --num and --seed.
`make demo` ends with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from parity.checkpoint import BACKENDS
from specs import quality
from specs.datasets import DataError
from specs.evaluate import generate_images
from specs.models import ConfigError
from specs.runs import BACKEND_CHECKPOINTS, RunError, checkpoint_backend


def find_run(path: Path) -> tuple[str, Path]:
    """(backend, checkpoint file) of a run folder or a checkpoint file; RunError when there is none."""
    files = [path / name for name in BACKEND_CHECKPOINTS.values()] if path.is_dir() else [path]
    for file in files:
        backend = checkpoint_backend(file) if file.is_file() else None
        if backend is not None:
            return backend, file
    raise RunError(f"no checkpoint of either backend at {path}; pass run folders or checkpoint files")


def score_run(path: Path, request: quality.EvalRequest) -> dict:
    """`eval`'s result for one run, scored by the backend that wrote it."""
    backend, file = find_run(path)
    module = BACKENDS[backend]
    model = module.load_checkpoint(file)["meta"].get("model")
    trainer, meta, _ = module.load_trained(model, file)
    inputs = quality.eval_inputs(trainer.config, request.seed, request.num)
    images = generate_images(module.generate, trainer, inputs)
    return quality.evaluate(meta, trainer.config, images, inputs, request) | {"run": str(path)}


def table(results: list[dict]) -> str:
    """One row per run, then the real-vs-real floor of each data set, and the classifiers' held-out accuracy."""
    lines = ["| run | model | backend | epoch | FID | KID x 1000 | class accuracy (mean / weakest class) |",
             "|---|---|---|---:|---:|---:|---:|"]
    floors: dict[str, dict] = {}
    for result in results:
        ours = result["samples_vs_real"]
        if "accuracy" in ours:
            accuracy = f"{100 * ours['accuracy']:.1f}% / {100 * np.nanmin(ours['class_accuracy']):.1f}%"
        else:
            accuracy = "not shown: classifier at chance" if "class_accuracy_withheld" in ours else "—"
        lines.append(f"| {result['run']} | {result['model']} | {result['backend']} | {result['epoch']} | "
                     f"{ours['fid']:.2f} | {1e3 * ours['kid']:.2f} ± {1e3 * ours['kid_std']:.2f} | {accuracy} |")
        floors.setdefault(result["dataset"], result)
    for dataset, result in floors.items():
        base = result["real_vs_real"]
        lines.append(f"| real vs real: two halves of {dataset} ({result['real'] // 2} images each) | | | | "
                     f"{base['fid']:.2f} | {1e3 * base['kid']:.2f} ± {1e3 * base['kid_std']:.2f} | |")
    notes = [f"{result['samples']} samples per run (seed {result['seed']}); FID and KID on the features of a "
             f"classifier trained on {dataset} (held-out accuracy {100 * result['classifier_accuracy']:.1f}%, chance "
             f"{100 * result['classifier_chance']:.1f}%): lower is better, the floor is what the data itself scores"
             for dataset, result in floors.items()]
    return "\n".join([*lines, "", *notes])


def run(args: argparse.Namespace) -> int:
    request = quality.EvalRequest(num=args.num, seed=args.seed, cache_dir=args.cache_dir)
    try:
        request.check()
        results = [score_run(Path(path), request) for path in args.runs]
    except (RunError, DataError, ConfigError) as error:
        print(f"gan-parity: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(results) if args.json else table(results))
    return 0


def register(commands) -> None:
    parser = commands.add_parser(
        "quality", help="score runs of either backend side by side (FID, KID, class accuracy, real-vs-real floor)",
        description=__doc__.split("\n\n")[1].replace("\n", " "))
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders or checkpoint files, of either backend")
    parser.add_argument("--num", type=int, default=1000, help="samples per run (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the noise (default 0)")
    parser.add_argument("--cache-dir", default=None, help="data cache (default $GAN_PARITY_CACHE or ~/.cache)")
    parser.add_argument("--json", action="store_true", help="print eval's result of each run as JSON")
    parser.set_defaults(func=run)
