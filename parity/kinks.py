"""Activations at a kink: the one thing besides round-off by which two correct float32 gradients may differ.

A ReLU's derivative jumps from 0 to 1 at 0, a LeakyReLU's from its slope to 1. Where an activation's input is
within float32 round-off of 0, each framework's float32 forward pass may put it on either side, and every gradient
below that activation then differs by a whole branch, not by round-off: svhn-tf1's generator, on the weights Keras
draws on JAX, has one t_conv1_relu input at -4.1e-7 in float64 that torch and TensorFlow compute as +1.7e-6 and JAX
as negative; torch's t_conv1.weight gradient is then 9.8e-3 away from JAX's and from float64's, and 1.4e-7 once that
one branch is set as float64 sets it. Neither side is wrong: the gradient is not a continuous function there.

So where the gradients check exceeds its tolerance (parity/checks.py), it asks whether whole branches explain it:
  candidates   the ReLU and LeakyReLU inputs that float64 puts within the forward check's tolerance of 0 (scaled
               like the forward check: times max(1, max |input|) of that activation's input), nearest first, at
               most NEAREST of them
  change       for each, the exact change of every gradient if that one input took the other branch: in float64, on
               a copy of the torch trainer with the same weights and inputs, (1 - slope) * dL/d(output) * d(input)/dθ
  explanation  a candidate whose change, added to torch's gradients with the sign that fits (either side may be the
               one that flipped), reduces the scaled sum of squares of Keras - torch joins a pool; the pool is
               applied greedily, largest reduction first, until what remains passes or nothing reduces it further
What remains is judged by the same tolerance, and the result names the branches it allowed for. A porting bug is
not a sum of whole branch changes of a few activations at 0, so it still fails, as does a difference that whole
branches explain only in part. Only the torch side is differentiated again: the float64 check proves the two sides'
mathematics equal. A check that passes as compared never comes here, and its numbers are the plain comparison's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from parity.results import to_numpy, to_torch

NEAREST = 16  # candidates tried, nearest the kink first: the branches that flip are the nearest (svhn-tf1's and
# face32's on JAX: the first and the second of 66 and 92); each costs a float64 backward pass through both networks
# (0.3 to 1 s at batch 8), and a check that fails on a real difference tries them all


@dataclass
class Branch:
    """One activation input at a kink: where it is, and what each gradient row gains if it takes the other side."""

    where: str  # e.g. "generator.t_conv1_relu[3, 175, 3, 5]"
    change: dict[str, np.ndarray]  # row label -> change of that gradient (torch layout), rows it reaches only


def _float64(data):
    """The check's inputs (numpy, torch layout; tuples element-wise) as float64 torch tensors."""
    if isinstance(data, tuple):
        return tuple(_float64(item) for item in data)
    return to_torch(np.asarray(data, np.float64))


def branches(trainer, networks, losses, groups, real, step: dict, tolerance: float) -> Iterator[Branch]:
    """Each activation input at a kink in one training-mode forward pass of a float64 copy of `trainer` (the
    check's torch trainer), with the change of each gradient row if it took the other branch. `groups[i]`: the
    (row label, parameter of `trainer`) pairs differentiated by losses[i]."""
    names = {id(param): name for name, param in trainer.named_parameters()}
    twin = copy.deepcopy(trainer).to(torch.float64).train()
    params = dict(twin.named_parameters())
    groups = [[(label, params[names[id(param)]]) for label, param in group] for group in groups]
    records = []  # (activation name, module, input, output) in the order the pass runs them
    modules = {module: f"{network}.{name}" for network in networks
               for name, module in getattr(twin, network).named_modules()
               if isinstance(module, (torch.nn.ReLU, torch.nn.LeakyReLU))}
    hooks = [module.register_forward_hook(lambda module, inputs, output: records.append(
        (modules[module], module, inputs[0], output))) for module in modules]
    try:
        out = twin.gan_losses(_float64(real), **{key: _float64(value) for key, value in step.items()})
    finally:
        for hook in hooks:
            hook.remove()
    near = []  # (distance from the kink in units of the bound, record index, position): nearest first
    for index, (_, _, x, _) in enumerate(records):
        distance = x.detach().abs()
        if x.requires_grad:
            bound = tolerance * max(1.0, float(distance.max()))
            near += [(float(distance[tuple(position)]) / bound, index, tuple(position))
                     for position in torch.nonzero(distance <= bound).tolist()]
    if not near:  # float64's own checks: nothing within 1e-10 of a kink, and no backward pass
        return
    outputs = [output for *_, output in records]
    upstream = [torch.autograd.grad(out[loss], outputs, retain_graph=True, allow_unused=True) for loss in losses]
    every = [param for group in groups for _, param in group]
    for _, index, position in sorted(near)[:NEAREST]:
        name, module, x, _ = records[index]
        inner = dict(zip(map(id, every), torch.autograd.grad(x[position], every, retain_graph=True,
                                                             allow_unused=True)))
        side = -1.0 if x[position] > 0 else 1.0  # the other branch: off where float64 has it on, and back
        jump = 1.0 - getattr(module, "negative_slope", 0.0)
        change = {}
        for group, grads in zip(groups, upstream):
            weight = 0.0 if grads[index] is None else float(grads[index][position])
            for label, param in group:
                if weight and inner[id(param)] is not None:
                    change[label] = to_numpy(side * jump * weight * inner[id(param)])
        if change:
            yield Branch(f"{name}[{', '.join(map(str, position))}]", change)


def explained(rows: list, candidates: Iterable[Branch], passes: Callable[[list], bool]) -> tuple[list, list[Branch]]:
    """The rows (label, torch value, Keras value) with torch's values moved by whole branch changes (each once, with
    the sign that fits) that explain Keras - torch, and the branches used. Candidates come nearest the kink first;
    one that reduces the difference on its own joins the pool, and the pool is applied greedily (the largest
    reduction of the sum of squares first, while one reduces it) until `passes(rows)`. Returns the moved rows of
    the last try, or the rows as they were and no branches when no candidate reduces the difference."""
    keras_side = {label: np.asarray(actual, np.float64) for label, _, actual in rows}
    scale = {label: max(1.0, float(np.max(np.abs(value), initial=0.0))) for label, value in keras_side.items()}

    def gain(branch: Branch, torch_side: dict) -> tuple[float, float]:  # (reduction of the sum of squares, sign)
        inner = norm = 0.0
        for label, change in branch.change.items():
            inner += float(np.sum((keras_side[label] - torch_side[label]) * change)) / scale[label] ** 2
            norm += float(np.sum(change * change)) / scale[label] ** 2
        return 2 * abs(inner) - norm, 1.0 if inner >= 0 else -1.0

    start = {label: np.asarray(expected, np.float64) for label, expected, _ in rows}
    pool, moved, used = [], rows, []
    for candidate in candidates:
        if not set(candidate.change) <= set(start) or gain(candidate, start)[0] <= 0:
            continue
        pool.append(candidate)
        torch_side, left, used = dict(start), list(pool), []
        while left:
            best = max(left, key=lambda branch: gain(branch, torch_side)[0])
            reduction, sign = gain(best, torch_side)
            if reduction <= 0:
                break
            for label, change in best.change.items():
                torch_side[label] = torch_side[label] + sign * change
            left.remove(best)
            used.append(best)
        moved = [(label, torch_side[label], actual) for label, _, actual in rows]
        if passes(moved):
            break
    return moved, used
