"""What `gan-parity compare` found at a divergence (parity/diagnose.py): the fixes it tried, what each changed, and
the pitfall catalogue's entries (parity/pitfalls.py) whose right line the fix that held is."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from parity import pitfalls


@dataclass
class Trial:
    fix: str  # what was changed, in words
    pitfalls: list[int]  # the catalogue entries whose right line this fix is
    before: dict[str, float]  # what failed ("inference output", "training state", ...): its scaled difference
    after: dict[str, float]  # the same with the fix
    tolerance: float
    limits: dict[str, float] = field(default_factory=dict)  # other tolerances by key (a dropout rate's)

    @property
    def agrees(self) -> bool:
        return bool(self.after) and all(not value > self.limits.get(key, self.tolerance)
                                        for key, value in self.after.items())

    def summary(self) -> str:
        changes = ", ".join(f"{key} {self.before.get(key, math.nan):.3g} -> {value:.3g}"
                            for key, value in self.after.items())
        return f"{changes}: {'AGREES' if self.agrees else 'still differs'}"

    def __post_init__(self) -> None:
        self.pitfalls = list(dict.fromkeys(number for number in self.pitfalls if number is not None))

    def as_dict(self) -> dict:
        return {"fix": self.fix, "pitfalls": [entry_dict(number) for number in self.pitfalls],
                "before": self.before, "after": self.after, "agrees": self.agrees}


@dataclass
class Finding:
    pair: int  # index of the layer pair (len(pairs) for the model's output)
    layer: str  # the pair's label
    observed: str  # what diverges, in words
    trials: list[Trial] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def fixed(self) -> bool:
        return any(trial.agrees for trial in self.trials)

    @property
    def pitfalls(self) -> list[int]:
        """The catalogue entries of the first fix that made it agree."""
        held = next((trial for trial in self.trials if trial.agrees), None)
        return [] if held is None else list(dict.fromkeys(held.pitfalls))

    def as_dict(self) -> dict:
        return {"pair": self.pair, "layer": self.layer, "observed": self.observed, "fixed": self.fixed,
                "pitfalls": [entry_dict(number) for number in self.pitfalls],
                "trials": [trial.as_dict() for trial in self.trials], "notes": self.notes}


def entry(number: int | None) -> pitfalls.Pitfall | None:
    return next((p for p in pitfalls.CATALOGUE if p.number == number), None)


def entry_dict(number: int | None) -> dict | None:
    pitfall = entry(number)
    if pitfall is None:
        return None
    return {"number": pitfall.number, "slug": pitfall.slug, "title": pitfall.title,
            "torch_wrong": pitfall.torch_wrong, "torch_right": pitfall.torch_right,
            "keras_wrong": pitfall.keras_wrong, "keras_right": pitfall.keras_right}


def worst(values) -> float:
    values = [value for value in values if not math.isnan(value)]
    return max(values, default=0.0)
