"""Sample quality without a download: FID and KID on the features of a classifier trained on the data set itself.

The same code and the same weights score samples of either backend, as uint8 images (N, H, W, C):
- The classifier is scikit-learn's MLPClassifier (pixels -> 256 -> 128 -> classes, ReLU, Adam, random_state 0),
  trained once on 80% of the data set (a seeded split; the other 20% give its held-out accuracy) and cached as
  plain numpy arrays under the data cache root (`<cache>/quality/`), keyed by the sha256 of the images, labels and
  these settings: a changed data set or setting trains a new one. Scoring is a numpy forward pass of those arrays;
  the features are the last hidden layer's activations (128 numbers per image), divided by one constant stored with
  the classifier that gives them a mean square of 1 on the real training images.
- FID: the Frechet distance of Gaussians fitted to the two feature sets,
  |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1^1/2 S2 S1^1/2)^1/2), the matrix root taken from eigenvalues.
- KID: the unbiased estimate of MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3, averaged over 100 random subsets
  (Binkowski et al. 2018, as torch-fidelity and torchmetrics compute it); mean and standard deviation over subsets.
  A subset holds min(1000, half of each set) samples, so that on small sets the subsets still differ.
- For a conditional model: the classifier's accuracy on samples of each requested class, shown only when the
  classifier itself is clearly better than chance on the held-out images (`Classifier.trusted`: 5 points above
  the commonest class's share, and a binomial p-value below 0.01); otherwise eval says why it shows none.
- Two classes: scikit-learn's network then has one logistic output (the logit of the second class), not one output
  per class; `predict` reads it as such (reading it as a row of per-class logits made every prediction the first
  class, and the held-out accuracy that class's share).
Both numbers are biased by finite samples: compare them with the real-vs-real baseline (two halves of the data).
Large data sets: the classifier trains on at most 10,000 images, average-pooled to at most 32x32 pixels.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from specs.datasets import Cached, DatasetSpec, to_unit
from specs.images import write_atomically
from specs.runs import RunError, SampleInputs, fixed_noise

CLASSIFIER = {"hidden": (256, 128), "alpha": 1e-3, "batch_size": 128, "max_iter": 200, "random_state": 0,
              "held_out": 0.2, "max_train": 10_000, "max_side": 32, "version": 3}
MIN_SAMPLES = 4  # KID's unbiased estimate needs subsets of 2 from each of two sets, each subset at most half its set
ABOVE_CHANCE = 0.05  # the classifier is trusted when its held-out accuracy beats chance by this much,
CHANCE_P = 0.01  # and a guess right with chance's probability reaches it on that many images less often than this
MAX_REAL = 10_000  # real images the samples are compared with (a seeded subset of a larger data set)
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # torch-fidelity's and torchmetrics's defaults

# --------------------------------------------------------------------------------------------------- Metrics


def frechet_distance(features_1: np.ndarray, features_2: np.ndarray) -> float:
    """FID of two feature sets (N, d): Gaussians fitted by mean and covariance, the root from eigenvalues."""
    x, y = np.asarray(features_1, np.float64), np.asarray(features_2, np.float64)
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    cov_x, cov_y = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    values, vectors = np.linalg.eigh(cov_x)
    root_x = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T  # S1^1/2, symmetric
    cross = np.linalg.eigvalsh(root_x @ cov_y @ root_x)  # Tr (S1 S2)^1/2 = sum of sqrt eig(S1^1/2 S2 S1^1/2)
    distance = np.sum((mu_x - mu_y) ** 2) + np.trace(cov_x) + np.trace(cov_y) - 2 * np.sqrt(cross.clip(min=0)).sum()
    return float(max(distance, 0.0))


def kernel_distance(features_1: np.ndarray, features_2: np.ndarray, subsets: int = KID_SUBSETS,
                    subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
    """KID: the unbiased MMD^2 with the cubic polynomial kernel, mean and std over `subsets` random subsets."""
    x, y = np.asarray(features_1, np.float64), np.asarray(features_2, np.float64)
    size = min(len(x) // 2, len(y) // 2, subset_size)  # at most half of each set, so that subsets differ
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        a = x[rng.choice(len(x), size, replace=False)]
        b = y[rng.choice(len(y), size, replace=False)]
        k_aa, k_bb, k_ab = ((p @ q.T / x.shape[1] + 1) ** 3 for p, q in ((a, a), (b, b), (a, b)))
        within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (size * (size - 1))
        values.append(within - 2 * k_ab.mean())  # diagonal terms left out: unbiased
    return float(np.mean(values)), float(np.std(values))


def class_accuracy(predicted: np.ndarray, requested: np.ndarray, num_classes: int) -> np.ndarray:
    """Fraction of the samples of each requested class that the classifier calls that class (NaN: none asked)."""
    hits = np.bincount(requested, weights=(predicted == requested).astype(np.float64), minlength=num_classes)
    asked = np.bincount(requested, minlength=num_classes)
    return np.divide(hits, asked, out=np.full(num_classes, np.nan), where=asked > 0)


# ------------------------------------------------------------------------------------------------ Classifier


@dataclass(frozen=True)
class Classifier:
    """The feature network: dense layers as numpy arrays, run on uint8 images (N, H, W, C)."""

    weights: tuple[np.ndarray, ...]  # (inputs, 256), (256, 128), (128, classes)
    biases: tuple[np.ndarray, ...]
    classes: np.ndarray  # the label of each output
    pool: int  # average-pooling factor applied to the images first
    scale: float = 1.0  # features = activations / scale: mean square 1 on the real training images
    accuracy: float = 0.0  # on the held-out 20%
    chance: float = 0.0  # what always answering the commonest class scores on the held-out 20%
    held_out: int = 0  # images held out

    @property
    def trusted(self) -> bool:
        """Whether the held-out accuracy is clearly above chance: by ABOVE_CHANCE, and unlikely (CHANCE_P) to be
        reached on that many images by a guess right with the probability `chance`."""
        hits = int(round(self.accuracy * self.held_out))
        margin = self.accuracy > self.chance + ABOVE_CHANCE
        return bool(margin and binomial_tail(hits, self.held_out, self.chance) < CHANCE_P)

    def activations(self, images: np.ndarray, chunk: int = 1000) -> np.ndarray:
        """The last hidden layer's ReLU outputs, float64 (N, 128)."""
        parts = []
        for start in range(0, len(images), chunk):
            x = flat_inputs(images[start : start + chunk], self.pool)
            for weight, bias in zip(self.weights[:-1], self.biases[:-1]):
                x = np.maximum(x @ weight + bias, 0)
            parts.append(x)
        return np.concatenate(parts) if parts else np.zeros((0, self.weights[-1].shape[0]))

    def features(self, images: np.ndarray) -> np.ndarray:
        """What FID and KID compare: the activations on a fixed scale, so that the kernel's x.y / d is of order 1
        (as for Inception's features) and the numbers read the same for every data set."""
        return self.activations(images) / self.scale

    def predict(self, images: np.ndarray) -> np.ndarray:
        logits = self.activations(images) @ self.weights[-1] + self.biases[-1]
        if logits.shape[1] == 1:  # two classes: one logistic output, the logit of classes[1]
            return self.classes[(logits[:, 0] > 0).astype(np.int64)]
        return self.classes[np.argmax(logits, axis=1)]


def binomial_tail(hits: int, trials: int, p: float) -> float:
    """P(X >= hits) for X ~ Binomial(trials, p), summed in logs (no overflow for thousands of trials)."""
    if hits <= 0:
        return 1.0
    if p <= 0 or p >= 1:
        return float(p >= 1)
    log_terms = [math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1) + k * math.log(p)
                 + (trials - k) * math.log1p(-p) for k in range(hits, trials + 1)]
    top = max(log_terms)
    return float(math.exp(top) * sum(math.exp(term - top) for term in log_terms))


def flat_inputs(images: np.ndarray, pool: int) -> np.ndarray:
    """uint8 (N, H, W, C) -> float64 (N, H/pool * W/pool * C) in [-1, 1]."""
    x = to_unit(images).astype(np.float64)
    if pool > 1:
        n, h, w, c = x.shape
        x = x.reshape(n, h // pool, pool, w // pool, pool, c).mean(axis=(2, 4))
    return x.reshape(len(x), -1)


def train_classifier(data: Cached) -> Classifier:
    """MLPClassifier on a seeded 80% of (at most max_train) images; deterministic for the same data."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    if data.num_classes < 2:
        raise RunError("the quality metric needs a labelled data set (at least 2 classes) to train its classifier; "
                       "a folder data set needs one subfolder per class")
    settings = CLASSIFIER
    order = np.random.default_rng(settings["random_state"]).permutation(len(data.labels))
    order = order[: int(settings["max_train"] / (1 - settings["held_out"]))]
    cut = int(round(len(order) * (1 - settings["held_out"])))
    train, held_out = order[:cut], order[cut:]
    pool = max(1, data.images.shape[1] // settings["max_side"])
    network = MLPClassifier(settings["hidden"], alpha=settings["alpha"], batch_size=min(settings["batch_size"], cut),
                            max_iter=settings["max_iter"], random_state=settings["random_state"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        network.fit(flat_inputs(data.images[train], pool), data.labels[train])
    classifier = Classifier(tuple(w.astype(np.float64) for w in network.coefs_),
                            tuple(b.astype(np.float64) for b in network.intercepts_), network.classes_, pool)
    scale = float(np.sqrt(np.mean(classifier.activations(data.images[train]) ** 2))) or 1.0
    accuracy = float(np.mean(classifier.predict(data.images[held_out]) == data.labels[held_out]))
    chance = float(np.bincount(data.labels[held_out]).max() / max(len(held_out), 1)) if len(held_out) else 1.0
    return replace(classifier, scale=scale, accuracy=accuracy, chance=chance, held_out=len(held_out))


def data_digest(data: Cached) -> str:
    """sha256 of the images, the labels and the classifier's settings: the classifier cache's key."""
    digest = hashlib.sha256(json.dumps(CLASSIFIER).encode())
    digest.update(np.ascontiguousarray(data.images).data)
    digest.update(np.ascontiguousarray(data.labels).data)
    return digest.hexdigest()[:16]


def load_classifier(data: Cached, spec: DatasetSpec) -> tuple[Classifier, Path]:
    """The data set's classifier: read from `<cache>/quality/`, or trained once and written there atomically."""
    path = spec.cache_root() / "quality" / f"classifier-{spec.cache_key()}-{data_digest(data)}.npz"
    if path.is_file():
        with np.load(path) as arrays:
            layers = len([key for key in arrays.files if key.startswith("weight")])
            return Classifier(tuple(arrays[f"weight{i}"] for i in range(layers)),
                              tuple(arrays[f"bias{i}"] for i in range(layers)), arrays["classes"],
                              int(arrays["pool"]), float(arrays["scale"]), float(arrays["accuracy"]),
                              float(arrays["chance"]), int(arrays["held_out"])), path
    classifier = train_classifier(data)
    arrays = {f"weight{i}": w for i, w in enumerate(classifier.weights)}
    arrays |= {f"bias{i}": b for i, b in enumerate(classifier.biases)}
    arrays |= {"classes": classifier.classes, "pool": classifier.pool, "scale": classifier.scale,
               "accuracy": classifier.accuracy, "chance": classifier.chance, "held_out": classifier.held_out}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        write_atomically(path, lambda handle: handle.write(buffer.getvalue()))
    except OSError:
        pass  # an unwritable cache costs a retraining next time, nothing else
    return classifier, path


# ---------------------------------------------------------------------------------------------------- Scoring


def eval_inputs(config, seed: int, num: int) -> SampleInputs:
    """z for `num` samples (the same numbers in both backends); a conditional model gets classes 0, 1, ..., K-1,
    0, 1, ... in turn, so every class is asked for equally often. z comes from the model's own distribution."""
    z = fixed_noise(seed, num, config.latent_dim, getattr(config, "latent_distribution", "normal"))
    if not config.conditional:
        return SampleInputs(z, None, None)
    return SampleInputs(z, np.eye(config.num_classes, dtype=np.float32)[np.arange(num) % config.num_classes], None)


def chunks(inputs: SampleInputs, size: int) -> Iterator[SampleInputs]:
    """The inputs in pieces of at most `size` samples, to generate in bounded memory."""
    for start in range(0, len(inputs.z), size):
        one_hot = None if inputs.one_hot is None else inputs.one_hot[start : start + size]
        yield SampleInputs(inputs.z[start : start + size], one_hot, None)


def real_images(data: Cached, seed: int = 0) -> np.ndarray:
    """The real images the samples are compared with: all of them, or a seeded MAX_REAL of a larger set."""
    if len(data.images) <= MAX_REAL:
        return data.images
    return data.images[np.sort(np.random.default_rng(seed).permutation(len(data.images))[:MAX_REAL])]


def score(classifier: Classifier, real: np.ndarray, fake: np.ndarray, requested: np.ndarray | None = None,
          num_classes: int = 0) -> dict:
    """FID, KID (mean, std) and, given the requested classes, each class's accuracy (when the classifier is
    trusted; else why not), of uint8 `fake` vs `real`."""
    real_features, fake_features = classifier.features(real), classifier.features(fake)
    kid, kid_std = kernel_distance(real_features, fake_features)
    result = {"fid": frechet_distance(real_features, fake_features), "kid": kid, "kid_std": kid_std}
    if requested is not None and not classifier.trusted:
        result["class_accuracy_withheld"] = (
            f"the classifier's held-out accuracy, {100 * classifier.accuracy:.1f}% on {classifier.held_out} images, "
            f"is not clearly above chance ({100 * classifier.chance:.1f}%, the commonest class's share): it cannot "
            "tell the classes apart, so its verdict on samples would mean nothing")
    elif requested is not None:
        accuracy = class_accuracy(classifier.predict(fake), requested, num_classes)
        result |= {"class_accuracy": accuracy.tolist(), "accuracy": float(np.nanmean(accuracy))}
    return result


def real_baseline(classifier: Classifier, real: np.ndarray, seed: int = 0) -> dict:
    """FID and KID between two seeded halves of the real images: what "as good as the data" reads as."""
    order = np.random.default_rng(seed).permutation(len(real))
    half = len(real) // 2
    return score(classifier, real[order[:half]], real[order[half : 2 * half]])


# ----------------------------------------------------------------------------------------------- The command


@dataclass(frozen=True)
class EvalRequest:
    """What `gan-torch eval` / `gan-keras eval` were asked for."""

    MIN_NUM = MIN_SAMPLES  # fewer samples give no KID (and no FID below 2)

    num: int = 1000  # samples to generate
    seed: int = 0  # seeds their noise
    dataset: str | None = None  # real data to compare with (None: the checkpoint's data set)
    data_dir: str | None = None  # None: the checkpoint's (its run recorded the path), for its own data set
    attribute: str | None = None  # celeba; None: the checkpoint's
    cache_dir: str | None = None
    inception: bool = False  # also the standard Inception FID (torchmetrics; downloads its weights once)
    as_json: bool = False
    alpha: str | None = None  # how pictures are read (specs/images.py); None: as the run read them
    fit: str | None = None

    def check(self) -> None:
        """RunError for a request that cannot be scored, before anything is generated."""
        if self.num < self.MIN_NUM:
            raise RunError(f"--num {self.num} is too few to score: KID compares subsets of at least 2 samples from "
                           f"each half, so eval needs --num {self.MIN_NUM} or more (scores are comparable only at "
                           "equal --num; 1000 is the usual)")


def eval_spec(meta: dict, config, request: EvalRequest) -> DatasetSpec:
    """The real data to compare with: the request's, else what the run was trained on (its data set, path,
    attribute and decoding, as its checkpoint recorded them)."""
    recorded = meta.get("data") or {}
    own = request.dataset in (None, recorded.get("dataset"))
    path = request.data_dir or (recorded.get("path") if own else None)
    if own and not request.data_dir and path and not Path(path).is_dir():
        raise RunError(f"the data this run was trained on, {path}, is not there any more; pass --data-dir")

    def choice(name: str, default: str) -> str:
        return getattr(request, name) or (recorded.get(name) if own else None) or default

    return DatasetSpec(name=request.dataset or recorded["dataset"], path=path, image_size=config.image_size,
                       channels=config.channels, attribute=choice("attribute", "Blond_Hair"), seed=recorded["seed"],
                       cache_dir=request.cache_dir, alpha=choice("alpha", "white"), fit=choice("fit", "stretch"))


def evaluate(meta: dict, config, fake: np.ndarray, inputs: SampleInputs, request: EvalRequest,
             inception: Callable[[np.ndarray, np.ndarray], float] | None = None) -> dict:
    """Score a checkpoint's uint8 samples against its data set; `inception(real, fake)` adds the Inception FID."""
    spec = eval_spec(meta, config, request)
    data = spec.load()
    if config.conditional and config.num_classes != data.num_classes:
        raise RunError(f"the model draws {config.num_classes} classes, the data set {spec.name} has {data.num_classes}")
    if len(data.images) < 2 * MIN_SAMPLES:
        raise RunError(f"the data set has {len(data.images)} images; scoring needs at least {2 * MIN_SAMPLES} (two "
                       f"halves of {MIN_SAMPLES} for the real-vs-real floor)")
    classifier, path = load_classifier(data, spec)
    real = real_images(data)
    requested = None if inputs.one_hot is None else np.argmax(inputs.one_hot, axis=1)
    result = {"model": meta["model"], "backend": meta["backend"], "epoch": meta["epoch"] + 1, "step": meta["step"],
              "dataset": spec.name, "real": len(real), "samples": len(fake), "seed": request.seed,
              "classifier": str(path), "classifier_accuracy": classifier.accuracy,
              "classifier_chance": classifier.chance, "classifier_held_out": classifier.held_out,
              "classifier_trusted": classifier.trusted, "class_names": list(data.class_names)}
    result["samples_vs_real"] = score(classifier, real, fake, requested, data.num_classes)
    result["real_vs_real"] = real_baseline(classifier, real)
    if inception is not None:
        result["samples_vs_real"]["inception_fid"] = inception(real, fake)
    return result


def report(result: dict) -> str:
    """The markdown table `eval` prints."""
    ours, base = result["samples_vs_real"], result["real_vs_real"]
    trust = "" if result["classifier_trusted"] else (
        "; NOT clearly above chance: its features tell these images apart poorly, so FID and KID say little")
    lines = [f"{result['model']} ({result['backend']}), epoch {result['epoch']}, step {result['step']}: "
             f"{result['samples']} samples (seed {result['seed']}) against {result['real']} real images of "
             f"{result['dataset']}",
             f"classifier: held-out accuracy {100 * result['classifier_accuracy']:.1f}% on "
             f"{result['classifier_held_out']} images (chance {100 * result['classifier_chance']:.1f}%){trust}, "
             f"{result['classifier']}", "",
             "| metric | samples vs real | real vs real (two halves) |", "|---|---:|---:|",
             f"| FID (classifier features) | {ours['fid']:.3f} | {base['fid']:.3f} |",
             f"| KID x 1000 | {1e3 * ours['kid']:.3f} ± {1e3 * ours['kid_std']:.3f} | "
             f"{1e3 * base['kid']:.3f} ± {1e3 * base['kid_std']:.3f} |"]
    if "inception_fid" in ours:
        lines.append(f"| FID (Inception, torchmetrics) | {ours['inception_fid']:.3f} | |")
    if "accuracy" in ours:
        lines.append(f"| class accuracy (mean) | {100 * ours['accuracy']:.1f}% | |")
        per_class = ", ".join(f"{name} {100 * value:.0f}%"
                              for name, value in zip(result["class_names"], ours["class_accuracy"]))
        lines.append(f"| class accuracy (each) | {per_class} | |")
    if "class_accuracy_withheld" in ours:
        lines.append(f"| class accuracy | not shown: {ours['class_accuracy_withheld']} | |")
    return "\n".join(lines)
