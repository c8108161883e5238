"""The side-by-side pages (parity/sidebyside.py): how the files are cut into sections, and a built page as a reader
sees it in headless Chromium.

The browser tests fail when Chromium is missing, so that CI cannot pass without looking at a page (.ci/run installs
the Debian package `chromium`). On a machine without it, set GAN_PARITY_SKIP_BROWSER=1 to skip them; CHROMIUM may
name another Chromium binary.
"""

import os
import shutil
from pathlib import Path

import pytest

from parity import checks, pitfalls, sidebyside
from parity.__main__ import main

MODEL = "wgan_gp"  # the page the browser opens: four sections, a "builds on" link, a gradient penalty
# The parity table of the test page: every check of the model in float64 on the digits preset, but the slow
# trajectory (5 full train steps; `make docs` measures it).
TABLE_CHECKS = [name for name in checks.MODELS[MODEL].checks if name != "trajectory"]
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def sources(model: str) -> tuple[str, str]:
    torch_path, keras_path = sidebyside.source_files(model)
    return torch_path.read_text(), keras_path.read_text()


# ------------------------------------------------------------------------------------------------- Sections


@pytest.mark.parametrize("model", list(checks.MODELS))
def test_both_files_of_a_model_have_the_same_sections(model):
    pairs = sidebyside.paired_sections(*sources(model))
    names = [torch_section.name for torch_section, _ in pairs]
    assert names[0] == sidebyside.OVERVIEW and "Trainer" in names
    assert any(name.startswith("Networks") for name in names)  # the published models: one section each
    for torch_section, keras_section in pairs:
        assert torch_section.name == keras_section.name
        assert torch_section.code.strip() and keras_section.code.strip()


def test_a_section_starts_after_its_header_and_keeps_its_line_numbers():
    source = ('"""Doc."""\n\nimport os\n\n# ---------- Networks\n\n\nclass A:\n    pass\n\n\n'
              "# ---------- Losses\n\ndef f():\n")
    sections = sidebyside.split_sections(source)
    assert [(s.name, s.first_line, s.code) for s in sections] == [
        ("Overview", 1, '"""Doc."""\n\nimport os'), ("Networks", 8, "class A:\n    pass"), ("Losses", 14, "def f():"),
    ]
    lines = source.splitlines()
    for section in sections:
        assert lines[section.first_line - 1] == section.code.splitlines()[0]


def drop_header(source: str, name: str) -> str:
    return "\n".join(line for line in source.splitlines() if not (line.startswith("# ----") and line.endswith(name)))


def test_a_section_in_one_file_only_raises():
    torch_source, keras_source = sources("dcgan")
    with pytest.raises(sidebyside.SectionMismatch, match="Losses"):
        sidebyside.paired_sections(torch_source, drop_header(keras_source, "Losses"))
    with pytest.raises(sidebyside.SectionMismatch, match="Losses"):
        sidebyside.paired_sections(drop_header(torch_source, "Losses"), keras_source)


def test_the_command_refuses_a_drifted_mirror_before_measuring(monkeypatch, tmp_path, capsys):
    torch_source, keras_source = sources("dcgan")
    (tmp_path / "torch.py").write_text(torch_source)
    (tmp_path / "keras.py").write_text(drop_header(keras_source, "Trainer"))
    monkeypatch.setattr(sidebyside, "source_files", lambda model: (tmp_path / "torch.py", tmp_path / "keras.py"))
    assert main(["sidebyside", "dcgan", "--out", str(tmp_path / "docs")]) == 1
    assert "Trainer" in capsys.readouterr().err
    assert not (tmp_path / "docs").exists()


# ------------------------------------------------------------------------------------------------- Pages


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    """The pages of MODEL, with a measured parity table of TABLE_CHECKS (about 10 s here)."""
    out = tmp_path_factory.mktemp("docs")
    arguments = ["--preset", "digits", "--dtype", "float64", "--check", *TABLE_CHECKS]
    assert main(["sidebyside", MODEL, "--out", str(out), *arguments]) == 0
    return out


@pytest.fixture(scope="module")
def browser():
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not path:
        if os.environ.get("GAN_PARITY_SKIP_BROWSER"):
            pytest.skip("no Chromium, and GAN_PARITY_SKIP_BROWSER is set")
        pytest.fail("Chromium not found: install the Debian package `chromium`, name the binary in CHROMIUM, "
                    "or set GAN_PARITY_SKIP_BROWSER=1 to skip the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    yield page
    page.close()


def open_page(page, path: Path):
    page.goto(path.as_uri())
    return page


def test_every_section_sits_side_by_side_and_shows_its_code(page, docs):
    open_page(page, docs / f"{MODEL}.html")
    tops = []
    for torch_section, keras_section in sidebyside.paired_sections(*sources(MODEL)):
        row = page.locator(f'.row[data-section="{torch_section.name}"]')
        assert row.count() == 1, torch_section.name
        torch_cell, keras_cell = row.locator(".cell.torch"), row.locator(".cell.keras")
        torch_box, keras_box = torch_cell.bounding_box(), keras_cell.bounding_box()
        assert torch_box["x"] + torch_box["width"] <= keras_box["x"], "the torch column is left of the Keras column"
        assert abs(torch_box["y"] - keras_box["y"]) <= 2, f"{torch_section.name} starts at the same height"
        tops.append(torch_box["y"])
        for cell, box, section in ((torch_cell, torch_box, torch_section), (keras_cell, keras_box, keras_section)):
            assert cell.is_visible() and box["width"] > 300 and box["height"] > 40
            assert cell.locator("h3").inner_text().startswith(section.name)
            text = cell.locator("pre").inner_text()
            code_lines = [line.strip() for line in section.code.splitlines() if line.strip()]
            assert code_lines[0] in text and code_lines[-1] in text, section.name
    assert tops == sorted(tops) and len(tops) == 4


def test_the_code_is_highlighted(page, docs):
    open_page(page, docs / f"{MODEL}.html")
    colours = page.eval_on_selector_all(".cell pre span:not(.linenos)",
                                        "spans => [...new Set(spans.map(s => getComputedStyle(s).color))]")
    plain = page.eval_on_selector(".cell pre", "pre => getComputedStyle(pre).color")
    keyword = page.eval_on_selector(".cell pre .k", "span => getComputedStyle(span).color")
    assert len(colours) >= 4 and keyword != plain


def test_the_parity_table_shows_the_measured_checks(page, docs):
    open_page(page, docs / f"{MODEL}.html")
    rows = page.locator("table.parity tbody tr")
    measured = []
    for index in range(rows.count()):
        cells = rows.nth(index).locator("td").all_inner_texts()
        variant, dtype, check, max_abs, scaled, tolerance, verdict = cells[:7]
        assert (variant, dtype, verdict) == (f"{MODEL} digits", "float64", "pass")
        assert float(scaled) <= float(tolerance) and float(max_abs) >= 0
        measured.append(check)
    assert measured == TABLE_CHECKS
    assert page.locator("table.parity").is_visible()


def test_pitfall_links_lead_to_their_entry(page, docs):
    concerning = pitfalls.for_model(MODEL)
    open_page(page, docs / f"{MODEL}.html")
    links = page.locator("a.pitfall")
    assert concerning and links.count() == len(concerning)
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
        f"pitfalls.html#{pitfall.slug}" for pitfall in concerning
    ]
    links.first.click()
    page.wait_for_load_state()
    assert page.url.endswith(f"pitfalls.html#{concerning[0].slug}")
    for pitfall in pitfalls.CATALOGUE:
        entry = page.locator(f'[id="{pitfall.slug}"]')
        assert entry.count() == 1 and entry.is_visible()
        assert pitfall.title in entry.locator("h2").inner_text() and pitfall.check in entry.inner_text()


def test_the_index_links_every_page_it_lists(page, docs):
    open_page(page, docs / "index.html")
    hrefs = page.eval_on_selector_all("a", "links => links.map(a => a.getAttribute('href'))")
    assert f"{MODEL}.html" in hrefs and "pitfalls.html" in hrefs
    assert all((docs / href).exists() for href in hrefs)


# ------------------------------------------------------------------------------------------- The compare tutorial


@pytest.fixture(scope="module")
def tutorial_docs(tmp_path_factory):
    """The pages with --tutorial, the tutorial's DCGAN at width 8 (the page `make docs` builds has the published 64:
    the same mistakes, the same findings, about 30 s here)."""
    from parity import tutorial

    out = tmp_path_factory.mktemp("tutorial")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tutorial, "WIDTH", 8)
        assert main(["sidebyside", MODEL, "--out", str(out), "--preset", "digits", "--dtype", "float64",
                     "--check", "shapes", "--tutorial"]) == 0
    return out


def test_the_tutorial_shows_compare_finding_each_mistake(page, tutorial_docs):
    from parity import findings, tutorial

    open_page(page, tutorial_docs / tutorial.PAGE)
    steps = page.locator("section.step")
    assert steps.count() == len(tutorial.STEPS) == 5
    for step in tutorial.STEPS:
        section = page.locator(f'section.step[id="{step.slug}"]')
        assert section.is_visible() and section.get_attribute("data-agrees") == str(not step.expected).lower()
        command = section.locator("pre.command").inner_text()
        assert command.startswith("$ gan-parity compare ") and "examples/dcgan_port/torch_dcgan.py:" in command
        assert "examples/dcgan_port/keras_dcgan.py:" in command and "--input" in command
        output = section.locator("pre.output")
        assert output.is_visible() and output.bounding_box()["height"] > 200
        verdict = section.locator("mark.verdict").inner_text()
        assert verdict.startswith("Verdict: AGREES" if not step.expected else "Verdict: DIVERGES first at main.")
        links = section.locator("a.pitfall")
        assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
            f"pitfalls.html#{findings.entry(number).slug}" for number in step.expected], step.slug
        if step.expected:  # the first divergence is marked, in the inference table of the output
            assert "<- first" in section.locator("mark.first").first.inner_text()
    first = page.locator('section[id="first-try"] pre.output').inner_text()
    assert "pitfall 2 (bn-epsilon-default)" in first and "pitfall 42 (bn-momentum-default)" in first


def test_the_tutorial_links_to_its_pitfalls_and_the_index_to_it(page, tutorial_docs):
    open_page(page, tutorial_docs / "index.html")
    page.locator('a[href="compare.html"]').click()
    page.wait_for_load_state()
    page.locator('section[id="after-batch-norm"] a.pitfall').click()
    page.wait_for_load_state()
    assert page.url.endswith("pitfalls.html#transposed-padding-uncropped")
    assert page.locator('[id="transposed-padding-uncropped"]').is_visible()


def test_a_tutorial_step_whose_run_does_not_show_its_text_fails_the_build():
    from parity import tutorial

    step = tutorial.STEPS[3]  # the discriminator's LeakyReLU
    report, _ = tutorial.run_step(step, width=4)
    assert tutorial.problem(step, report) is None
    assert "expected pitfalls [2], compare named [3]" in tutorial.problem(
        tutorial.Step(step.slug, step.title, step.network, step.fixed, (2,), step.text), report)
    assert "expected agreement" in tutorial.problem(
        tutorial.Step(step.slug, step.title, step.network, step.fixed, (), step.text), report)


def test_the_three_keras_backends_sit_side_by_side(page, docs):
    """Below the two files: the gradient code of Keras's TensorFlow, JAX and PyTorch backends in three columns, one
    row per shared section, each cell showing its file's code."""
    open_page(page, docs / f"{MODEL}.html")
    files = sidebyside.keras_backend_files()
    sections = {name: sidebyside.split_sections(path.read_text()) for name, path in files.items()}
    rows = page.locator(".row3")
    assert rows.count() == len(sections["TensorFlow"]) >= 4
    for index in range(rows.count()):
        cells = rows.nth(index).locator(".cell")
        boxes = [cells.nth(column).bounding_box() for column in range(3)]
        assert boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"]
        assert max(box["y"] for box in boxes) - min(box["y"] for box in boxes) <= 2
        for column, name in enumerate(files):
            code = sections[name][index].code
            text = cells.nth(column).locator("pre").inner_text()
            assert cells.nth(column).is_visible() and code.splitlines()[0].strip() in text, (name, index)
    shown = " ".join(rows.all_inner_texts())
    for needle in ("tf.GradientTape", "jax.vjp", "jax.grad", "stateless_apply", "torch.autograd.grad",
                   "create_graph=True"):
        assert needle in shown, needle
