"""The command line both backends share: `gan-torch` and `gan-keras` take the same words.

  gan-torch train MODEL --dataset digits --epochs N --batch-size B --seed S --out DIR [--resume] [--preset book]
                        [--keep-checkpoints N] [--device auto|cpu|cuda|cuda:N|mps] [--precision float32|bfloat16|..]
                        (MODEL: dcgan, wgan_gp, cgan, or published --preset face32, ...)
  gan-torch sample MODEL --checkpoint DIR_OR_FILE --out grid.png [--num 64] [--seed S] [--device ...]
  gan-torch eval MODEL --checkpoint DIR_OR_FILE [--num 1000] [--seed S] [--dataset NAME] [--inception] [--json]
                       [--device ...]
  gan-torch export MODEL --checkpoint DIR_OR_FILE [--out generator.pt2] [--format torch|onnx]
Every field of the model's configuration (specs/models.py) is a flag of the same name (`--learning-rate`,
`--update-order`, ...) that overrides the preset. Every command takes --quiet and --verbose (specs/logs.py).
gan-keras also takes --backend tensorflow|jax|torch: the Keras backend, set before Keras is imported (default: the
environment's KERAS_BACKEND, else tensorflow).
--device and --precision are words here; each backend maps them onto its framework (torch_impl/devices.py,
keras_impl/devices.py), and a device the machine lacks is a user mistake. A user mistake prints one line and exits
with status 2. The arguments are parsed before the backend is imported
(`load_backend`), so `--help` and a mistyped flag need no framework, and a missing framework is one line naming
the extra that installs it. Ctrl-C prints where training stopped and the command that continues it (status 130).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import math
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from specs import logs
from specs.datasets import DATASETS, DataError, DatasetSpec
from specs.images import ALPHA, FITS
from specs.models import PRESETS, ConfigError, default_preset, get_config
from specs.quality import EvalRequest
from specs.runs import Interrupted, RunError

log = logging.getLogger(__name__)
KERAS_BACKENDS = ("tensorflow", "jax", "torch")  # the Keras backends gan-keras trains on
EXTRAS = {  # what each command line (and Keras backend) imports, each package with the extra that installs it
    "torch": {"torch": "torch", "tensorboard": "torch"},
    "keras": {"tensorflow": "keras", "keras": "keras"},
    "keras --backend jax": {"keras": "jax", "jax": "jax", "jaxlib": "jax", "tensorboard": "jax"},
    "keras --backend torch": {"keras": "keras-torch", "torch": "keras-torch", "tensorboard": "keras-torch"},
}
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


def finite_float(text: str) -> float:
    """A number that is neither NaN nor infinite (1e-4, 0.5, 2e-4)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def whole_number(text: str) -> int:
    """An integer written in decimal digits, with an optional sign (argparse's int also takes '1_000'), that fits
    in 32 bits, as the frameworks' shapes must."""
    if not re.fullmatch(r"\s*[-+]?\d+\s*", text):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if abs(int(text)) >= 2**31:
        raise argparse.ArgumentTypeError(f"expected a whole number below 2**31, got {text!r}")
    return int(text)


def count_up_to(limit: int) -> Callable[[str], int]:
    """A positive whole number of at most `limit` (samples: a grid, or what eval scores)."""

    def count(text: str) -> int:
        value = positive_int(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"expected at most {limit:,}, got {text!r}")
        return value

    return count


def float_tuple(text: str) -> tuple[float, ...]:
    """Numbers separated by commas ("0.19,0.18,0.17,0.16"); an empty string for none."""
    try:
        return tuple(finite_float(item) for item in text.split(",") if item.strip())
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected finite numbers separated by commas, got {text!r}") from None


DEVICE_HELP = {  # each backend's meaning of the same words
    "torch": "auto (default: a CUDA GPU when there is one, else the CPU), cpu, cuda (the first GPU; under torchrun "
             "each process takes the GPU of its LOCAL_RANK), cuda:N (GPU N) or mps (Apple's GPU)",
    "keras": "auto (default: the Keras backend's own placement, its first GPU when it sees one), cpu, cuda (the "
             "first GPU; with --strategy mirrored every GPU), cuda:N (GPU N alone) or mps (Apple's GPU: "
             "tensorflow-metal, or PyTorch's)",
}
PRECISIONS = ("float32", "bfloat16", "float16")  # what the layers compute in; weights, losses, files stay float32
PRECISION_HELP = ("float32 (default), or mixed precision: bfloat16 or float16 layers, float32 weights, losses and "
                  "gradient penalty; float16 adds dynamic loss scaling")


def parse_device(text: str) -> str:
    """auto, cpu, cuda, cuda:N or mps, as given; whether the machine has it is the backend's question."""
    word = text.strip().lower()
    if word in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", word):
        return word
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")


def device_flags(backend: str) -> argparse.ArgumentParser:
    """--device, which every command that computes takes (train, sample, eval)."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--device", type=parse_device, default="auto", metavar="DEVICE", help=DEVICE_HELP[backend])
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
        kind = {bool: parse_bool, float: finite_float, int: whole_number}.get(type(field.default), str)
        kind = float_tuple if isinstance(field.default, tuple) else kind
        group.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=None, metavar=field.name.upper(),
                           help=comments.get(field.name, "").replace("%", "%%"))


MAX_GRID = 10_000  # sample --num: one picture of that many images
MAX_SCORED = 1_000_000  # eval --num: twenty times the usual 50,000 of an Inception FID
DATA_PARALLEL = {  # the train --help epilog: how each backend trains on several processes, devices or machines
    "torch": "Several processes (one machine or several): torchrun --nproc_per_node N [--nnodes M --node_rank R "
             "--master_addr HOST --master_port PORT] -m torch_impl train MODEL ...; --batch-size is the global "
             "batch, split evenly over the processes; rank 0 alone writes --out.",
    "keras": "Several devices: --strategy mirrored (TensorFlow: MirroredStrategy; JAX: keras.distribution."
             "DataParallel). Several machines (TensorFlow): the same command on every worker, each with its own "
             "TF_CONFIG (MultiWorkerMirroredStrategy). --batch-size is the global batch, split evenly over the "
             "replicas; the chief alone writes --out. The torch backend trains in one process only.",
}


def output_flags() -> argparse.ArgumentParser:
    """--quiet and --verbose, which every command takes (after its other words)."""
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("messages")
    group.add_argument("--quiet", action="store_true", help="no progress bar; warnings and errors only")
    group.add_argument("--verbose", action="store_true",
                       help="debug messages too, and the framework's own native log (hidden otherwise)")
    return flags


def backend_flags(default) -> argparse.ArgumentParser:
    """gan-keras --backend, taken before the command and after it (a value after the command wins)."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--backend", choices=KERAS_BACKENDS, default=default,
                       help="the Keras backend: tensorflow, jax or torch (default: $KERAS_BACKEND, else tensorflow)")
    return flags


def build_parser(prog: str, backend: str) -> argparse.ArgumentParser:
    keras = backend == "keras"
    parser = argparse.ArgumentParser(prog=prog, description=f"Train and sample GANs with the {backend} backend.",
                                     parents=[backend_flags(None)] if keras else [])
    commands = parser.add_subparsers(dest="command", required=True)
    common = [output_flags()] + ([backend_flags(argparse.SUPPRESS)] if keras else [])
    train = commands.add_parser("train", help="train a model")
    train_models = train.add_subparsers(dest="model", required=True)
    for model in PRESETS:
        sub = train_models.add_parser(model, help=f"train a {model}", epilog=DATA_PARALLEL[backend],
                                      parents=[*common, device_flags(backend)])
        sub.add_argument("--dataset", default="digits", help=f"one of: {', '.join(DATASETS)} (default digits)")
        sub.add_argument("--data-dir", default=None, help="root of the raw data (folder, celeba, mnist, ...)")
        sub.add_argument("--attribute", default="Blond_Hair", help="celeba: the attribute used as label")
        sub.add_argument("--download", action="store_true", help="mnist, fashion_mnist: fetch missing IDX files")
        sub.add_argument("--cache-dir", default=None, help="data cache (default $GAN_PARITY_CACHE or ~/.cache)")
        add_decoding_flags(sub, default=True)
        sub.add_argument("--preset", default=default_preset(model),
                         help=f"one of: {', '.join(PRESETS[model])} (default {default_preset(model)})")
        sub.add_argument("--seed", type=seed_number, default=0, help="seeds weights, noise and batch order")
        sub.add_argument("--out", default=None, help=f"run folder (default runs/{backend}/{model}/DATASET)")
        sub.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
        sub.add_argument("--keep-checkpoints", type=positive_int, default=1, metavar="N",
                         help="keep the training checkpoints of the last N epochs in --out/checkpoints/ "
                              "(default 1: only the latest, in --out)")
        if backend == "keras":
            sub.add_argument("--strategy", choices=("mirrored", "multiworker"), default=None,
                             help="mirrored: a replica per local GPU, else per CPU device (TensorFlow: "
                                  "MirroredStrategy; JAX: keras.distribution.DataParallel); multiworker: the "
                                  "TensorFlow cluster in TF_CONFIG; default: multiworker when TF_CONFIG is set, "
                                  "else one device")
        sub.add_argument("--precision", choices=PRECISIONS, default="float32", help=PRECISION_HELP)
        add_config_flags(sub, model)
    sample = commands.add_parser("sample", help="write a grid of generated images from a checkpoint",
                                 parents=[*common, device_flags(backend)])
    sample.add_argument("model", choices=list(PRESETS))
    sample.add_argument("--checkpoint", required=True, help="a run folder or its checkpoint file")
    sample.add_argument("--out", default="samples.png",
                        help="picture to write; its extension names the format: .png (default samples.png), .jpg, "
                             ".jpeg, .webp")
    sample.add_argument("--num", type=count_up_to(MAX_GRID), default=64,
                        help=f"number of images (default 64, at most {MAX_GRID:,})")
    sample.add_argument("--seed", type=seed_number, default=0, help="seeds the noise")
    sample.add_argument("--label", default=None, help="cgan: draw only this class (its index or its name)")
    evaluate = commands.add_parser("eval", help="score a checkpoint's samples: FID, KID (specs/quality.py)",
                                   parents=[*common, device_flags(backend)])
    evaluate.add_argument("model", choices=list(PRESETS))
    evaluate.add_argument("--checkpoint", required=True, help="a run folder or its checkpoint file")
    evaluate.add_argument("--num", type=count_up_to(MAX_SCORED), default=1000,
                          help=f"samples to score (default 1000; at least {EvalRequest.MIN_NUM}, at most "
                               f"{MAX_SCORED:,})")
    evaluate.add_argument("--seed", type=seed_number, default=0, help="seeds the noise")
    evaluate.add_argument("--dataset", default=None, help="real data to compare with (default: the checkpoint's)")
    evaluate.add_argument("--data-dir", default=None, help="root of the raw data (default: the checkpoint's)")
    evaluate.add_argument("--attribute", default=None, help="celeba: the attribute used as label (default: the "
                                                             "checkpoint's)")
    evaluate.add_argument("--cache-dir", default=None, help="data cache (default $GAN_PARITY_CACHE or ~/.cache)")
    add_decoding_flags(evaluate, default=False)
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


def seed_number(text: str) -> int:
    """A seed: a whole number from 0 to 2**63 - 1 (numpy's and torch's generators take no other)."""
    value = whole_number(text)
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to 2**63 - 1, got {text!r}")
    return value


def add_decoding_flags(parser: argparse.ArgumentParser, default: bool) -> None:
    """--alpha and --fit: how pictures are read (specs/images.py); eval's default is what the run was trained on."""
    parser.add_argument("--alpha", choices=ALPHA, default="white" if default else None,
                        help="transparent pixels: composited on white (default) or black, or refused"
                             + ("" if default else " (default: the checkpoint's)"))
    parser.add_argument("--fit", choices=FITS, default="stretch" if default else None,
                        help="pictures that are not square: stretched (default), centre-cropped or padded with "
                             "black" + ("" if default else " (default: the checkpoint's)"))


def resolve_train(args: argparse.Namespace, backend: str) -> tuple[object, DatasetSpec, Path]:
    """The configuration, data set and run folder that the arguments ask for."""
    config_class = type(next(iter(PRESETS[args.model].values())))
    overrides = {field.name: getattr(args, field.name) for field in dataclasses.fields(config_class)}
    config = get_config(args.model, args.preset, **overrides)
    spec = DatasetSpec(
        name=args.dataset, path=args.data_dir, image_size=config.image_size, channels=config.channels,
        attribute=args.attribute, seed=args.seed, cache_dir=args.cache_dir, download=args.download,
        alpha=args.alpha, fit=args.fit,
    )
    out = Path(args.out or f"runs/{backend}/{args.model}/{args.dataset}")
    return config, spec, out


def export_out(args: argparse.Namespace, backend: str) -> Path:
    """The file `export` writes; RunError for a folder or a name whose extension is not the format's (Keras's
    writer insists on .keras, and a name should say what the file holds)."""
    out = Path(args.out or EXPORTS[backend][args.format])
    suffix = Path(EXPORTS[backend][args.format]).suffix
    if out.is_dir():
        raise RunError(f"--out {out} is a folder; name a file in it, e.g. {out / EXPORTS[backend][args.format]}")
    if out.suffix.lower() != suffix:
        others = ", ".join(f"--format {name} writes {Path(file).suffix}" for name, file in EXPORTS[backend].items())
        raise RunError(f"--out {out}: a {args.format} export is a {suffix} file; name it so ({others})")
    return out


def missing_framework(error: ImportError, backend: str, keras_backend: str | None = None) -> str | None:
    """The one line for an ImportError of a package that the command line's extra installs; None for any other."""
    package = (error.name or "").split(".")[0]
    command = f"{backend} --backend {keras_backend}" if keras_backend not in (None, "tensorflow") else backend
    extra = EXTRAS[command].get(package)
    if extra is None:
        return None
    return f"gan-{command} needs {package}, which is not installed here: pip install 'gan-parity[{extra}]'"


def continue_command(prog: str, argv: list[str], resume: bool) -> str:
    """The command line that continues an interrupted run: the same words, with --resume where a checkpoint is."""
    words = [word for word in argv if word != "--resume"]
    return shlex.join([prog, *words, *(["--resume"] if resume else [])])


def main(argv: list[str] | None, backend: str, load_backend: Callable[[argparse.Namespace], tuple]) -> int:
    """Parse, then import the backend (`load_backend(args)` -> its commands and checkpoint modules) and run the
    command; a user mistake or a missing framework becomes one line and status 2, Ctrl-C one line and 130."""
    prog = f"gan-{backend}"
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog, backend).parse_args(argv)
    logs.setup(prog, quiet=args.quiet, verbose=args.verbose)
    try:
        if args.command == "train":
            config, spec, out = resolve_train(args, backend)
        if args.command == "export":
            export_out(args, backend)  # a wrong name is refused before the framework loads
        try:
            commands, checkpoint = load_backend(args)
        except ImportError as error:
            message = missing_framework(error, backend, getattr(args, "backend", None))
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
                                  as_json=args.json, alpha=args.alpha, fit=args.fit)
            return evaluate(args.model, Path(args.checkpoint), request, checkpoint, device=args.device)
        if args.command == "export":
            return commands.export(args.model, Path(args.checkpoint), export_out(args, backend), args.format)
        return commands.sample(args.model, Path(args.checkpoint), Path(args.out), num=args.num, seed=args.seed,
                               label=args.label, device=args.device)
    except (DataError, RunError, ConfigError) as error:
        log.error("error: %s", error)
        return 2
    except Interrupted as stopped:
        end_progress_line(args.quiet)
        again = continue_command(prog, argv, resume=stopped.checkpoint_epoch > 0)
        log.error("%s; %s with: %s", stopped, "continue" if stopped.checkpoint_epoch else "start again", again)
        return 130
    except KeyboardInterrupt:
        end_progress_line(args.quiet)
        log.error("interrupted; nothing was written")
        return 130


def end_progress_line(quiet: bool) -> None:
    """A progress bar cut short by Ctrl-C ends without a newline: give it one, so the message has its own line."""
    if not quiet:
        sys.stderr.write("\n")
        sys.stderr.flush()
