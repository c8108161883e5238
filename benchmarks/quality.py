"""Sample quality of every model in both backends on digits: FID, KID and CGAN class accuracy, mean ± std over seeds.

Usage: python benchmarks/quality.py [--seeds 3] [--steps N | MODEL=N ...] [--num 1000] [--models ...]
                                   [--precision float32 bfloat16] [--readme]
MODEL: dcgan, wgan_gp, cgan (their digits presets), or a published preset (pytorch-examples, pytorch-gan-mlp, face32,
svhn-tf1, celeba-keras: `published --preset NAME`, on the digits at that model's size and channels).
Each model trains from scratch in each backend for a fixed number of generator steps (`STEPS`; the digits preset's
batch 64 makes 28 steps an epoch), once per seed, as `gan-<backend> train MODEL --dataset digits --seed S` trains
it but stopping after exactly that many steps. Then it draws `--num` samples from the same z (seed 0; the CGAN asks
for every class equally often), and the parent process scores them with specs/quality.py: one classifier, one
code path for both backends. Each image size has its own classifier (trained on the digits at that size and
channels) and its own real-vs-real row.
Each backend trains in its own process, as in training; the parent imports neither framework.
The table also holds the real-vs-real baseline (two halves of digits) and, per model, whether the two backends'
FID lie within each other's seed spread (|mean_torch - mean_keras| <= std_torch + std_keras).
`--precision` trains every cell in each precision given (`--precision float32 bfloat16`: the cost of mixed precision
in quality, each precision's rows beside the other's; samples are drawn in float32 either way).
`--readme` writes the table into README.md between the `quality:begin` and `quality:end` marker comments; with more
than one precision between `quality-precision:begin` and `quality-precision:end`; for a run of published presets
only (in one precision) between `quality-published:begin` and `quality-published:end`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from specs import quality
from specs.datasets import get_spec
from specs.evaluate import generate_images
from specs.models import PRESETS, conditioned_on, get_config
from torch_impl.train import OPENMP  # what gan-torch sets before torch loads (imports no framework)

BOOK, PUBLISHED = ("dcgan", "wgan_gp", "cgan"), tuple(PRESETS["published"])
MODELS, BACKENDS = BOOK + PUBLISHED, ("torch", "keras")
# Generator steps (28 an epoch): DCGAN and CGAN 10 epochs, WGAN-GP 5; about 50 minutes for 3 seeds on 2 idle
# cores. The CGAN's class accuracy passes 90% at about 280 steps (Keras, seed 0: 51% at 140, 83% at 210, 96% at 280).
# The published presets: a short budget of 60 steps each (at their own batch sizes: 64, 64, 128, 128 and 32).
STEPS = {"dcgan": 280, "wgan_gp": 140, "cgan": 280} | dict.fromkeys(PUBLISHED, 60)
ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKERS = ("<!-- quality:begin -->", "<!-- quality:end -->")
PRECISION_MARKERS = ("<!-- quality-precision:begin -->", "<!-- quality-precision:end -->")
PUBLISHED_MARKERS = ("<!-- quality-published:begin -->", "<!-- quality-published:end -->")
PRECISIONS = ("float32", "bfloat16", "float16")


def model_config(name: str, num_classes: int = 10) -> tuple[str, object]:
    """(model, configuration) of a table entry: a book model's digits preset, or the published model's preset."""
    if name in PUBLISHED:
        return "published", get_config("published", name)
    return name, conditioned_on(get_config(name, "digits"), num_classes)


def digits_spec(name: str, seed: int = 0, cache_dir: str | None = None):
    """The digits at the entry's image size and channels."""
    config = model_config(name)[1]
    return get_spec("digits", seed=seed, cache_dir=cache_dir, image_size=config.image_size, channels=config.channels)


def images_of(name: str) -> tuple[int, int]:
    """(image size, channels) of an entry: the key of its classifier and of its real-vs-real row."""
    config = model_config(name)[1]
    return config.image_size, config.channels

# ---------------------------------------------------------------------------------------- The child: train, sample


def train_and_sample(backend: str, name: str, seed: int, steps: int, num: int, cache_dir: str | None,
                     precision: str = "float32"):
    """Train the entry `name` for `steps` generator steps from seed `seed` in `precision`; return (uint8 samples,
    requested classes or None, seconds of training). Imports only this backend's framework."""
    spec = digits_spec(name, seed, cache_dir)
    data = spec.load()
    model, config = model_config(name, data.num_classes)
    per_epoch = len(data.labels) // config.batch_size
    epochs = math.ceil(steps / per_epoch)
    start = time.perf_counter()
    if backend == "torch":

        from torch_impl import data as loader
        from torch_impl.checkpoint import generate
        from torch_impl.trainers import build_trainer

        trainer = build_trainer(model, config, seed, precision=precision)
        trainer.fit(lambda epoch: itertools.islice(loader.batches(data, spec, config.batch_size, epoch,
                                                                  config.conditional), steps - epoch * per_epoch),
                    epochs=epochs, verbose=0)
    else:
        from keras_impl import data as loader
        from keras_impl.checkpoint import generate
        from keras_impl.trainers import build_trainer

        trainer = build_trainer(model, config, seed, precision=precision)
        dataset = loader.batches(data, spec, config.batch_size, 0, epochs, config.conditional)
        trainer.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    inputs = quality.eval_inputs(config, 0, num)
    requested = None if inputs.one_hot is None else np.argmax(inputs.one_hot, axis=1)
    return generate_images(generate, trainer, inputs), requested, seconds


def child(args: argparse.Namespace) -> None:
    """One backend, one model, every seed: samples to `--out`, one JSON line per seed."""
    for seed in range(args.seeds):
        images, requested, seconds = train_and_sample(args.backend, args.models[0], seed, args.steps_for[0],
                                                      args.num, args.cache_dir, args.precision[0])
        path = Path(args.out) / f"{args.models[0]}-{args.backend}-{args.precision[0]}-{seed}.npz"
        np.savez(path, images=images, **({} if requested is None else {"requested": requested}))
        print(json.dumps({"seed": seed, "seconds": seconds, "path": str(path)}), flush=True)


# --------------------------------------------------------------------------------------- The parent: score, report


def run_child(args: argparse.Namespace, backend: str, model: str, steps: int, out: str,
              precision: str = "float32") -> list[dict]:
    command = [sys.executable, os.path.abspath(__file__), "--backend", backend, "--models", model, "--steps",
               str(steps), "--seeds", str(args.seeds), "--num", str(args.num), "--out", out, "--precision", precision]
    command += ["--cache-dir", args.cache_dir] if args.cache_dir else []
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    env = OPENMP | env if backend == "torch" else env  # torch's OpenMP threads as gan-torch sets them
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))  # this checkout's
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"quality: the {backend} {model} process failed (exit status {done.returncode})")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    values = scale * np.asarray(values)
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1) if len(values) > 1 else 0:.{digits}f}"


def table(cells: dict, baseline: dict, classifier: dict, args: argparse.Namespace) -> str:
    """The markdown table: one row per model, backend (and precision), then the real-vs-real baseline of each image
    size (`baseline` and `classifier` by (size, channels)). With several precisions, each row says how far its FID
    lies from the same backend's float32 FID."""
    flag = " --steps " + " ".join(args.steps) if args.steps else ""
    flag += " --models " + " ".join(args.models) if set(args.models) != set(BOOK) else ""
    flag += " --precision " + " ".join(args.precision) if args.precision != ["float32"] else ""
    several = len(args.precision) > 1
    head = "| model | images | generator steps | backend |" + (" precision |" if several else "")
    head += " FID | KID x 1000 | class accuracy (mean / lowest class) | FIDs agree |"
    head += " FID against float32 |" if several else ""
    sizes = ", ".join(f"{size}x{size}x{channels}" for size, channels in classifier)
    accuracy = ", ".join(f"{100 * one.accuracy:.1f}%" for one in classifier.values())
    lines = [f"`python benchmarks/quality.py --seeds {args.seeds}{flag}`: digits at each model's size ({sizes}), "
             f"{args.num} samples per run against the 1,797 real images; mean ± std over {args.seeds} training "
             f"seeds. Classifier (specs/quality.py), one per size: held-out accuracy {accuracy}.", "",
             head + " train s per run |", "|---|---|---:|---|" + ("---|" if several else "") + "---:|---:|---:|---|"
             + ("---|" if several else "") + "---:|"]

    def fids(model, backend, precision):
        return np.array([run["fid"] for run in cells.get((model, backend, precision), [])])

    def apart(first: np.ndarray, second: np.ndarray) -> bool:  # the means differ by more than the seed spreads
        return abs(first.mean() - second.mean()) > first.std(ddof=1) + second.std(ddof=1)

    for (model, steps), precision in itertools.product(zip(args.models, args.steps_for), args.precision):
        size, channels = images_of(model)
        runs = {backend: cells[model, backend, precision] for backend in args.backends
                if (model, backend, precision) in cells}
        agree = "—"
        if len(runs) == 2 and args.seeds > 1:
            agree = "no" if apart(*(fids(model, backend, precision) for backend in runs)) else "yes"
        for backend, results in runs.items():
            accuracy = "—"
            if "accuracy" in results[0]:
                lowest = [min(run["class_accuracy"]) for run in results]
                accuracy = f"{spread([run['accuracy'] for run in results], 100, 1)}% / {spread(lowest, 100, 1)}%"
            own, reference = fids(model, backend, precision), fids(model, backend, "float32")
            against = "—"
            if precision != "float32" and len(reference) and args.seeds > 1:
                where = "beyond" if apart(own, reference) else "within"
                against = f"{own.mean() - reference.mean():+.2f} ({where} the seed spread)"
            cells_text = (model, f"{size}x{size}x{channels}", steps, backend, *([precision] if several else []),
                          spread(own),
                          spread([r["kid"] for r in results], 1e3), accuracy, agree,
                          *([against] if several else []), f"{np.mean([run['seconds'] for run in results]):.0f}")
            lines.append("| " + " | ".join(str(cell) for cell in cells_text) + " |")
    blank = [""] if several else []
    for (size, channels), one in baseline.items():
        cells_text = ("real vs real (two halves)", f"{size}x{size}x{channels}", "", "", *blank, f"{one['fid']:.2f}",
                      f"{1e3 * one['kid']:.2f}", "", "", *blank, "")
        lines.append("| " + " | ".join(cells_text) + " |")
    return "\n".join(lines)


def write_readme(text: str, path: Path = README, markers: tuple[str, str] = MARKERS) -> None:
    """Replace what lies between the marker comments of README.md with `text`."""
    content = path.read_text()
    begin, end = content.index(markers[0]) + len(markers[0]), content.index(markers[1])
    path.write_text(content[:begin] + "\n" + text + "\n" + content[end:])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per model and backend (default 3)")
    parser.add_argument("--steps", nargs="+", default=[], help=f"N for every model, or MODEL=N (default {STEPS})")
    parser.add_argument("--num", type=int, default=1000, help="samples scored per run (default 1000)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(BOOK),
                        help="default: the book's three; the published presets by name")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--cache-dir", default=None, help="data cache (default $GAN_PARITY_CACHE or ~/.cache)")
    parser.add_argument("--out", default=None, help="folder for the samples (default: a temporary one)")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["float32"],
                        help="train each cell in each of these (default float32)")
    parser.add_argument("--readme", action="store_true", help="also write the table into README.md")
    parser.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)  # set in the child processes
    args = parser.parse_args(argv)
    steps = dict(STEPS)
    for word in args.steps:
        model, _, count = word.rpartition("=")
        if (model and model not in MODELS) or not count.isdigit() or int(count) < 1:
            parser.error(f"--steps takes N or MODEL=N with N >= 1 and MODEL one of {', '.join(MODELS)}, got {word!r}")
        steps |= {model: int(count)} if model else dict.fromkeys(MODELS, int(count))
    if args.seeds < 1 or args.num < 2:
        parser.error("--seeds must be at least 1, --num at least 2")
    if args.readme and len(args.precision) > 1 and set(args.models) <= set(PUBLISHED):
        parser.error("--readme: the README has no table of the published presets in several precisions; "
                     "name one --precision, or leave out --readme")
    args.steps_for = [steps[model] for model in args.models]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.backend:
        return child(args)
    classifiers, baselines, digits = {}, {}, {}
    for model in args.models:  # one classifier and one baseline per image size and channels
        key, spec = images_of(model), digits_spec(model, cache_dir=args.cache_dir)
        if key not in classifiers:
            digits[key] = spec.load()
            classifiers[key] = quality.load_classifier(digits[key], spec)[0]
            baselines[key] = quality.real_baseline(classifiers[key], digits[key].images)
    cells = {}
    with tempfile.TemporaryDirectory() as temporary:
        out = args.out or temporary
        Path(out).mkdir(parents=True, exist_ok=True)
        cases = itertools.product(zip(args.models, args.steps_for), args.precision, args.backends)
        for (model, steps), precision, backend in cases:
            results = []
            classifier, data = classifiers[images_of(model)], digits[images_of(model)]
            for run in run_child(args, backend, model, steps, out, precision):
                with np.load(run["path"]) as arrays:
                    requested = arrays["requested"] if "requested" in arrays.files else None
                    scores = quality.score(classifier, data.images, arrays["images"], requested, data.num_classes)
                results.append(scores | {"seconds": run["seconds"]})
            cells[model, backend, precision] = results
            print(f"{model} {backend} {precision}: FID {spread([r['fid'] for r in results])}", file=sys.stderr,
                  flush=True)
    text = table(cells, baselines, classifiers, args)
    print(text)
    if args.readme:
        write_readme(text, markers=readme_markers(args))


def readme_markers(args: argparse.Namespace) -> tuple[str, str]:
    """The README's table for this run: several precisions, the published presets only, or the main one."""
    if len(args.precision) > 1:
        return PRECISION_MARKERS
    return PUBLISHED_MARKERS if set(args.models) <= set(PUBLISHED) else MARKERS


if __name__ == "__main__":
    main()
