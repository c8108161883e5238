"""Why a user's pair diverges: the first divergence matched against the pitfall catalogue, each fix tried on it.

The first failing row names a pair of layers (forward rows by layer first; then the loss, the gradients, the
optimiser step, batch independence). At a layer, the port's layer is run on the source's input, the same numbers
(parity/layer_fixes.py): when it disagrees there, the catalogue's fixes are tried on a copy of it; when it agrees,
the inputs differed already, by code between the layers, and the fixes are passes of the whole pair:
  between layers  dropout left on at inference (two passes of one side differ; the fix: functional dropout that
                  follows the mode), a layer on one side only (the pass run without it), a trailing sigmoid
  structure       a layer with weights on one side only: the pass run without it; a BatchNorm without centre
  step            each optimiser setting that differs set to the source's, added up (torch's Adam by Keras's rule
                  for epsilon; Keras's betas as float64 numbers in float64)
  batch           the BatchNorm where a critic's score starts to depend on the batch, run on running statistics
A fix holds when what failed then agrees; its catalogue entries (number, title, wrong and right lines) are named.
"""

from __future__ import annotations

import math

from parity import gradients, layer_fixes
from parity.findings import Finding, Trial, worst
from parity.results import diffs
from parity.user_pair import Row, UserPair

SECTIONS = ("structure", "weights", "inference", "training", "dropout", "gradients", "step", "batch")
FORWARD = ("structure", "weights", "inference", "training", "dropout")  # ordered by layer; the rest after them
LOSS_NOTES = {
    "bce": "every layer agrees and the losses differ: BCE on probabilities differs between the frameworks. torch's "
           "BCELoss clamps the log at -100; Keras clips to [1e-7, 1 - 1e-7] and adds 1e-7 inside the log, or takes "
           "the logits path when the input comes from a Keras sigmoid. Return logits and use bce-logits "
           "(BCEWithLogitsLoss, from_logits=True) on both sides",
}


def first_failure(rows: list[Row]) -> Row | None:
    """The first layer whose forward (weights, output, running statistics, dropout rate) diverges; else the loss,
    then the first gradient, the step, batch independence."""

    def order(row: Row) -> tuple:
        if row.section in FORWARD:
            return 0, row.pair, SECTIONS.index(row.section)
        return SECTIONS.index(row.section), row.what != "loss", row.pair

    return min((row for row in rows if not row.passed), key=order, default=None)


def diagnose(pair: UserPair, rows: list[Row], loss=None, optimizers=None) -> list[Finding]:
    """The finding at the first divergence (none when everything agrees)."""
    first = first_failure(rows)
    if first is None:
        return []
    here = [row for row in rows if row.pair == first.pair and not row.passed
            and (row.section in FORWARD) == (first.section in FORWARD)]
    observed = "; ".join(f"{what(row)} {row.scaled:.3g}" + (f" ({row.note})" if row.note else "") for row in here[:4])
    label = pair.pairs[first.pair].label if first.pair < len(pair.pairs) else "the model's output"
    finding = Finding(first.pair, label, observed)
    if first.section == "structure":
        structure(pair, first, finding, loss)
    elif first.section == "step":
        optimizer_step(pair, loss, optimizers, finding)
    elif first.section == "batch":
        batch(pair, here, finding)
    elif first.section == "gradients":
        finding.notes.append(LOSS_NOTES.get(loss.name, "the two loss functions compute different values")
                             if first.what == "loss" else
                             "every layer's forward and the loss agree and the gradients differ: look at code that "
                             "only the backward pass sees (a custom autograd function, a detach, a hook)")
    elif first.pair >= len(pair.pairs):
        after_last_layer(pair, here, finding)
    elif not layer_fixes.layer(pair, first.pair, here, finding):
        between(pair, first.pair, [row.section for row in here if row.section in ("inference", "training")]
                or ["inference"], finding)
    return [finding]


def what(row: Row) -> str:
    if row.section in ("inference", "training"):
        return f"{row.section} {row.what}"
    return f"{row.section} {row.label}" if row.section in ("weights", "gradients", "step") else row.label


def name(side: str) -> str:
    return "torch" if side == "torch" else "Keras"


# ------------------------------------------------------------------------------------------- Between layers


def input_difference(pair: UserPair, index: int, passed) -> float:
    """The scaled difference of a pair's inputs in one pass (of the model outputs for index len(pairs))."""
    torch_trace, keras_trace, torch_out, keras_out = passed
    if index >= len(pair.pairs):
        return pair.output_row("", torch_out, keras_out, None).scaled
    layer_pair = pair.pairs[index]
    return pair.compare_arrays(torch_trace.inputs.get(layer_pair.torch.first.name),
                               keras_trace.inputs.get(layer_pair.keras.first.name), order=layer_pair.in_order)[1]


def skip_trials(pair: UserPair, index: int, mode: str, candidates, before: dict, finding: Finding,
                critic: bool = False) -> None:
    """Each layer on one side only, left out of a pass: does the pair's input (or the output) then agree?"""
    training = mode == "training"
    for layer_pair in candidates:
        side, group = ("torch", layer_pair.torch) if layer_pair.torch else ("keras", layer_pair.keras)
        skipped = {(side, position.name) for position in group.positions}
        try:
            after = input_difference(pair, index, pair.pass_with(training, skip=skipped))
        except Exception:  # noqa: BLE001 - without it the network does not run (a reshape, a flatten)
            continue
        number = [12] if group.fields["kind"] == "sigmoid" else [19] if critic and group.main.kind == "batch_norm" \
            else []
        finding.trials.append(Trial(f"{name(side)} {group.label} ({group.family}) left out", number, before,
                                    {key: after for key in before}, pair.tolerance))


def between(pair: UserPair, index: int, modes: list[str], finding: Finding) -> None:
    """The layer agrees on the same input: the difference arises before it, outside the paired layers."""
    previous = max((i for i in range(index) if pair.pairs[i].torch and pair.pairs[i].keras), default=None)
    start = 0 if previous is None else previous + 1
    gap = [p for p in pair.pairs[start:index] if p.torch is None or p.keras is None]
    start = f"after {pair.pairs[previous].label}" if previous is not None else "at the model's input"
    finding.observed += f"; this layer agrees on the same input: its input differs already, {start}"
    names = [f"{'torch' if p.torch else 'Keras'} {(p.torch or p.keras).label} ({(p.torch or p.keras).family})"
             for p in gap]
    finding.notes.append(f"in between: {', '.join(names) if names else 'no layer'} on one side only, and code "
                         "outside layers (a torch forward's x.view or F.* calls, a Keras call's ops)")
    mode = modes[0]
    before = {f"{mode} input": input_difference(pair, index, pair.pass_with(mode == "training"))}
    if mode == "inference":
        dropout_trials(pair, index, before, finding)
    skip_trials(pair, index, mode, gap, before, finding)


def dropout_trials(pair: UserPair, index: int, before: dict, finding: Finding) -> None:
    """Dropout left on at inference: two inference passes of one side differ; the fix makes the input agree."""
    from parity import tracing

    first, second = pair.pass_with(False), pair.pass_with(False)
    for side, at, patch, text in (
            ("torch", 0, lambda: tracing.torch_dropout_obeys_mode(pair.torch_model),
             "torch's functional dropout given training=self.training"),
            ("keras", 1, lambda: tracing.dropout_off(pair.keras_leaves), "Keras's dropout called with training off")):
        a, b = first[at], second[at]
        changing = [key for key in a.outputs if isinstance(a.outputs[key], type(b.outputs.get(key)))
                    and hasattr(a.outputs[key], "shape") and diffs(a.outputs[key], b.outputs[key])[1] > 0]
        outputs_move = diffs(first[2 + at], second[2 + at])[1] > 0 \
            if hasattr(first[2 + at], "shape") else False
        if changing or outputs_move:
            finding.notes.append(f"{name(side)} is not deterministic at inference: two passes differ"
                                 + (f", from {changing[0]} on" if changing else ""))
            after = input_difference(pair, index, pair.pass_with(False, patch=patch))
            finding.trials.append(Trial(text, [11], before, {key: after for key in before}, pair.tolerance))


def after_last_layer(pair: UserPair, here: list[Row], finding: Finding) -> None:
    """Every pair agrees and the model outputs do not: something after the last pair (a trailing sigmoid)."""
    modes = [row.section for row in here if row.section in ("inference", "training")] or ["inference"]
    last = max((i for i, p in enumerate(pair.pairs) if p.torch and p.keras), default=-1)
    trailing = pair.pairs[last + 1:]
    names = [f"{'torch' if p.torch else 'Keras'} {(p.torch or p.keras).label}" for p in trailing]
    finding.notes.append(f"every paired layer agrees; after the last one: {', '.join(names) or 'no layer'} on one "
                         "side only, and code outside layers")
    mode = modes[0]
    before = {f"{mode} output": input_difference(pair, len(pair.pairs), pair.pass_with(mode == "training"))}
    skip_trials(pair, len(pair.pairs), mode, trailing, before, finding)


# ----------------------------------------------------------------------------------------------- Structure


def structure(pair: UserPair, row: Row, finding: Finding, loss) -> None:
    finding.observed = row.label
    if row.pair >= len(pair.pairs):
        return
    layer_pair = pair.pairs[row.pair]
    if layer_pair.torch is None or layer_pair.keras is None:
        group = layer_pair.torch or layer_pair.keras
        critic = loss is not None and loss.critic and group.main.kind == "batch_norm"
        if critic:
            finding.notes.append("a BatchNorm in a critic: a sample's score depends on its batch, and the per-sample "
                                 "gradient penalty no longer means what it says")
        later = [i for i in range(row.pair + 1, len(pair.pairs)) if pair.pairs[i].torch and pair.pairs[i].keras]
        index = later[0] if later else len(pair.pairs)
        for mode in ("training", "inference"):
            before = {f"{mode} input": input_difference(pair, index, pair.pass_with(mode == "training"))}
            if before[f"{mode} input"] > pair.tolerance:
                skip_trials(pair, index, mode, [layer_pair], before, finding, critic)
                return
        return
    if "present in only one framework" in row.label and layer_pair.torch.main.kind == "batch_norm":
        finding.notes.append("BatchNormalization(center=False) or (scale=False) on one side: beta or gamma exists "
                             "in one framework only")
        if pair.port == "keras" and layer_pair.torch.fields["center"]:
            finding.trials.append(centred_keras_batch_norm(pair, row.pair))
    elif "present in only one framework" in row.label:
        finding.notes.append("a bias on one side only (bias=False against use_bias=True, or the reverse)")


def centred_keras_batch_norm(pair: UserPair, index: int) -> Trial:
    """The Keras port's BatchNorm with centre and scale, every torch tensor copied: does it convert and agree?"""
    from parity import convert

    layer_pair = pair.pairs[index]
    module = layer_pair.torch.main.layer

    def build() -> list:  # after the pair's state is restored
        weights = {"gamma": module.weight, "beta": module.bias, "moving_mean": module.running_mean,
                   "moving_variance": module.running_var}
        weights = {key: value.detach().numpy().copy() for key, value in weights.items()}
        return [layer_fixes.clone(pair, layer_pair.keras, {"center": True, "scale": True}, weights)]

    fix = layer_fixes.Fix("", None, build=build)
    problems: list[str] = []
    convert._layer_ports("bn", module, fix.build()[0], (None, None), problems.append, set())
    after = layer_fixes.measure(pair, index, ["inference", "training"], fix)
    return Trial("Keras BatchNormalization(center=True, scale=True), beta and gamma copied from torch", [28],
                 {"structure": math.inf}, {"structure": math.inf if problems else 0.0} | after, pair.tolerance)


# ----------------------------------------------------------------------------------------------- Optimiser


def optimizer_step(pair: UserPair, loss, optimizers, finding: Finding) -> None:
    from torch_impl.optim import Adam as KerasRuleAdam

    built = gradients.build_optimizers(pair, optimizers)
    differences = gradients.optimizer_differences(*built)
    finding.notes += [f"optimiser {key}: torch {t!r}, Keras {k!r}" for key, t, k in differences]
    tolerance = gradients.TOLERANCES[pair.dtype]["trajectory"]
    before = {"step": worst(row.scaled for row in gradients.step(pair, loss, *built))}
    fixes = {}
    for key, _, _ in differences:
        if key in ("epsilon", "epsilon_rule"):
            fixes["epsilon"] = ("torch's Adam by Keras's rule with Keras's epsilon (torch_impl/optim.py)", 16)
        elif key in ("beta_1", "beta_2"):
            fixes[key] = (f"{name(pair.port)} {key} set to the source's", 17)
        elif key == "l2_weight_decay":
            fixes[key] = ("torch's weight_decay 0 (Keras has no L2 term)", 26)
        elif key in ("clipnorm", "clipvalue", "global_clipnorm"):
            fixes[key] = (f"Keras's {key} None (torch clips in the loop, if at all)", 27)
        elif key == "learning_rate":
            fixes[key] = (f"{name(pair.port)} learning rate set to the source's", None)
    if pair.dtype == "float64":
        fixes["float64 betas"] = ("Keras's betas as float64 numbers (TensorFlow casts Python floats to float32)",
                                  None)
    applied = []
    for key, (text, _) in fixes.items():
        applied.append(key)
        changed = modified_optimizers(pair, optimizers, applied, KerasRuleAdam)
        after = {"step": worst(row.scaled for row in gradients.step(pair, loss, *changed))}
        numbers = [fixes[k][1] for k in applied if fixes[k][1] is not None]
        finding.trials.append(Trial(text if len(applied) == 1 else f"+ {text}", numbers, before, after, tolerance))
        if finding.trials[-1].agrees:
            return


def modified_optimizers(pair: UserPair, optimizers, keys: list[str], keras_rule_adam):
    torch_optimizer, keras_optimizer = gradients.build_optimizers(pair, optimizers)
    group = torch_optimizer.param_groups[0]
    config, keras_changes = keras_optimizer.get_config(), {}
    for key in keys:
        if key == "epsilon":
            torch_optimizer = keras_rule_adam(list(pair.torch_model.parameters()), lr=group["lr"],
                                              betas=group["betas"], epsilon=config["epsilon"],
                                              weight_decay=group.get("weight_decay", 0.0))
            group = torch_optimizer.param_groups[0]
        elif key in ("beta_1", "beta_2", "learning_rate") and pair.port == "keras":
            keras_changes[key] = group["lr"] if key == "learning_rate" else group["betas"][key == "beta_2"]
        elif key in ("beta_1", "beta_2"):
            betas = list(group["betas"])
            betas[key == "beta_2"] = config[key]
            group["betas"] = tuple(betas)
        elif key == "learning_rate":
            group["lr"] = config["learning_rate"]
        elif key == "l2_weight_decay":
            group["weight_decay"] = 0.0
        elif key in ("clipnorm", "clipvalue", "global_clipnorm"):
            keras_changes[key] = None
    with gradients.keras_dtype(pair.dtype):
        given = keras_optimizer
        keras_optimizer = type(given).from_config(config | keras_changes)
        for beta in ("beta_1", "beta_2"):  # from_config makes Python floats of the numpy ones the factory gave
            if "float64 betas" in keys or isinstance(getattr(given, beta, None), gradients.np.floating):
                setattr(keras_optimizer, beta, gradients.np.float64(getattr(keras_optimizer, beta)))
        keras_optimizer.build(pair.keras_model.trainable_variables)
    return torch_optimizer, keras_optimizer


# --------------------------------------------------------------------------------------- Batch independence


def batch(pair: UserPair, here: list[Row], finding: Finding) -> None:
    """A side whose scores depend on the batch: the BatchNorm where it starts, run on running statistics."""
    finding.notes.append("a critic's score must not depend on the rest of its batch: the per-sample gradient penalty "
                         "assumes it (the paper uses layer norm or no normalisation)")
    for row in here:
        side = "torch" if row.label.startswith("torch") else "keras"
        group = None
        if row.pair < len(pair.pairs):
            group = pair.pairs[row.pair].torch if side == "torch" else pair.pairs[row.pair].keras
        if group is None or group.main.kind != "batch_norm":
            finding.notes.append(f"{name(side)}: the scores move from {group.label if group else 'the output'} on")
            continue
        frozen = {(side, position.name) for position in group.positions}
        after = next(r for r in gradients.batch_rows(pair, frozen) if r.label.startswith(name(side)))
        finding.trials.append(Trial(f"{name(side)} {group.label} on its running statistics", [19],
                                    {f"{name(side)} batch": row.scaled}, {f"{name(side)} batch": after.scaled},
                                    pair.tolerance))
