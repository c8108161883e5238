"""The quality metric (specs/quality.py), `eval` in both backends, the Inception path, and the benchmarks' smoke runs.

FID and KID are checked on Gaussian features, where their values are known; the classifier on digits; `eval` on a
tiny CGAN checkpoint of each backend (1 epoch on `fake`, as in tests/test_cli.py); the Inception FID through
torchmetrics with a small stand-in network (no download); the benchmarks with one tiny cell each, in this process.
"""

import contextlib
import importlib.util
import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

import inception_fid
import inception_fid.torchmetrics_fid as inception
import torch_impl.checkpoint as torch_checkpoint
import torch_impl.train as torch_train
from parity import convert
from specs import quality
from specs.datasets import get_spec
from specs.evaluate import generate_images
from specs.runs import RunError

# isort: split
import keras_impl.checkpoint as keras_checkpoint  # after torch_impl: torch before TensorFlow
import keras_impl.train as keras_train
import keras_impl.trainers as keras_trainers

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = {"torch": torch_train, "keras": keras_train}
TINY = ["--dataset", "fake", "--image-size", "16", "--width", "4", "--latent-dim", "8", "--batch-size", "32", "--quiet"]


def gaussian(n: int, d: int = 8, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def load_script(name: str):
    """A benchmark script as a module (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------------- Metrics


def test_fid_of_a_set_with_itself_is_zero():
    x = gaussian(500)
    assert quality.frechet_distance(x, x) == pytest.approx(0, abs=1e-9)


def test_fid_equals_the_sqrtm_formula():
    x, y = gaussian(400, seed=1), gaussian(300, seed=2) * 1.5 + 0.3
    mu_x, mu_y, s_x, s_y = x.mean(0), y.mean(0), np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    expected = np.sum((mu_x - mu_y) ** 2) + np.trace(s_x + s_y - 2 * scipy.linalg.sqrtm(s_x @ s_y).real)
    assert quality.frechet_distance(x, y) == pytest.approx(expected, rel=1e-9)


def test_fid_grows_with_a_shift():
    x = gaussian(500)
    distances = [quality.frechet_distance(x, x + shift) for shift in (0.1, 0.5, 1.0, 2.0)]
    assert distances == sorted(distances)
    assert distances[-1] == pytest.approx(8 * 2.0**2)  # the same covariance: FID = |shift vector|^2


def test_kid_is_unbiased_for_one_distribution_and_positive_for_two():
    same = [quality.kernel_distance(gaussian(200, seed=2 * i), gaussian(200, seed=2 * i + 1), subsets=5)[0]
            for i in range(30)]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))  # zero within three standard errors
    shifted, spread = quality.kernel_distance(gaussian(200, seed=1), gaussian(200, seed=2, shift=0.5), subsets=5)
    assert shifted > 10 * np.std(same) and shifted > 5 * spread


def test_class_accuracy_counts_each_requested_class():
    accuracy = quality.class_accuracy(np.array([0, 1, 1, 2, 0]), np.array([0, 1, 2, 2, 1]), 4)
    assert accuracy[:3].tolist() == [1.0, 0.5, 0.5] and np.isnan(accuracy[3])


def test_eval_inputs_ask_for_every_class_equally():
    config = type("Config", (), {"latent_dim": 4, "conditional": True, "num_classes": 3})()
    inputs = quality.eval_inputs(config, seed=0, num=9)
    assert np.bincount(inputs.one_hot.argmax(1)).tolist() == [3, 3, 3] and inputs.z.shape == (9, 4)
    parts = list(quality.chunks(inputs, 4))
    assert [len(part.z) for part in parts] == [4, 4, 1] and np.array_equal(parts[2].one_hot, inputs.one_hot[8:])


# ------------------------------------------------------------------------------------------------- Classifier


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """(data, spec, classifier) of digits, with the cache in a temporary folder."""
    spec = get_spec("digits", cache_dir=str(tmp_path_factory.mktemp("cache")))
    data = spec.load()
    classifier, path = quality.load_classifier(data, spec)
    assert path.is_file() and path.parent == spec.cache_root() / "quality"
    return data, spec, classifier


def test_the_digits_classifier_is_accurate_and_cached(digits):
    data, spec, classifier = digits
    assert classifier.accuracy >= 0.95
    again, _ = quality.load_classifier(data, spec)  # from the cache: the same arrays
    pairs = zip(again.weights + again.biases, classifier.weights + classifier.biases)
    assert all(np.array_equal(a, b) for a, b in pairs)
    assert classifier.features(data.images[:5]).shape == (5, 128)


def test_real_vs_real_is_far_below_noise(digits):
    data, _, classifier = digits
    baseline = quality.real_baseline(classifier, data.images)
    noise = np.random.default_rng(0).integers(0, 256, data.images[:500].shape, dtype=np.uint8)
    scores = quality.score(classifier, data.images, noise)
    assert baseline["fid"] < scores["fid"] / 20 and abs(baseline["kid"]) < scores["kid"] / 20


def test_the_classifier_trains_deterministically(digits):
    data = digits[0]
    small = type(data)(data.images[:300], data.labels[:300], 10, data.class_names)
    first, second = quality.train_classifier(small), quality.train_classifier(small)
    assert all(np.array_equal(a, b) for a, b in zip(first.weights, second.weights)) and first.scale == second.scale


def test_a_data_set_without_classes_is_refused():
    data = get_spec("fake", image_size=16, fake_size=64).load()
    one_class = type(data)(data.images, np.zeros_like(data.labels), 1, ("all",))
    with pytest.raises(quality.RunError, match="at least 2 classes"):
        quality.train_classifier(one_class)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two classes of real photographs: 60 crops of 48x48 from each of scikit-learn's sample images (china,
    flower), as benchmarks/classifier.py makes them, read at 16x16x3: (folder, spec, data, classifier)."""
    root = tmp_path_factory.mktemp("photos")
    folder = load_script("classifier").photo_folder(root / "photos", crops=60, side=48)
    spec = get_spec("folder", path=str(folder), image_size=16, channels=3, cache_dir=str(root / "cache"))
    data = spec.load()
    return folder, spec, data, quality.load_classifier(data, spec)[0]


def test_two_classes_of_photographs_are_told_apart(photos):
    """scikit-learn gives a two-class network one logistic output; read as a row of per-class logits (argmax over
    one column) it named the first class for every image, and the held-out accuracy was that class's share."""
    _, _, data, classifier = photos
    assert classifier.weights[-1].shape == (128, 1)
    held_out = np.random.default_rng(0).permutation(len(data.labels))[96:]  # the split of train_classifier: 80/20
    old_reading = classifier.classes[np.argmax(classifier.activations(data.images[held_out]) @ classifier.weights[-1]
                                               + classifier.biases[-1], axis=1)]
    assert (old_reading == classifier.classes[0]).all()  # the old answer: always the first class
    assert np.mean(old_reading == data.labels[held_out]) == np.mean(data.labels[held_out] == classifier.classes[0])
    assert classifier.accuracy >= 0.9 and classifier.trusted
    assert len(held_out) == classifier.held_out == 24


def test_a_classifier_at_chance_is_not_trusted():
    at_chance = quality.Classifier((), (), np.arange(2), 1, accuracy=0.55, chance=0.55, held_out=40)
    lucky = quality.Classifier((), (), np.arange(2), 1, accuracy=0.7, chance=0.55, held_out=40)
    sure = quality.Classifier((), (), np.arange(2), 1, accuracy=0.9, chance=0.55, held_out=40)
    assert not at_chance.trusted and not lucky.trusted and sure.trusted  # 28 of 40 at p = 0.55: p-value 0.06
    assert quality.binomial_tail(9, 9, 0.5) == pytest.approx(0.5**9)


def test_the_classifier_benchmark_smoke(capsys):
    load_script("classifier").main(["--crops", "10", "--side", "32", "--image-size", "8"])
    table = capsys.readouterr().out
    assert "| crop seed | eval's classifier |" in table and table.strip().splitlines()[-1].startswith("| 0 | ")


# ------------------------------------------------------------------------------------------------------- eval


@pytest.fixture(scope="module")
def cgan_runs(tmp_path_factory):
    """A 1-epoch tiny CGAN run of each backend on `fake`: {backend: run folder}, and the cache folder."""
    root = tmp_path_factory.mktemp("runs")
    for name, module in BACKENDS.items():
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            argv = ["train", "cgan", *TINY, "--epochs", "1", "--cache-dir", str(root / "cache"), "--out",
                    str(root / name)]
            assert module.main(argv) == 0, printed.getvalue()
    return {name: root / name for name in BACKENDS}, root / "cache"


def run_eval(backend: str, run: Path, cache: Path, capsys, *flags: str) -> dict:
    argv = ["eval", "cgan", "--checkpoint", str(run), "--num", "60", "--cache-dir", str(cache), "--json", *flags]
    assert BACKENDS[backend].main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_eval_scores_a_checkpoint(backend, cgan_runs, capsys):
    runs, cache = cgan_runs
    result = run_eval(backend, runs[backend], cache, capsys)
    assert (result["model"], result["backend"], result["samples"], result["real"]) == ("cgan", backend, 60, 256)
    ours = result["samples_vs_real"]
    assert np.isfinite([ours["fid"], ours["kid"], result["real_vs_real"]["fid"]]).all()
    # `fake` has random labels: the classifier is at chance, so no class accuracy is given, and eval says why
    assert not result["classifier_trusted"] and "class_accuracy" not in ours
    assert "not clearly above chance" in ours["class_accuracy_withheld"]
    argv = ["eval", "cgan", "--checkpoint", str(runs[backend]), "--num", "60", "--cache-dir", str(cache)]
    assert BACKENDS[backend].main(argv) == 0
    out = capsys.readouterr().out
    assert "| FID (classifier features) |" in out and "| class accuracy | not shown: " in out
    assert f"held-out accuracy {100 * result['classifier_accuracy']:.1f}% on " in out and "NOT clearly above" in out


@pytest.fixture(scope="module")
def photo_run(photos, tmp_path_factory):
    """A 1-epoch tiny torch CGAN on the photographs' folder (7 steps): the run folder."""
    folder, spec, _, _ = photos
    out = tmp_path_factory.mktemp("photo-run") / "run"
    argv = ["train", "cgan", *TINY[2:], "--dataset", "folder", "--data-dir", str(folder), "--channels", "3",
            "--batch-size", "16", "--epochs", "1", "--cache-dir", spec.cache_dir, "--out", str(out)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        assert torch_train.main(argv) == 0, printed.getvalue()
    return out


def test_eval_finds_the_runs_own_data_and_gives_class_accuracy(photos, photo_run, capsys):
    """No --data-dir: the checkpoint remembers where its folder is. The classifier tells the photographs apart,
    so the class accuracy is given, beside the classifier's own held-out accuracy."""
    _, spec, _, classifier = photos
    argv = ["eval", "cgan", "--checkpoint", str(photo_run), "--num", "40", "--cache-dir", spec.cache_dir, "--json"]
    assert torch_train.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "folder" and result["real"] == 120 and result["classifier_trusted"]
    assert result["classifier_accuracy"] == classifier.accuracy and result["class_names"] == ["china", "flower"]
    assert len(result["samples_vs_real"]["class_accuracy"]) == 2


def test_eval_says_when_the_runs_data_is_gone(photos, photo_run, tmp_path, capsys):
    folder = photos[0]
    moved = tmp_path / "moved"
    folder.rename(moved)
    try:
        assert torch_train.main(["eval", "cgan", "--checkpoint", str(photo_run), "--num", "8"]) == 2
    finally:
        moved.rename(folder)
    assert capsys.readouterr().err.strip() == (f"gan-torch: error: the data this run was trained on, {folder}, is "
                                               "not there any more; pass --data-dir")


@pytest.mark.parametrize("num", [1, 3])
def test_eval_with_too_few_samples_is_one_line(cgan_runs, capsys, num):
    """--num 1 raised LinAlgError from the covariance of one sample; --num 3 printed KID as nan ± nan."""
    runs, cache = cgan_runs
    assert torch_train.main(["eval", "cgan", "--checkpoint", str(runs["torch"]), "--num", str(num)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"gan-torch: error: --num {num} is too few to score: ")
    assert "--num 4 or more" in err


def test_eval_with_the_fewest_samples_gives_numbers(cgan_runs, capsys):
    runs, cache = cgan_runs
    argv = ["eval", "cgan", "--checkpoint", str(runs["torch"]), "--num", "4", "--cache-dir", str(cache), "--json"]
    assert torch_train.main(argv) == 0
    ours = json.loads(capsys.readouterr().out)["samples_vs_real"]
    assert np.isfinite([ours["fid"], ours["kid"], ours["kid_std"]]).all()


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_eval_of_the_wrong_model_is_one_line(backend, cgan_runs, capsys):
    runs, cache = cgan_runs
    assert BACKENDS[backend].main(["eval", "dcgan", "--checkpoint", str(runs[backend])]) == 2
    assert capsys.readouterr().err.strip() == (f"gan-{backend}: error: the checkpoint holds a cgan model, not dcgan; "
                                               "name it as cgan: `sample cgan --checkpoint ...`, "
                                               "`eval cgan --checkpoint ...`")


def test_gan_parity_quality_scores_runs_of_both_backends_as_eval_does(cgan_runs, capsys):
    """One table: each run's FID and KID as its backend's eval gives them, and the real-vs-real floor once."""
    import parity.__main__ as parity_main

    runs, cache = cgan_runs
    argv = ["quality", str(runs["torch"]), str(runs["keras"]), "--num", "60", "--cache-dir", str(cache)]
    assert parity_main.main(argv) == 0
    table = capsys.readouterr().out
    expected = [run_eval(backend, runs[backend], cache, capsys)["samples_vs_real"]["fid"] for backend in BACKENDS]
    rows = [line for line in table.splitlines() if line.startswith(f"| {runs['torch'].parent}")]
    assert [row.split(" | ")[2] for row in rows] == ["torch", "keras"]
    assert [float(row.split(" | ")[4]) for row in rows] == [round(fid, 2) for fid in expected]
    assert all("not shown: classifier at chance" in row for row in rows)  # fake's labels are random
    assert table.count("| real vs real: two halves of fake (128 images each) |") == 1
    assert parity_main.main(["quality", str(cache / "nothing")]) == 2
    assert "no checkpoint of either backend at" in capsys.readouterr().err


def test_both_backends_score_the_same_generator_alike(cgan_runs):
    """The torch generator's weights copied into Keras: the same samples (to a rounding flip of one grey level),
    hence the same scores from the one classifier."""
    runs, cache = cgan_runs
    torch_trainer, _, _ = torch_checkpoint.load_trained("cgan", runs["torch"])
    keras_trainer = keras_trainers.build_trainer("cgan", torch_trainer.config)
    convert.torch_to_keras(convert.trainer_table(torch_trainer, keras_trainer, ("generator",)))
    inputs = quality.eval_inputs(torch_trainer.config, 0, 200)
    ours = generate_images(torch_checkpoint.generate, torch_trainer, inputs)
    theirs = generate_images(keras_checkpoint.generate, keras_trainer, inputs)
    assert np.abs(ours.astype(int) - theirs).max() <= 1 and np.mean(ours != theirs) < 1e-3
    data = get_spec("fake", image_size=16, cache_dir=str(cache)).load()
    classifier, _ = quality.load_classifier(data, get_spec("fake", image_size=16, cache_dir=str(cache)))
    requested = inputs.one_hot.argmax(1)
    a, b = (quality.score(classifier, data.images, images, requested, 10) for images in (ours, theirs))
    assert a["fid"] == pytest.approx(b["fid"], rel=1e-3) and a["kid"] == pytest.approx(b["kid"], rel=1e-2, abs=1e-4)


# -------------------------------------------------------------------------------------------------- Inception


class StandIn(torch.nn.Module):
    """Maps uint8 (N, 3, H, W) to 6 features, as torchmetrics's Inception does to 2048 (nothing downloaded)."""

    num_features = 6

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(images.float() / 255, 2).flatten(1)  # (N, 12)
        return pooled[:, :6] * pooled[:, 6:]


def test_inception_fid_with_a_stand_in_network_matches_our_fid():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (120, 16, 16, 1), dtype=np.uint8)
    fake = np.clip(real.astype(int) + rng.integers(0, 60, real.shape), 0, 255).astype(np.uint8)
    value = inception.frechet_inception_distance(real, fake, feature=StandIn(), batch_size=50)
    with torch.no_grad():
        expected = quality.frechet_distance(*(StandIn()(inception.inception_input(x)).double().numpy()
                                              for x in (real, fake)))
    assert value == pytest.approx(expected, rel=1e-3) and value > 0


def test_eval_inception_flag_reaches_torchmetrics(cgan_runs, capsys, monkeypatch):
    runs, cache = cgan_runs
    stand_in = inception.frechet_inception_distance

    def with_stand_in(real, fake):
        assert real.dtype == fake.dtype == np.uint8 and fake.shape == (60, 16, 16, 1)
        return stand_in(real, fake, feature=StandIn())

    monkeypatch.setattr(inception_fid, "frechet_inception_distance", with_stand_in)
    result = run_eval("keras", runs["keras"], cache, capsys, "--inception")
    assert result["samples_vs_real"]["inception_fid"] > 0


@pytest.mark.skipif(importlib.util.find_spec("torch_fidelity") is not None, reason="would download the weights")
def test_inception_runs_in_a_process_of_its_own_and_says_what_is_missing():
    """The child process (inception_fid/torchmetrics_fid.py) runs, and without torch-fidelity says, in one line,
    what to install; the calling process has loaded nothing for it."""
    images = np.zeros((4, 16, 16, 1), np.uint8)
    with pytest.raises(RunError, match=r"^--inception needs torch-fidelity: pip install 'gan-parity\[inception\]'"):
        inception_fid.frechet_inception_distance(images, images)


# ------------------------------------------------------------------------------------------------- Benchmarks


def test_quality_benchmark_smoke(digits):
    benchmark = load_script("quality")
    args = benchmark.parse_args(["--steps", "2", "--seeds", "1", "--models", "dcgan", "cgan", "--backends", "torch"])
    default = benchmark.parse_args([])  # the book's three; the published presets by name
    assert args.steps_for == [2, 2] and default.steps_for == [benchmark.STEPS[model] for model in benchmark.BOOK]
    assert benchmark.parse_args(["--models", "face32"]).steps_for == [benchmark.STEPS["face32"]]
    assert benchmark.parse_args(["--steps", "7", "cgan=9"]).steps_for == [7, 7, 9]
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--steps", "gan=3"])
    data, spec, classifier = digits
    images, requested, seconds = benchmark.train_and_sample("torch", "dcgan", 0, 2, 20, spec.cache_dir)
    assert images.shape == (20, 32, 32, 1) and images.dtype == np.uint8 and requested is None
    cells = {("dcgan", "torch", "float32"): [quality.score(classifier, data.images, images) | {"seconds": seconds}]}
    real = quality.score(classifier, data.images, data.images[:100], data.labels[:100], 10)  # real images as a CGAN
    assert real["accuracy"] > 0.95
    cells["cgan", "torch", "float32"] = [real | {"seconds": 0.0}]
    size = (32, 1)  # one classifier and one real-vs-real row per image size and channels
    baseline, classifiers = {size: quality.real_baseline(classifier, data.images)}, {size: classifier}
    text = benchmark.table(cells, baseline, classifiers, args)
    assert "| dcgan | 32x32x1 | 2 | torch |" in text and "| cgan | 32x32x1 | 2 | torch |" in text
    assert f"| real vs real (two halves) | 32x32x1 |  |  | {baseline[size]['fid']:.2f} |" in text
    # several precisions: a precision column, and each FID against the same backend's float32 FID
    args = benchmark.parse_args(["--steps", "2", "--seeds", "2", "--models", "dcgan", "--backends", "torch",
                                 "--precision", "float32", "bfloat16"])
    cells = {("dcgan", "torch", precision): [{"fid": fid, "kid": 0.0, "seconds": 1.0} for fid in fids]
             for precision, fids in (("float32", (4.0, 4.2)), ("bfloat16", (4.5, 4.7)))}
    text = benchmark.table(cells, baseline, classifiers, args)
    assert "| dcgan | 32x32x1 | 2 | torch | bfloat16 | 4.60 ± 0.14 |" in text
    assert "+0.50 (beyond the seed spread)" in text
    row = next(line for line in text.splitlines() if line.startswith("| real vs real"))
    assert row.count("|") == text.splitlines()[2].count("|")  # as many cells as the header


def test_quality_benchmark_scores_a_published_preset_at_its_own_size(digits):
    """A published preset trains on the digits at its own size and channels; its rows, and the real-vs-real row of
    that size, say so; each precision keeps its cells; a published-only run writes the published table."""
    benchmark = load_script("quality")
    _, spec, classifier = digits
    images, requested, _ = benchmark.train_and_sample("torch", "pytorch-gan-mlp", 0, 2, 8, spec.cache_dir)
    assert images.shape == (8, 28, 28, 1) and images.dtype == np.uint8 and requested is None
    assert benchmark.images_of("face32") == (32, 3) and benchmark.images_of("cgan") == (32, 1)
    assert benchmark.digits_spec("celeba-keras").image_size == 64 and benchmark.digits_spec("face32").channels == 3
    args = benchmark.parse_args(["--seeds", "2", "--models", "dcgan", "face32", "--precision", "float32", "bfloat16"])
    assert args.steps_for == [280, 60]
    cells = {(model, backend, precision): [{"fid": fid, "kid": 0.001, "seconds": 1.0} for fid in (5.0, 5.5)]
             for model in ("dcgan", "face32") for backend in ("torch", "keras")
             for precision in ("float32", "bfloat16")}
    sizes = {(32, 1): {"fid": 0.5, "kid": 0.0}, (32, 3): {"fid": 0.75, "kid": 0.0}}
    text = benchmark.table(cells, sizes, dict.fromkeys(sizes, classifier), args)
    assert "| face32 | 32x32x3 | 60 | keras | bfloat16 | 5.25 ± 0.35 |" in text
    assert "| dcgan | 32x32x1 | 280 | torch | float32 | 5.25 ± 0.35 |" in text
    assert "| real vs real (two halves) | 32x32x3 |  |  |  | 0.75 |" in text
    assert "--models dcgan face32 --precision float32 bfloat16`: digits at each model's size (32x32x1, 32x32x3)" in text
    assert benchmark.readme_markers(args) == benchmark.PRECISION_MARKERS
    published = benchmark.parse_args(["--models", *benchmark.PUBLISHED, "--readme"])
    assert benchmark.readme_markers(published) == benchmark.PUBLISHED_MARKERS
    assert benchmark.readme_markers(benchmark.parse_args(["--models", "dcgan", "face32"])) == benchmark.MARKERS
    assert benchmark.PUBLISHED_MARKERS[0] in (ROOT / "README.md").read_text()
    with pytest.raises(SystemExit):  # no README table for published presets in several precisions
        benchmark.parse_args(["--models", "face32", "--precision", "float32", "bfloat16", "--readme"])


def test_quality_benchmark_writes_between_the_readme_markers(tmp_path):
    benchmark = load_script("quality")
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{benchmark.MARKERS[0]}\nold\n{benchmark.MARKERS[1]}\nafter\n")
    benchmark.write_readme("| new |", readme)
    assert readme.read_text() == f"before\n{benchmark.MARKERS[0]}\n| new |\n{benchmark.MARKERS[1]}\nafter\n"
    assert benchmark.MARKERS[0] in (ROOT / "README.md").read_text()


def test_throughput_benchmark_smoke():
    benchmark = load_script("throughput")
    args = benchmark.parse_args(["--models", "dcgan", "--presets", "digits", "--variants", "reference"])
    assert args.models == ["dcgan"] and args.variants == ["reference"]
    book = benchmark.config_of("dcgan", "book", 128)
    assert benchmark.network_flops(book)[0] == pytest.approx(205.1e6, rel=1e-3)  # hand count of the book's G
    for backend, model, variant, precision in (("torch", "cgan", "ours", "bfloat16"), ("torch", "cgan", "reference",
                                               "float32"), ("keras", "dcgan", "reference", "float32")):
        spec = {"backend": backend, "model": model, "preset": "digits", "variant": variant, "max_batch": 8,
                "steps": 1, "warmup": 1, "precision": precision}
        result = benchmark.cell(spec)
        assert result.get("seconds", 0) > 0, result


def test_throughput_report_sets_torch_against_keras_and_each_device_against_the_cpu():
    """The tables from made-up median steps: Keras ÷ torch per precision, bfloat16 ÷ float32, the variants against
    ours, the device table; one command writes them between the README's markers."""
    benchmark = load_script("throughput")
    args = benchmark.parse_args(["--models", "dcgan", "--presets", "digits", "--devices", "cpu", "cuda",
                                 "--variants", "contiguous"])
    assert args.precisions == ["float32", "bfloat16"] and args.rounds == 1
    assert len(benchmark.cells_of(args)) == 2 * 2 * 2 + 1  # ours: devices x precisions x backends; the variant
    steps = {("torch", "ours", "float32", "cpu"): 0.5, ("keras", "ours", "float32", "cpu"): 0.4,
             ("torch", "ours", "bfloat16", "cpu"): 0.25, ("keras", "ours", "bfloat16", "cpu"): 0.2,
             ("torch", "contiguous", "float32", "cpu"): 0.6}
    steps |= {(backend, "ours", precision, "cuda"): 0.01 for backend in ("torch", "keras")
              for precision in ("float32", "bfloat16")}
    results = {("digits", "dcgan", *name): {"median_step": step, "cpu_step": 2 * step, "device": name[-1]}
               for name, step in steps.items()}
    text = benchmark.report(args, results, {"torch": {"gflops": 100.0}, "keras": {"gflops": 100.0}})
    assert "| digits | dcgan | 64 | float32 | 128.0 | 160.0 | 1.25 | 64.0 | 80.0 | 1.25 |" in text
    assert "| digits | dcgan | 2.00 (2.00) | 2.00 (2.00) |" in text  # bfloat16 against float32
    assert "| torch contiguous | 0.83 |" in text
    assert "| digits | dcgan | torch | bfloat16 | 256.0 | 6400.0 | 25.00 |" in text
    # a variant the model has no use for is not run and shows "—"; one that ran and failed shows "fails"
    args = benchmark.parse_args(["--models", "dcgan", "--presets", "digits", "--precisions", "float32",
                                 "--variants", "autograd_penalty", "omp_spin"])
    assert [cell["variant"] for cell in benchmark.cells_of(args) if cell["variant"] != "ours"] == ["omp_spin"]
    results = {("digits", "dcgan", backend, "ours", "float32", "cpu"): {"median_step": 0.5, "cpu_step": 1.0}
               for backend in ("torch", "keras")}
    results[("digits", "dcgan", "torch", "omp_spin", "float32", "cpu")] = {"error": "RuntimeError: no"}
    text = benchmark.report(args, results, {"torch": {"gflops": 100.0}, "keras": {"gflops": 100.0}})
    assert "| torch autograd_penalty | — |" in text and "| torch omp_spin | fails |" in text
    # the header's command is what was measured: the options that only say where results go are left out
    assert benchmark.measuring(["--models", "dcgan", "--readme", "--json", "out.json", "--rounds", "3",
                                "--json=x.json"]) == ["--models", "dcgan", "--rounds", "3"]


def test_throughput_runs_each_model_at_its_own_presets_and_counts_the_published_flops():
    """Only the model/preset pairs that exist run; the published networks' FLOPs are counted by hooks (checked by
    hand on the MLP); a published preset runs as a cell, ours and the reference loop, and gets its own columns."""
    benchmark = load_script("throughput")
    args = benchmark.parse_args(["--models", "dcgan", "published", "--presets", "digits", "pytorch-gan-mlp",
                                 "--variants", "--precisions", "float32"])
    assert benchmark.pairs(args) == [("digits", "dcgan"), ("pytorch-gan-mlp", "published")]
    assert [(cell["preset"], cell["model"], cell["backend"]) for cell in benchmark.cells_of(args)] == [
        ("digits", "dcgan", "torch"), ("digits", "dcgan", "keras"),
        ("pytorch-gan-mlp", "published", "torch"), ("pytorch-gan-mlp", "published", "keras")]
    with pytest.raises(SystemExit):  # no model of the run has the preset
        benchmark.parse_args(["--models", "dcgan", "--presets", "face32"])
    mlp = benchmark.config_of("published", "pytorch-gan-mlp", 128)  # z 100 -> 128 -> 256 -> 512 -> 1024 -> 784
    generator = 2 * (100 * 128 + 128 * 256 + 256 * 512 + 512 * 1024 + 1024 * 784)
    assert benchmark.published_flops(mlp) == (generator, 2 * (784 * 512 + 512 * 256 + 256 * 1))
    # pytorch/examples' DCGAN, kernel 4 (16 taps): a convT's input pixel meets every tap, a conv's output pixel reads
    # every tap; G 1 -> 4 -> 8 -> 16 -> 32 -> 64 pixels a side (100, 512, 256, 128, 64, 3 channels), D the reverse
    g = 2 * 16 * (1 * 100 * 512 + 4**2 * 512 * 256 + 8**2 * 256 * 128 + 16**2 * 128 * 64 + 32**2 * 64 * 3)
    d = 2 * 16 * (32**2 * 3 * 64 + 16**2 * 64 * 128 + 8**2 * 128 * 256 + 4**2 * 256 * 512 + 1 * 512 * 1)
    assert benchmark.published_flops(benchmark.config_of("published", "pytorch-examples", 128)) == (g, d)
    for backend, variant in (("torch", "ours"), ("torch", "reference"), ("keras", "reference")):
        spec = {"backend": backend, "model": "published", "preset": "pytorch-gan-mlp", "variant": variant,
                "max_batch": 8, "steps": 1, "warmup": 1}
        assert benchmark.cell(spec).get("seconds", 0) > 0
    results = {("pytorch-gan-mlp", "published", backend, "ours", "float32", "cpu"): {"median_step": step}
               for backend, step in (("torch", 0.5), ("keras", 0.25))}
    text = benchmark.report(args, results, {})
    assert "| pytorch-gan-mlp | published | 64 | float32 | 128.0 | 256.0 | 2.00 |" in text
    assert "| digits | dcgan | 64 | float32 | nan | nan |" in text  # not run: no number made up


@pytest.mark.slow  # a benchmark's child processes: .ci/run runs it after make test
def test_throughput_runs_keras_on_jax_and_pytorch_in_processes_of_their_own(monkeypatch):
    """Each Keras backend's cell runs in a child with its KERAS_BACKEND (and the CPU named to JAX and to Keras's
    torch backend as gan-keras names it); a keras-jax cell really trains on JAX, without TensorFlow's tf.data; the
    report adds a column per backend and the fastest backend per model."""
    benchmark = load_script("throughput")
    spec = {"backend": "keras-jax", "model": "published", "preset": "pytorch-gan-mlp", "variant": "ours",
            "max_batch": 8, "steps": 2, "warmup": 1, "precision": "float32", "device": "cpu"}
    env = benchmark.child_environment(spec)
    assert env["KERAS_BACKEND"] == "jax" and env["JAX_PLATFORMS"] == "cpu"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)  # this checkout's packages, whatever is installed
    torch_env = benchmark.child_environment(spec | {"backend": "keras-torch"})
    assert torch_env["KERAS_BACKEND"] == "torch" and torch_env["KERAS_TORCH_DEVICE"] == "cpu"
    assert benchmark.child_environment(spec | {"backend": "keras"})["KERAS_BACKEND"] == "tensorflow"
    torch_cell = benchmark.child_environment(spec | {"backend": "torch"})  # torch's cell: gan-torch's OpenMP setting
    assert torch_cell.get("KERAS_BACKEND") == os.environ.get("KERAS_BACKEND") and "OMP_WAIT_POLICY" in torch_cell
    assert benchmark.run_child(spec | {"device": "mps"}) == {"error": "--device mps: JAX has no Apple GPU backend; "
                                                             "use --backend torch or tensorflow, or --device cpu"}
    result = benchmark.run_child(spec)  # a real child process
    assert result["device"].endswith("(Keras on jax)") and result["jit_compile"] is True, result
    assert result["frameworks"] == ["jax"]  # a repeated numpy batch: neither tf.data nor torch loaded
    assert result["median_step"] > 0
    seen = []

    def fake_run(command, env, **kwargs):
        seen.append(env["KERAS_BACKEND"])
        return subprocess.CompletedProcess(command, 0, stdout='{"gflops": 1.0}\n', stderr="")

    monkeypatch.setattr(benchmark.subprocess, "run", fake_run)
    assert benchmark.run_child({"backend": "keras-torch", "variant": "peak"}) == {"gflops": 1.0}
    assert seen == ["torch"]
    args = benchmark.parse_args(["--models", "dcgan", "--presets", "digits", "--backends", "torch", "keras",
                                 "keras-jax", "--variants", "--precisions", "float32"])
    assert [cell["backend"] for cell in benchmark.cells_of(args)] == ["torch", "keras", "keras-jax"]  # ours only
    results = {("digits", "dcgan", backend, "ours", "float32", "cpu"): {"median_step": step, "cpu_step": step}
               for backend, step in (("torch", 0.5), ("keras", 0.4), ("keras-jax", 0.25))}
    text = benchmark.report(args, results, {})
    assert "| Keras on JAX img/s | Keras on JAX ÷ torch | Keras on JAX ÷ torch per CPU-s |" in text
    row = "| digits | dcgan | 64 | float32 | 128.0 | 160.0 | 1.25 | 128.0 | 160.0 | 1.25 | 256.0 | 2.00 | 2.00 |"
    assert row in text
    assert "| digits | dcgan | float32 | 128.0 (0.50) | 160.0 (0.62) | 256.0 (1.00) | Keras on JAX |" in text
