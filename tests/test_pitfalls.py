"""The pitfall catalogue: every seeded porting bug fails its named check, and the clean pair passes."""

import pytest

from parity import checks, pitfalls
from parity.__main__ import main
from specs.models import get_config

CHECK_NAMES = set(checks.CHECKS) | {"labels_follow_image_id"}


def test_the_catalogue_is_complete_and_well_formed():
    numbers = [p.number for p in pitfalls.CATALOGUE]
    assert numbers[:28] == list(range(1, 29)) and numbers == sorted(set(numbers))  # 40 on: ported GANs' traps
    assert len({p.slug for p in pitfalls.CATALOGUE}) == len(pitfalls.CATALOGUE)
    for pitfall in pitfalls.CATALOGUE:
        assert pitfall.check in CHECK_NAMES, pitfall
        assert set(pitfall.models) <= set(checks.MODELS), pitfall
        assert len(pitfall.explanation) > 80 and (pitfall.torch_right or pitfall.keras_right), pitfall
        assert pitfall.torch_wrong or pitfall.keras_wrong, pitfall
    assert {p.number for p in pitfalls.for_model("cgan")} >= {13, 14, 15, 19, 20}


@pytest.mark.parametrize("pitfall", pitfalls.CATALOGUE, ids=lambda p: f"{p.number:02d}-{p.slug}")
def test_each_seeded_bug_fails_its_check_and_the_clean_pair_passes(pitfall):
    outcome = pitfalls.run(pitfall)
    assert outcome.bugged.name == outcome.clean.name == pitfall.check
    assert not outcome.bugged.passed, outcome.bugged
    assert outcome.bugged.max_scaled_diff > 10 * max(outcome.bugged.tolerance, 1e-6), outcome.bugged  # not marginal
    assert outcome.clean.passed, outcome.clean
    assert outcome.caught


@pytest.mark.parametrize("model", ["dcgan", "wgan_gp", "cgan"])  # the published ones: tests/test_published.py
def test_the_clean_pairs_the_entries_use_pass_every_check(model):
    results = checks.run_checks(model, get_config(model, "digits", width=8), "float64", batch_size=4)
    assert [r.name for r in results] == list(checks.MODELS[model].checks)
    assert all(r.passed and r.compared > 0 for r in results), results


def test_the_command_prints_the_table(capsys):
    assert main(["pitfalls", "--number", "3", "20"]) == 0
    out = capsys.readouterr().out
    assert "Keras LeakyReLU() default slope 0.3" in out and "labels_follow_image_id" in out
    assert "all 2 pitfalls caught by their checks" in out


def test_a_pitfall_its_check_misses_is_reported(capsys, monkeypatch):
    monkeypatch.setitem(checks.TOLERANCES["float64"], "forward", 10.0)  # a check that can no longer fail
    assert main(["pitfalls", "--number", "3"]) == 1
    assert "MISSED" in capsys.readouterr().out
