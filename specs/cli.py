"""The command line both backends share: `gan-torch` and `gan-keras` take the same words.

  gan-torch train MODEL --dataset digits --epochs N --batch-size B --seed S --out DIR [--resume] [--preset book]
                        [--keep-checkpoints N] [--device auto|cpu|cuda|cuda:N|mps] [--precision float32|bfloat16|..]
  gan-torch sample MODEL --checkpoint DIR_OR_FILE --out grid.png [--num 64] [--seed S] [--device ...]
  gan-torch eval MODEL --checkpoint DIR_OR_FILE [--num 1000] [--seed S] [--dataset NAME] [--inception] [--json]
                       [--device ...]
  gan-torch export MODEL --checkpoint DIR_OR_FILE [--out generator.pt2] [--format torch|onnx]
Every field of the model's configuration (specs/models.py) is a flag of the same name (`--learning-rate`,
`--update-order`, ...) that overrides the preset. Every command takes --quiet and --verbose (specs/logs.py).
--device and --precision are words here; each backend maps them onto its framework (torch_impl/devices.py,
keras_impl/devices.py), and a device the machine lacks is a user mistake. A user mistake prints one line and exits
with status 2. The arguments are parsed before the backend is imported
(`load_backend`), so `--help` and a mistyped flag need no framework, and a missing framework is one line naming
the extra that installs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import re
from collections.abc import Callable
from pathlib import Path

from specs import logs
from specs.datasets import DATASETS, DataError, DatasetSpec
from specs.models import PRESETS, ConfigError, get_config
from specs.quality import EvalRequest
from specs.runs import RunError

log = logging.getLogger(__name__)
FRAMEWORKS = {"torch": ("torch", "tensorboard"), "keras": ("tensorflow", "keras")}  # what each extra installs
EXPORTS = {  # export --format: the file a standalone generator is written to by default
    "torch": {"torch": "generator.pt2", "onnx": "generator.onnx"},
    "keras": {"keras": "generator.keras", "onnx": "generator.onnx"},
}


def parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


DEVICE_HELP = ("auto (default: a CUDA GPU when there is one, else the CPU), cpu, cuda (the first GPU; under torchrun "
               "each process takes the GPU of its LOCAL_RANK), cuda:N (GPU N) or mps (Apple's GPU)")
PRECISIONS = ("float32", "bfloat16", "float16")  # what the layers compute in; weights, losses, files stay float32
PRECISION_HELP = ("float32 (default), or mixed precision: bfloat16 or float16 layers, float32 weights, losses and "
                  "gradient penalty; float16 adds dynamic loss scaling")


def parse_device(text: str) -> str:
    """auto, cpu, cuda, cuda:N or mps, as given; whether the machine has it is the backend's question."""
    word = text.strip().lower()
    if word in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", word):
        return word
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")


def device_flags() -> argparse.ArgumentParser:
    """--device, which every command that computes takes (train, sample, eval)."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--device", type=parse_device, default="auto", metavar="DEVICE", help=DEVICE_HELP)
    return flags


def field_comments(config_class: type) -> dict[str, str]:
    """The comment after each field of a configuration dataclass (specs/models.py), to serve as its --help."""
    comments: dict[str, str] = {}
    for cls in reversed(config_class.__mro__[:-1]):
        for line in inspect.getsource(cls).splitlines():
            match = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.+)$", line)
            if match:
                comments[match.group(1)] = match.group(2)
    return comments


def add_config_flags(parser: argparse.ArgumentParser, model: str) -> None:
    """One flag per configuration field; None means: keep the preset's value."""
    config_class = type(next(iter(PRESETS[model].values())))
    comments = field_comments(config_class)
    group = parser.add_argument_group("configuration (overrides the preset; see specs/models.py)")
    for field in dataclasses.fields(config_class):
        kind = parse_bool if field.type in (bool, "bool") else type(field.default)
        group.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=None, metavar=field.name.upper(),
                           help=comments.get(field.name, "").replace("%", "%%"))


DATA_PARALLEL = {  # the train --help epilog: how each backend trains on several processes, devices or machines
    "torch": "Several processes (one machine or several): torchrun --nproc_per_node N [--nnodes M --node_rank R "
             "--master_addr HOST --master_port PORT] -m torch_impl train MODEL ...; --batch-size is the global "
             "batch, split evenly over the processes; rank 0 alone writes --out.",
    "keras": "Several devices: --strategy mirrored. Several machines: the same command on every worker, each with "
             "its own TF_CONFIG (MultiWorkerMirroredStrategy); --batch-size is the global batch, split evenly over "
             "the replicas; the chief alone writes --out.",
}


def output_flags() -> argparse.ArgumentParser:
    """--quiet and --verbose, which every command takes (after its other words)."""
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("messages")
    group.add_argument("--quiet", action="store_true", help="no progress bar; warnings and errors only")
    group.add_argument("--verbose", action="store_true",
                       help="debug messages too, and the framework's own native log (hidden otherwise)")
    return flags


def build_parser(prog: str, backend: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=f"Train and sample GANs with the {backend} backend.")
    commands = parser.add_subparsers(dest="command", required=True)
    common = [output_flags()]
    train = commands.add_parser("train", help="train a model")
    train_models = train.add_subparsers(dest="model", required=True)
    for model in PRESETS:
        sub = train_models.add_parser(model, help=f"train a {model}", epilog=DATA_PARALLEL[backend],
                                      parents=[*common, device_flags()])
        sub.add_argument("--dataset", default="digits", help=f"one of: {', '.join(DATASETS)} (default digits)")
        sub.add_argument("--data-dir", default=None, help="root of the raw data (folder, celeba, mnist, ...)")
        sub.add_argument("--attribute", default="Blond_Hair", help="celeba: the attribute used as label")
        sub.add_argument("--download", action="store_true", help="mnist, fashion_mnist: fetch missing IDX files")
        sub.add_argument("--cache-dir", default=None, help="data cache (default $GAN_PARITY_CACHE or ~/.cache)")
        sub.add_argument("--preset", default="digits", help=f"one of: {', '.join(PRESETS[model])} (default digits)")
        sub.add_argument("--seed", type=int, default=0, help="seeds weights, noise and batch order")
        sub.add_argument("--out", default=None, help=f"run folder (default runs/{backend}/{model}/DATASET)")
        sub.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
        sub.add_argument("--keep-checkpoints", type=positive_int, default=1, metavar="N",
                         help="keep the training checkpoints of the last N epochs in --out/checkpoints/ "
                              "(default 1: only the latest, in --out)")
        if backend == "keras":
            sub.add_argument("--strategy", choices=("mirrored", "multiworker"), default=None,
                             help="tf.distribute strategy: mirrored (every local GPU, else every logical CPU "
                                  "device) or multiworker (TF_CONFIG); default: multiworker when TF_CONFIG is set, "
                                  "else one device")
        sub.add_argument("--precision", choices=PRECISIONS, default="float32", help=PRECISION_HELP)
        add_config_flags(sub, model)
    sample = commands.add_parser("sample", help="write a grid of generated images from a checkpoint",
                                 parents=[*common, device_flags()])
    sample.add_argument("model", choices=list(PRESETS))
    sample.add_argument("--checkpoint", required=True, help="a run folder or its checkpoint file")
    sample.add_argument("--out", default="samples.png", help="PNG to write (default samples.png)")
    sample.add_argument("--num", type=positive_int, default=64, help="number of images (default 64)")
    sample.add_argument("--seed", type=int, default=0, help="seeds the noise")
    sample.add_argument("--label", default=None, help="cgan: draw only this class (its index or its name)")
    evaluate = commands.add_parser("eval", help="score a checkpoint's samples: FID, KID (specs/quality.py)",
                                   parents=[*common, device_flags()])
    evaluate.add_argument("model", choices=list(PRESETS))
    evaluate.add_argument("--checkpoint", required=True, help="a run folder or its checkpoint file")
    evaluate.add_argument("--num", type=positive_int, default=1000, help="samples to score (default 1000)")
    evaluate.add_argument("--seed", type=int, default=0, help="seeds the noise")
    evaluate.add_argument("--dataset", default=None, help="real data to compare with (default: the checkpoint's)")
    evaluate.add_argument("--data-dir", default=None, help="root of the raw data (folder, celeba, mnist, ...)")
    evaluate.add_argument("--attribute", default="Blond_Hair", help="celeba: the attribute used as label")
    evaluate.add_argument("--cache-dir", default=None, help="data cache (default $GAN_PARITY_CACHE or ~/.cache)")
    evaluate.add_argument("--inception", action="store_true", help="also the Inception FID (needs [inception])")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    formats = EXPORTS[backend]
    export = commands.add_parser("export", help="write the generator as a standalone file", parents=common,
                                 description="Write a checkpoint's generator as a file that the framework's plain "
                                             "API loads without this project: "
                                             + ("torch.export.load(path).module()" if backend == "torch"
                                                else "keras.models.load_model(path)")
                                             + ", or ONNX where onnx and its exporter are installed.")
    export.add_argument("model", choices=list(PRESETS))
    export.add_argument("--checkpoint", required=True, help="a run folder or its checkpoint file")
    export.add_argument("--format", choices=list(formats), default=next(iter(formats)),
                        help=f"default {next(iter(formats))}")
    defaults = ", ".join(f"{name} for {key}" for key, name in formats.items())
    export.add_argument("--out", default=None, help=f"file to write (default: {defaults})")
    return parser


def resolve_train(args: argparse.Namespace, backend: str) -> tuple[object, DatasetSpec, Path]:
    """The configuration, data set and run folder that the arguments ask for."""
    config_class = type(next(iter(PRESETS[args.model].values())))
    overrides = {field.name: getattr(args, field.name) for field in dataclasses.fields(config_class)}
    config = get_config(args.model, args.preset, **overrides)
    spec = DatasetSpec(
        name=args.dataset, path=args.data_dir, image_size=config.image_size, channels=config.channels,
        attribute=args.attribute, seed=args.seed, cache_dir=args.cache_dir, download=args.download,
    )
    out = Path(args.out or f"runs/{backend}/{args.model}/{args.dataset}")
    return config, spec, out


def missing_framework(error: ImportError, backend: str) -> str | None:
    """The one line for an ImportError of a package that the backend's extra installs; None for any other."""
    package = (error.name or "").split(".")[0]
    if package not in FRAMEWORKS[backend]:
        return None
    return f"gan-{backend} needs {package}, which is not installed here: pip install 'gan-parity[{backend}]'"


def main(argv: list[str] | None, backend: str, load_backend: Callable[[bool], tuple]) -> int:
    """Parse, then import the backend (`load_backend(verbose)` -> its commands and checkpoint modules) and run the
    command; a user mistake or a missing framework becomes one line and status 2."""
    prog = f"gan-{backend}"
    args = build_parser(prog, backend).parse_args(argv)
    logs.setup(prog, quiet=args.quiet, verbose=args.verbose)
    try:
        if args.command == "train":
            config, spec, out = resolve_train(args, backend)
        try:
            commands, checkpoint = load_backend(args.verbose)
        except ImportError as error:
            message = missing_framework(error, backend)
            if message is None:
                raise
            log.error("error: %s", message)
            return 2
        if args.command == "train":
            options = {"strategy": args.strategy} if "strategy" in args else {}  # keras: its tf.distribute strategy
            return commands.train(args.model, config, spec, out, seed=args.seed, resume=args.resume,
                                  progress=not args.quiet, keep=args.keep_checkpoints, device=args.device,
                                  precision=args.precision, **options)
        if args.command == "eval":
            from specs.evaluate import evaluate

            request = EvalRequest(num=args.num, seed=args.seed, dataset=args.dataset, data_dir=args.data_dir,
                                  attribute=args.attribute, cache_dir=args.cache_dir, inception=args.inception,
                                  as_json=args.json)
            return evaluate(args.model, Path(args.checkpoint), request, checkpoint, device=args.device)
        if args.command == "export":
            out = Path(args.out or EXPORTS[backend][args.format])
            return commands.export(args.model, Path(args.checkpoint), out, args.format)
        return commands.sample(args.model, Path(args.checkpoint), Path(args.out), num=args.num, seed=args.seed,
                               label=args.label, device=args.device)
    except (DataError, RunError, ConfigError) as error:
        log.error("error: %s", error)
        return 2
