"""The text of a `gan-parity compare` report (parity/compare.py): the pairing, one table per section with the first
divergence marked, the settings that differ, the diagnosis with the catalogue's wrong and right lines, a verdict."""

from __future__ import annotations

import math

from parity import findings
from parity.user_pair import Row

MARK = "<- first"
SHOWN_AFTER = 3  # rows shown after the first divergence of a table


def number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:.3g}"


def shape(value) -> str:
    return "" if value is None else str(tuple(value)).replace(" ", "")


def pairing_table(report) -> list[str]:
    pairs = report.pair.pairs
    counts = {how: sum(p.how == how for p in pairs) for how in ("given", "name", "order")}
    lines = [f"Layers: {counts['name']} paired by name, {counts['order']} by order and kind"
             + (f", {counts['given']} as given" if counts["given"] else "")
             + " (change with --pair TORCH=KERAS or --pairs FILE; --show-pairs prints such a file)",
             f"  {'#':>3}  {'torch':<28} {'Keras':<30} {'kind':<18} paired by"]
    for index, pair in enumerate(pairs):
        torch_label = pair.torch.label if pair.torch else "-"
        keras_label = pair.keras.label if pair.keras else "-"
        how = pair.how or ("torch only" if pair.keras is None else "Keras only")
        kind = (pair.torch or pair.keras).family
        lines.append(f"  {index:>3}  {torch_label[:28]:<28} {keras_label[:30]:<30} {kind:<18} {how}")
    return lines


def section_table(report, section: str, rows: list[Row], first: Row | None) -> list[str]:
    from parity.compare import SECTION_TITLES

    lines = [SECTION_TITLES[section]]
    if section in ("inference", "training", "weights"):
        lines.append(f"  {'#':>3}  {'layer (torch / Keras)':<52} {'torch shape':<18} {'Keras shape':<18} "
                     f"{'max abs':>9} {'scaled':>9}  verdict")
    failing = next((i for i, row in enumerate(rows) if not row.passed), None)
    hidden = []
    if failing is not None and len(rows) > failing + SHOWN_AFTER + 2:  # the rows the first divergence spoils
        last = rows[-1:] if rows[-1].label == "model output" else []
        hidden = rows[failing + SHOWN_AFTER + 1: len(rows) - len(last)]
        rows = rows[: failing + SHOWN_AFTER + 1] + last
    marked = False
    for row in rows:
        if hidden and row is rows[-1] and row.label == "model output":
            lines.append(f"       ... {len(hidden)} more rows, {sum(not r.passed for r in hidden)} of them diverge "
                         "(--json lists every row)")
        index = "" if row.pair >= len(report.pair.pairs) else row.pair
        verdict = "ok" if row.passed else "DIVERGES"
        if not row.passed and not marked:
            verdict += f"  {MARK}" if row is first else "  <- first in this table"
            marked = True
        note = f"  ({row.note})" if row.note else ""
        label = row.label if len(row.label) <= 52 else row.label[:49] + "..."
        lines.append(f"  {index!s:>3}  {label:<52} {shape(row.torch_shape):<18} {shape(row.keras_shape):<18} "
                     f"{number(row.max_abs):>9} {number(row.scaled):>9}  {verdict}{note}")
    if hidden and rows[-1].label != "model output":
        lines.append(f"       ... {len(hidden)} more rows, {sum(not r.passed for r in hidden)} of them diverge "
                     "(--json lists every row)")
    return lines


def settings_lines(report) -> list[str]:
    if not report.settings and not report.optimizer_settings:
        return []
    lines = ["Settings that differ (parity/settings.py vocabulary; BatchNorm momentum in Keras's meaning)"]
    for index, key, torch_value, keras_value in report.settings:
        lines.append(f"  {index:>3}  {report.pair.pairs[index].label}: {key} torch {torch_value!r}, "
                     f"Keras {keras_value!r}")
    for key, torch_value, keras_value in report.optimizer_settings:
        lines.append(f"       optimiser: {key} torch {torch_value!r}, Keras {keras_value!r}")
    return lines


def finding_lines(finding: findings.Finding) -> list[str]:
    lines = [f"Diagnosis at {finding.layer}: {finding.observed}"]
    for note in finding.notes:
        lines.append(f"  - {note}")
    for trial in finding.trials:
        entry = f"  [pitfall {', '.join(map(str, trial.pitfalls))}]" if trial.pitfalls else ""
        lines.append(f"  tried: {trial.fix}: {trial.summary()}{entry}")
    if not finding.trials:
        lines.append("  no fix in the catalogue applies to what differs here")
    elif not finding.fixed:
        lines.append("  none of these fixes makes it agree")
    for pitfall_number in finding.pitfalls:
        pitfall = findings.entry(pitfall_number)
        if pitfall is None:
            continue
        lines.append(f"  pitfall {pitfall.number} ({pitfall.slug}): {pitfall.title}")
        for side, wrong, right in (("torch", pitfall.torch_wrong, pitfall.torch_right),
                                   ("Keras", pitfall.keras_wrong, pitfall.keras_right)):
            if wrong:
                lines.append(f"      {side} wrong: {wrong}")
            if right:
                lines.append(f"      {side} right: {right}")
    return lines


def report_text(report) -> str:
    pair = report.pair
    direction = "torch -> Keras" if pair.source == "torch" else "Keras -> torch"
    weights = f"weights copied {direction} ({len(pair.table)} tensors)" if pair.weights == "copy" else \
        f"each side's own weights ({direction}: the first is the source)"
    inputs = ", ".join(str(spec) for spec in pair.inputs)
    lines = [f"gan-parity compare: torch {report.torch} against Keras {report.keras}",
             f"input {inputs}: torch {[a.shape for a in pair.torch_arrays]}, Keras "
             f"{[a.shape for a in pair.keras_arrays]}; {pair.dtype}; {weights}"]
    lines += [f"note: {note}" for note in pair.notes]
    lines += [""] + pairing_table(report)
    first = report.first
    for section in ("structure", "weights", "inference", "training", "dropout", "gradients", "step", "batch"):
        rows = [row for row in report.rows if row.section == section]
        if rows:
            lines += [""] + section_table(report, section, rows, first)
    settings = settings_lines(report)
    lines += [""] + settings if settings else []
    for finding in report.findings:
        lines += [""] + finding_lines(finding)
    lines.append("")
    if first is None:
        lines.append(f"Verdict: AGREES: every layer, {len(report.rows)} comparisons within their tolerances")
    else:
        where = pair.pairs[first.pair].label if first.pair < len(pair.pairs) else first.label
        names = [findings.entry(n).title for f in report.findings for n in f.pitfalls if findings.entry(n)]
        because = f": {'; '.join(names)}" if names else ""
        lines.append(f"Verdict: DIVERGES first at {where} ({first.section}, scaled difference "
                     f"{number(first.scaled)}){because}")
    return "\n".join(lines)
