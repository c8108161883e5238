"""Where a torch train step spends its time: torch.profiler over a few steps, grouped into kinds of work.

Usage: python benchmarks/profile_step.py [--model dcgan] [--preset digits] [--precision float32] [--threads N]
                                         [--steps 3] [--layout channels_last|contiguous] [--top 25]
One trainer as gan-torch builds it (torch_impl/trainers.py: channels-last kernels, the vectorised dropout draw,
fused Adam), a fixed random batch in the trainer's layout, 2 warm-up steps, then `--steps` profiled ones.
Prints the self CPU time of each kind of work (convolutions forward and backward, BatchNorm, dropout masks,
activations, Adam, layout copies, the rest) as a share of the step, then the top operators by self CPU time with
their input shapes. `--threads 1` keeps other processes' load out of the shares (a waiting OpenMP thread's spin
counts as CPU time); `--layout contiguous` profiles the NCHW-contiguous trainer the remedies replaced.
What it showed on this machine is in the README (Speed).
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

from specs.models import PRESETS, get_config

KINDS = (  # (kind, operator name fragments): the first that matches an operator's name is its kind
    ("convolution backward", ("convolution_backward",)),
    ("convolution forward", ("convolution", "conv2d", "conv_transpose")),
    ("BatchNorm", ("batch_norm",)),
    ("dropout masks", ("bernoulli", "uniform_", "rand", "dropout")),
    ("activations", ("leaky_relu", "tanh", "sigmoid")),
    ("Adam", ("adam", "_foreach", "addcdiv", "addcmul", "lerp", "sqrt")),
    ("layout copies", ("copy_", "clone", "contiguous", "_to_copy")),
)


def kind_of(name: str) -> str:
    lowered = name.lower()
    return next((kind for kind, parts in KINDS if any(part in lowered for part in parts)), "the rest")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(PRESETS), default="dcgan")
    parser.add_argument("--preset", default="digits")
    parser.add_argument("--precision", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--threads", type=int, default=None, help="torch's intra-op threads (default: torch's)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--layout", choices=("channels_last", "contiguous"), default="channels_last")
    parser.add_argument("--max-batch", type=int, default=128)
    parser.add_argument("--top", type=int, default=25, help="operators listed (default 25)")
    args = parser.parse_args(argv)

    import torch
    from torch.profiler import ProfilerActivity, profile

    from torch_impl.trainers import build_trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    preset = get_config(args.model, args.preset)
    config = get_config(args.model, args.preset, batch_size=min(preset.batch_size, args.max_batch))
    trainer = build_trainer(args.model, config, seed=0, precision=args.precision)
    trainer.train()
    layout = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    trainer.to(memory_format=layout)
    rng = np.random.default_rng(0)
    shape = (config.batch_size, config.channels, config.image_size, config.image_size)
    images = torch.from_numpy(rng.uniform(-1, 1, shape).astype(np.float32)).contiguous(memory_format=layout)
    batch = images
    if config.conditional:
        classes = torch.from_numpy(rng.integers(0, config.num_classes, len(images)))
        batch = images, torch.eye(config.num_classes)[classes]
    for _ in range(2):
        trainer.train_step(batch)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        for _ in range(args.steps):
            trainer.train_step(batch)
    events = profiler.key_averages()
    shares = collections.Counter()
    for event in events:
        shares[kind_of(event.key)] += event.self_cpu_time_total
    total = sum(shares.values())
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} thread{'s' if threads > 1 else ''}; {args.model} {args.preset} batch "
          f"{config.batch_size}, {args.precision}, {args.layout}: {total / 1e6 / args.steps:.2f} s of self CPU time "
          f"per step ({args.steps} steps profiled)\n")
    print("| kind of work | share of the step |\n|---|---:|")
    for kind, time in shares.most_common():
        print(f"| {kind} | {100 * time / total:.1f}% |")
    print()
    print(profiler.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=args.top, max_name_column_width=36, max_shapes_column_width=70))


if __name__ == "__main__":
    main()
