"""docs/compare.html: pytorch/examples' DCGAN ported to Keras with three mistakes, and how `gan-parity compare`
points at each (built by `gan-parity sidebyside ... --tutorial`, `make docs`).

The page runs the commands it shows, on the two files in examples/dcgan_port (the published torch networks; the
learner's Keras port, whose mistakes its factories undo one by one with `fixed=(...)`), while it is built, and
embeds their output. A step whose run does not name the pitfalls the page's text explains fails the build.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path

from parity import checks, findings
from parity.compare import Report, command_report

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = Path("examples") / "dcgan_port"  # relative to ROOT
TORCH_FILE, KERAS_FILE = EXAMPLES / "torch_dcgan.py", EXAMPLES / "keras_dcgan.py"
PAGE = "compare.html"
WIDTH = None  # feature maps of both networks (ngf, ndf); None: the published 64


@dataclass(frozen=True)
class Step:
    slug: str
    title: str
    network: str  # "Generator" or "Discriminator"
    fixed: tuple[str, ...]  # the mistakes undone in the Keras port
    expected: tuple[int, ...]  # the catalogue entries compare must name; () where it must agree
    text: str  # what to read in the output (the numbers themselves are the run's)

    def words(self, root: Path | None = None, width: int | None = None) -> list[str]:
        """The command's words after `gan-parity compare`; paths under `root` (the page shows them relative);
        `width`: feature maps other than the published 64 (ngf, ndf)."""
        base = root or Path()
        names = [f'"{name}"' for name in self.fixed]
        arguments = [f"fixed=({names[0]},)" if len(names) == 1 else f"fixed=({', '.join(names)})"] * bool(names)
        widths = [f"{'ngf' if self.network == 'Generator' else 'ndf'}={width}"] * bool(width)
        torch_factory = f"{base / TORCH_FILE}:{self.network}" + (f"({widths[0]})" if widths else "")
        keras_factory = f"{base / KERAS_FILE}:{self.network.lower()}"
        if arguments or widths:
            keras_factory += f"({', '.join(arguments + widths)})"
        shape = "100,1,1" if self.network == "Generator" else "3,64,64"
        return [torch_factory, keras_factory, "--input", shape]



STEPS = (
    Step("first-try", "The generator, first try", "Generator", (), (2, 42),
         "The torch names (main.0, main.1, ...) are not Keras's, so the 14 layers are paired by order and kind. "
         "The first transposed conv agrees exactly; the first BatchNorm does not, in both modes, with a small "
         "difference in inference and a larger one in its running statistics after a training-mode pass. Each "
         "setting that differs is tried alone, then together: the epsilon makes the outputs agree, the momentum "
         "the running statistics, and only both make the layer agree. Keras's BatchNormalization() defaults "
         "(momentum 0.99, epsilon 1e-3) are not torch's BatchNorm2d defaults (momentum 0.1, that is Keras's 0.9, "
         "and eps 1e-5)."),
    Step("after-batch-norm", "After the BatchNorm fix", "Generator", ("batch_norm",), (41,),
         "Every BatchNorm now agrees to round-off. The next divergence is a shape: the second transposed conv "
         "gives 10x10 where torch gives 8x8. torch's padding=1 on a transposed conv crops one row and column from "
         "each border of the full output; Keras's default \"valid\" keeps them. Cropping the port's full output as "
         "torch does makes the layer agree: padding=\"same\" (for k4 s2 p1), or Cropping2D(1)."),
    Step("generator-agrees", "The generator agrees", "Generator", ("batch_norm", "padding"), (),
         "With both fixes every layer of the generator agrees in both modes, to round-off in float64, and the "
         "command exits 0."),
    Step("discriminator", "The discriminator", "Discriminator", ("batch_norm", "padding"), (3,),
         "The discriminator's first conv agrees, its first LeakyReLU does not: every negative value is 1.5 times "
         "torch's, the ratio of Keras's default slope 0.3 to the 0.2 that torch's nn.LeakyReLU(0.2, inplace=True) "
         "was given. The same settings appear at every LeakyReLU of the network."),
    Step("discriminator-agrees", "The discriminator agrees", "Discriminator", ("batch_norm", "padding", "leaky_relu"),
         (), "The port computes what pytorch/examples computes. The torch discriminator returns (N,) and the Keras "
         "one (N, 1): the model outputs are compared with axes of size 1 dropped, as the output says."),
)


def run_step(step: Step, width: int | None = None) -> tuple[Report, float]:
    from parity.__main__ import build_parser

    start = time.perf_counter()
    args = build_parser().parse_args(["compare", *step.words(ROOT, width)])
    report = command_report(args)
    report.torch, report.keras = step.words(None, width)[:2]  # shown as the page's commands spell them
    return report, time.perf_counter() - start


def named(report: Report) -> list[int]:
    return [number for finding in report.findings for number in finding.pitfalls]


def problem(step: Step, report: Report) -> str | None:
    """Why a step's run does not show what its text explains, or None."""
    if step.expected and report.agrees:
        return f"{step.slug}: the port agrees, expected pitfalls {list(step.expected)}"
    if not step.expected and not report.agrees:
        return f"{step.slug}: expected agreement, the port diverges first at {report.first.label}"
    if set(named(report)) != set(step.expected):
        return f"{step.slug}: expected pitfalls {list(step.expected)}, compare named {named(report)}"
    return None


def command(report: Report) -> str:
    words = [report.torch, report.keras, "--input", *[str(spec) for spec in report.pair.inputs]]
    return "gan-parity compare " + " ".join(f"'{word}'" if "(" in word else word for word in words)


def output_block(text: str) -> str:
    lines = []
    for line in text.splitlines():
        escaped = html.escape(line)
        if "<- first" in line or line.startswith("Verdict:"):
            escaped = f'<mark class="{"first" if "<- first" in line else "verdict"}">{escaped}</mark>'
        lines.append(escaped)
    return f'<pre class="output">{chr(10).join(lines)}</pre>'


def step_section(number: int, step: Step, report: Report, seconds: float) -> str:
    links = []
    for pitfall_number in named(report):
        entry = findings.entry(pitfall_number)
        links.append(f'<li><a class="pitfall" href="pitfalls.html#{entry.slug}">{entry.number}. '
                     f"{html.escape(entry.title)}</a></li>")
    verdict = "agrees: exit 0" if report.agrees else "diverges: exit 1"
    names = f"<p>Named:</p><ul>{''.join(links)}</ul>" if links else ""
    return (f'<section class="step" id="{step.slug}" data-step="{number}" data-agrees="{str(report.agrees).lower()}">'
            f"<h2>{number}. {html.escape(step.title)}</h2><p>{html.escape(step.text)}</p>"
            f'<pre class="command">$ {html.escape(command(report))}</pre>{output_block(report.text())}'
            f'<p class="note">The port {verdict}; {seconds:.1f} s.</p>{names}</section>')


def tutorial_page(results: list[tuple[Step, Report, float]]) -> str:
    from parity.sidebyside import code_block, page

    versions = checks.versions()
    files = "".join(f"<details><summary>{path}</summary>{code_block((ROOT / path).read_text(), 1)}</details>"
                    for path in (TORCH_FILE, KERAS_FILE))
    steps = "".join(step_section(number, *result) for number, result in enumerate(results, start=1))
    nav = " · ".join(f'<a href="#{step.slug}">{number}. {html.escape(step.title)}</a>'
                     for number, (step, _, _) in enumerate(results, start=1))
    body = f"""<p><a href="index.html">All pages</a></p>
<h1>Check your own port: pytorch/examples' DCGAN in Keras</h1>
<p>A learner ports the networks of pytorch/examples' DCGAN (<code>dcgan/main.py</code>) to Keras 3 by hand. The port
builds and trains and draws faces, and computes something else than the original. <code>gan-parity compare</code>
takes the two networks as their factories build them, pairs their layers (by name, else by order and kind), copies
the torch weights into the port with the strict converter (every tensor once, shapes asserted), runs both on the
same input in inference and in training mode, and marks the first layer that diverges. Then it tries the pitfall
catalogue's fixes on that layer and names the one that makes it agree, with the wrong and right lines.</p>
<p class="note">Every output below was computed while this page was built ({versions}); the commands run from the
repository's root.</p>
<nav>{nav}</nav>
<h2>The two files</h2>{files}
{steps}
<h2 id="reading">Reading the output</h2>
<ul><li>Shapes are each framework's own: (N, C, H, W) in torch, (N, H, W, C) in Keras.</li>
<li>The scaled difference is max |torch − Keras| / max(1, max |Keras|) per tensor; in float64 the tolerance is
1e-10, so a correct port shows round-off (1e-16) and a mistake shows itself by many orders of magnitude.</li>
<li>Training mode runs with dropout off on both sides (masks never agree) and compares each BatchNorm's running
statistics after the pass, Keras's biased variance mapped onto torch's unbiased one.</li>
<li>Each <code>tried:</code> line is a fix applied to a copy of the port's layer and run on the input the torch
layer saw: what failed, before and after.</li>
<li><code>--loss</code> adds the gradients, <code>--optimizer</code> one step of each optimiser, <code>--json</code>
prints all of it for machines; exit 0 when everything agrees, 1 when something diverges, 2 for a usage
error.</li></ul>"""
    return page("Check your own port: pytorch/examples' DCGAN in Keras", body)


def write(out: Path) -> list[str]:
    """Run every step and write out/compare.html; the problems of steps that do not show what they explain."""
    width = WIDTH  # the test builds a narrower page
    if not (ROOT / TORCH_FILE).is_file():
        return [f"the tutorial's files are not here: {ROOT / EXAMPLES} (they live in the repository)"]
    results = [(step, *run_step(step, width)) for step in STEPS]
    (out / PAGE).write_text(tutorial_page(results))
    return [message for step, report, _ in results if (message := problem(step, report)) is not None]
