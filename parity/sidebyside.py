"""`gan-parity sidebyside MODEL...`: the torch and Keras sources of a model as one HTML page, read side by side.

Each model file is cut at its section headers (`# ---- Networks`, `Losses`, `Trainer`); what comes before the first
header (docstring and imports) is the Overview. The page puts the torch file on the left and the Keras file on the
right, one row per section, so section k of both files starts at the same height. The two files of a model must
have the same sections in the same order: a section in one file only raises `SectionMismatch`.
Below the code: the gradient-taking part of the Keras train step on each Keras backend, the three files
keras_impl/gradients_tensorflow.py, gradients_jax.py and gradients_torch.py side by side, section by section (what
the Keras train step above calls, and what changes per backend; the rest of the Keras file is the same on all three);
then the parity table of the model, measured while the page is built on the process's Keras backend
(parity/checks.py), and links to the pitfalls that concern it. Beside the model pages go `pitfalls.html` (the
whole catalogue of parity/pitfalls.py), with --tutorial `compare.html` (checking one's own port with `gan-parity
compare`, parity/tutorial.py), and `index.html`. Pages are self-contained (one embedded stylesheet, no scripts),
so they open from file://.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from parity import checks, pitfalls
from parity.__main__ import check_variants, format_table
from specs.models import PRESETS, UPDATE_ORDERS

KERAS_BACKENDS = {"TensorFlow": "gradients_tensorflow.py", "JAX": "gradients_jax.py", "PyTorch": "gradients_torch.py"}
HEADER_PREFIX = "# ----"  # a section header: `# ------...------ Name`, identical in both files of a pair
OVERVIEW = "Overview"  # the docstring and imports before the first header
STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 1rem 2rem; color: #1f2328; }
nav, .note { margin: .5rem 0; } h1 { margin: 1rem 0 .25rem; } h2 { margin: 1.5rem 0 .5rem; }
.columns, .row { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1rem; }
.columns { position: sticky; top: 0; background: #fff; font-weight: 600; padding: .4rem 0; z-index: 1; }
.row, .row3 { margin-bottom: 1rem; scroll-margin-top: 2.5rem; }
.columns3, .row3 { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: .75rem; }
.columns3 { font-weight: 600; padding: .4rem 0; }
.cell { border: 1px solid #d0d7de; border-radius: 6px; background: #f6f8fa; }
.cell h3 { margin: 0; padding: .3rem .6rem; font-size: 1rem; border-bottom: 1px solid #d0d7de; }
.cell h3 small, td.worst { font-weight: normal; color: #57606a; }
.highlight pre { margin: 0; padding: .5rem .6rem; white-space: pre-wrap; font-size: 12px; line-height: 1.4; }
.linenos { color: #8c959f; margin-right: .8em; user-select: none; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #d0d7de; padding: .2rem .5rem; }
td.number { text-align: right; font-family: monospace; } .fail { color: #cf222e; font-weight: 600; }
.pitfall-code pre { margin: 0; padding: .2rem .4rem; white-space: pre-wrap; }
pre.command, pre.output { border: 1px solid #d0d7de; border-radius: 6px; background: #f6f8fa; padding: .5rem .6rem;
  overflow-x: auto; font-size: 12px; line-height: 1.35; }
mark.first { background: #fff3b0; } mark.verdict { background: #e6f0ff; }
"""


class SectionMismatch(ValueError):
    """The torch and Keras files of a model do not have the same sections in the same order."""


@dataclass(frozen=True)
class Section:
    name: str  # the header's words, or OVERVIEW
    first_line: int  # 1-based line number of the section's first code line in its file
    code: str  # the section's lines, header and surrounding blank lines removed


def split_sections(source: str) -> list[Section]:
    """The Overview, then one Section per header line, in file order."""
    lines = source.splitlines()
    headers = [(number, line.strip("# -")) for number, line in enumerate(lines) if line.startswith(HEADER_PREFIX)]
    starts = [(OVERVIEW, 0)] + [(name, number + 1) for number, name in headers]  # a body starts after its header
    ends = [number for number, _ in headers] + [len(lines)]
    sections = []
    for (name, start), end in zip(starts, ends):
        while start < end and not lines[start].strip():
            start += 1
        while end > start and not lines[end - 1].strip():
            end -= 1
        sections.append(Section(name, start + 1, "\n".join(lines[start:end])))
    return sections


def paired_sections(torch_source: str, keras_source: str, label: str = "the two files") -> list[tuple]:
    """(torch section, Keras section) per row; raises SectionMismatch unless both have the same names in order."""
    torch_sections, keras_sections = split_sections(torch_source), split_sections(keras_source)
    torch_names, keras_names = [s.name for s in torch_sections], [s.name for s in keras_sections]
    if torch_names != keras_names:
        raise SectionMismatch(f"{label}: torch sections {torch_names} but Keras sections {keras_names}")
    return list(zip(torch_sections, keras_sections))


def source_files(model: str) -> tuple[Path, Path]:
    pair = checks.MODELS[model]
    return Path(pair.torch_module.__file__), Path(pair.keras_module.__file__)


def anchor(name: str) -> str:
    return re.sub(r"\W+", "-", name.lower())


def relative(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


# ---------------------------------------------------------------------------------------------- Building blocks


def code_block(code: str, first_line: int | None = None) -> str:
    """Pygments HTML (classes styled by the page's stylesheet), with line numbers when first_line is given."""
    numbers = {"linenos": "inline", "linenostart": first_line} if first_line else {}
    return highlight(code, PythonLexer(), HtmlFormatter(**numbers))


def page(title: str, body: str) -> str:
    styles = STYLE + HtmlFormatter().get_style_defs(".highlight")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{styles}</style></head>\n<body>\n{body}\n</body></html>\n")


def measure(model: str, args: argparse.Namespace) -> list[dict]:
    """Run the parity checks of the model for the presets, orders and dtypes asked for: the rows of its table."""
    rows = []
    for label, config in check_variants(model, args.preset or list(PRESETS[model]), args.update_order):
        for dtype in args.dtype:
            for result in checks.run_checks(model, config, dtype, args.batch_size, args.seed, args.check):
                rows.append({"model": model, "variant": f"{model} {label}", "dtype": dtype} | result.as_dict())
    return rows


def check_command(model: str, args: argparse.Namespace) -> str:
    """The `gan-parity check` command line that measures the same rows."""
    words = ["gan-parity check", model, "--preset", *(args.preset or PRESETS[model]), "--dtype", *args.dtype]
    if args.update_order:
        words += ["--update-order", *args.update_order]
    if args.check:
        words += ["--check", *args.check]
    words += ["--batch-size", str(args.batch_size), "--seed", str(args.seed)]
    return " ".join(words)


def parity_table(rows: list[dict]) -> str:
    head = "".join(f"<th>{name}</th>" for name in ("variant", "dtype", "check", "max abs diff", "scaled diff",
                                                   "tolerance", "verdict", "worst tensor"))
    body = []
    for row in rows:
        verdict = "pass" if row["passed"] else '<span class="fail">FAIL</span>'
        body.append(f"<tr><td>{html.escape(row['variant'])}</td><td>{row['dtype']}</td><td>{row['name']}</td>"
                    f"<td class='number'>{row['max_abs_diff']:.3g}</td><td class='number'>{row['max_scaled_diff']:.3g}"
                    f"</td><td class='number'>{row['tolerance']:.0e}</td><td>{verdict}</td>"
                    f"<td class='worst'>{html.escape(row['worst'])}</td></tr>")
    return f'<table class="parity"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def keras_backend_files() -> dict[str, Path]:
    """{backend name: keras_impl/gradients_<backend>.py}."""
    folder = source_files("dcgan")[1].parent
    return {name: folder / file for name, file in KERAS_BACKENDS.items()}


def keras_backend_rows() -> str:
    """The three backends' gradient modules, one row per shared section, three columns; SectionMismatch unless the
    three have the same sections in order."""
    files = keras_backend_files()
    sections = {name: split_sections(path.read_text()) for name, path in files.items()}
    names = {name: [section.name for section in found] for name, found in sections.items()}
    if len({tuple(found) for found in names.values()}) != 1:
        raise SectionMismatch(f"the Keras backends' gradient modules have different sections: {names}")
    heads = "".join(f"<div>Keras on {name}: {relative(path)}</div>" for name, path in files.items())
    parts = ['<h2 id="keras-backends">The train step on each Keras backend</h2><p class="note">The Keras train step '
             "above runs on TensorFlow, JAX and PyTorch as it is written; what it calls to take and apply gradients "
             "(<code>gradients</code>, <code>recorded</code>, <code>input_gradient</code>, "
             "<code>apply_gradients</code>) and what tells <code>fit</code> how to run it (<code>Trainer</code>) "
             "come from the module of the backend Keras runs on (keras_impl/gradients.py picks it).</p>",
             f'<div class="columns3">{heads}</div>']
    for index, section_name in enumerate(names["TensorFlow"]):
        cells = [f'<div class="cell keras-{name.lower()}"><h3>{html.escape(section_name)} <small>{relative(path)}, '
                 f"line {sections[name][index].first_line}</small></h3>"
                 f"{code_block(sections[name][index].code, sections[name][index].first_line)}</div>"
                 for name, path in files.items()]
        parts.append(f'<div class="row3" data-backend-section="{html.escape(section_name)}">{"".join(cells)}</div>')
    return "\n".join(parts)


def builds_on(model: str, torch_source: str) -> str:
    """Links to the pages of the other models this one imports from (CGAN is a WGAN-GP; WGAN-GP reuses DCGAN's G)."""
    found = re.findall(r"^from torch_impl\.(\w+) import (.+)$", torch_source, re.MULTILINE)
    links = [f'<a href="{name}.html">{name}</a> ({html.escape(names)})' for name, names in found
             if name in checks.MODELS and name != model]
    return f'<p class="note">Builds on: {", ".join(links)}; read those pages for what is inherited.</p>' * bool(links)


# ----------------------------------------------------------------------------------------------------- Pages


def model_page(model: str, rows: list[dict], command: str, seconds: float) -> str:
    torch_path, keras_path = source_files(model)
    torch_source, keras_source = torch_path.read_text(), keras_path.read_text()
    pairs = paired_sections(torch_source, keras_source, f"{relative(torch_path)} and {relative(keras_path)}")
    title = torch_source.split("\n", 1)[0].strip('"').split(" in PyTorch")[0]
    nav = " · ".join([f'<a href="#{anchor(s.name)}">{s.name}</a>' for s, _ in pairs]
                     + ['<a href="#keras-backends">Each Keras backend</a>', '<a href="#parity">Parity table</a>',
                        '<a href="#pitfalls">Pitfalls</a>'])
    parts = [f'<p><a href="index.html">All pages</a></p><h1>{html.escape(title)}: PyTorch beside Keras 3</h1>',
             builds_on(model, torch_source), f"<nav>{nav}</nav>",
             f'<main><div class="columns"><div>PyTorch: {relative(torch_path)}</div>'
             f"<div>Keras 3: {relative(keras_path)}</div></div>"]
    for torch_section, keras_section in pairs:
        cells = []
        for side, path, section in (("torch", torch_path, torch_section), ("keras", keras_path, keras_section)):
            cells.append(f'<div class="cell {side}"><h3>{html.escape(section.name)} <small>{relative(path)}, line '
                         f"{section.first_line}</small></h3>{code_block(section.code, section.first_line)}</div>")
        name = html.escape(torch_section.name)
        parts.append(f'<div class="row" id="{anchor(name)}" data-section="{name}">{"".join(cells)}</div>')
    failed = sum(not row["passed"] for row in rows)
    verdict = f"{failed} of {len(rows)} checks FAILED" if failed else f"all {len(rows)} checks passed"
    versions = checks.versions()
    parts += [f"</main>{keras_backend_rows()}",
              '<h2 id="parity">Parity table</h2><p class="note">Measured while this page was built: '
              f"the same rows as <code>{html.escape(command)}</code>, {seconds:.0f} s, {versions}; {verdict}. "
              "The verdict judges the scaled diff (per tensor, max |torch − Keras| / max(1, max |Keras|)).</p>",
              parity_table(rows), '<h2 id="pitfalls">Pitfalls that concern this model</h2>']
    items = [f'<li><a class="pitfall" href="pitfalls.html#{p.slug}">{p.number}. {html.escape(p.title)}</a> '
             f"(caught by <code>{html.escape(p.check)}</code>)</li>" for p in pitfalls.for_model(model)]
    parts.append(f"<ul>{''.join(items)}</ul>" if items else "<p>None in the catalogue.</p>")
    return page(f"{title}: PyTorch beside Keras 3", "\n".join(parts))


def pitfalls_page() -> str:
    parts = ['<p><a href="index.html">All pages</a></p><h1>Porting pitfalls between PyTorch and Keras 3</h1>',
             "<p>Each pitfall below can be seeded into one side as a bug; the named check catches it "
             "(<code>gan-parity pitfalls</code>).</p>"]
    for pitfall in pitfalls.CATALOGUE:
        models = ", ".join(f'<a href="{model}.html">{model}</a>' for model in pitfall.models if model in checks.MODELS)
        code_rows = "".join(
            f"<tr><th>{framework}</th><td class='pitfall-code'>{code_block(wrong) if wrong else '—'}</td>"
            f"<td class='pitfall-code'>{code_block(right) if right else '—'}</td></tr>"
            for framework, wrong, right in (("PyTorch", pitfall.torch_wrong, pitfall.torch_right),
                                            ("Keras 3", pitfall.keras_wrong, pitfall.keras_right)) if wrong or right)
        parts.append(f'<section id="{pitfall.slug}"><h2>{pitfall.number}. {html.escape(pitfall.title)}</h2>'
                     f"<p>Caught by <code>{html.escape(pitfall.check)}</code>"
                     f"{'; concerns ' + models if models else ''}.</p><p>{html.escape(pitfall.explanation)}</p>"
                     + (f"<table><tr><th></th><th>wrong</th><th>right</th></tr>{code_rows}</table>" * bool(code_rows))
                     + "</section>")
    return page("Porting pitfalls between PyTorch and Keras 3", "\n".join(parts))


def index_page(out: Path) -> str:
    """Links to every model page present in `out`, and to the pitfalls page."""
    items = []
    for model in checks.MODELS:
        if (out / f"{model}.html").exists():
            first_line = source_files(model)[0].read_text().split("\n", 1)[0].strip('"')
            summary = first_line.replace(" in PyTorch", "").split(" (mirror")[0]
            items.append(f'<li><a href="{model}.html">{model}</a>: {html.escape(summary)}</li>')
    return page("gan-parity: the implementations side by side",
                "<h1>gan-parity: PyTorch and Keras 3 side by side</h1>"
                f"<ul>{''.join(items)}</ul><p><a href=\"pitfalls.html\">Porting pitfalls</a>, each with the check "
                "that catches it.</p>" + ('<p><a href="compare.html">Check your own port</a>: pytorch/examples\' '
                                          "DCGAN ported to Keras with three mistakes, and how gan-parity compare "
                                          "points at each.</p>") * (out / "compare.html").exists())


# ------------------------------------------------------------------------------------------------ Command line


def run(args: argparse.Namespace) -> int:
    for model in args.models:
        unknown = sorted(set(args.preset or ()) - set(PRESETS[model]))
        if unknown:
            print(f"gan-parity: unknown preset {unknown} for {model}; known: {', '.join(PRESETS[model])}",
                  file=sys.stderr)
            return 2
        try:  # a drifted mirror fails before the slow checks run
            paired_sections(*(path.read_text() for path in source_files(model)), model)
            keras_backend_rows()
        except SectionMismatch as error:
            print(f"gan-parity sidebyside: {error}", file=sys.stderr)
            return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for model in args.models:
        start = time.perf_counter()
        rows = measure(model, args)
        print(format_table(rows))
        failed += sum(not row["passed"] for row in rows)
        seconds = time.perf_counter() - start
        (out / f"{model}.html").write_text(model_page(model, rows, check_command(model, args), seconds))
        print(f"wrote {out / f'{model}.html'}")
    (out / "pitfalls.html").write_text(pitfalls_page())
    if args.tutorial:
        from parity import tutorial

        start = time.perf_counter()
        problems = tutorial.write(out)
        print(f"wrote {out / tutorial.PAGE} ({time.perf_counter() - start:.0f} s)")
        for message in problems:
            print(f"gan-parity sidebyside: the tutorial does not show what it explains: {message}", file=sys.stderr)
        failed += len(problems)
    (out / "index.html").write_text(index_page(out))
    print(f"wrote {out / 'pitfalls.html'} and {out / 'index.html'}")
    if failed:
        print(f"{failed} parity checks FAILED: the pages show which", file=sys.stderr)
    return 1 if failed else 0


def register(commands) -> None:
    parser = commands.add_parser("sidebyside", help="write an HTML page per model: torch source beside Keras source")
    parser.add_argument("models", nargs="+", choices=list(checks.MODELS), metavar="MODEL",
                        help=f"one or more of: {', '.join(checks.MODELS)}")
    parser.add_argument("--out", default="docs", help="folder of the pages (default: docs)")
    parser.add_argument("--dtype", nargs="+", choices=("float64", "float32"), default=["float64", "float32"])
    parser.add_argument("--preset", nargs="+", default=None, help="presets of the parity table (default: all)")
    parser.add_argument("--update-order", nargs="+", choices=UPDATE_ORDERS, default=None,
                        help="default: both for dcgan, each published preset's own")
    parser.add_argument("--check", nargs="+", choices=checks.CHECKS, default=None, help="default: all that apply")
    parser.add_argument("--batch-size", type=int, default=8, help="batch of the checks (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tutorial", action="store_true", help="also write compare.html: pytorch/examples' DCGAN "
                        "ported to Keras with three mistakes, and gan-parity compare's output on each")
    parser.set_defaults(func=run)
