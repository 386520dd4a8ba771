"""Sample quality of MNIST generators, measured in the feature space of a trained digit classifier.

Every measure compares a set of samples with real MNIST through the
:class:`~genjax.models.digit_cnn.DigitCNN` of :mod:`genjax.evaluation.classifier`: its
128-unit feature layer (FID, precision/recall, memorization) and its class
probabilities p(y|x) (class entropy, classifier score). The statistics are
NumPy/SciPy in float64 on the host; the pairwise distances (10,000 x 60,000)
are jitted JAX, a block of rows at a time.

The real images are turned into pixels the way the scored model saw them in training
(``pixels``, one of :data:`genjax.data.UNIT_PIXEL_MODES`): ``float`` x/255 for greyscale
models, ``threshold`` 1[x/255 > 0.5] or ``stochastic`` Bernoulli(x/255) (one fixed draw:
key 0 for the test images, as :func:`genjax.data.fixed_eval_pixels`, key 1 for the
training images) for binary ones, such as the PixelRNN. A binary model scored against
greyscale digits would be charged for the binarization itself.

* **FID** against the 10,000 test images (Heusel et al. 2017, with DigitCNN
  features in place of Inception's). It is biased upward for small N: use
  N >= 10,000 for a headline number.
* **class entropy** H(mean_x p(y|x)): ln 10 = 2.303 when every digit is as likely.
* **classifier score** exp(E_x KL(p(y|x) || p(y))) (the Inception score's
  analogue): 10 at best (confident and balanced), 1 at worst.
* **precision / recall** (Kynkäänniemi et al. 2019, k = 3) against the test
  features: the share of samples on the real manifold, and of real images on
  the samples' manifold. Precision trusts the real set's outliers: their wide
  k-NN balls can hold a tight cluster of bad samples (uniform noise scores
  precision 0.6, almost all of it inside four outlying test digits' balls), so
  read it beside FID and recall.
* **memorization**: the median distance from a sample to its nearest training
  image over the median distance from a test image to its nearest training
  image; well below 1 suggests the generator copies training images.

:func:`reference_rows` gives the floors a sample set is read against, measured at the
same N and in the same pixels: N real training images against the test set (their
memorization against the training images not picked), one half of the test set against
the other half, and N uniform-noise images (a ceiling).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.special

from genjax import data
from genjax.devices import map_in_chunks
from genjax.errors import UsageError
from genjax.evaluation import classifier

K_NEIGHBOURS = 3
MIN_SAMPLES = K_NEIGHBOURS + 1  # precision/recall need each sample's k-th nearest other sample
FID_MIN_SAMPLES = 10_000
REFERENCE_ROWS = 10_000  # images in each reference row (training images, test half, uniform noise)
STOCHASTIC_SEEDS = {"test": 0, "train": 1}  # the fixed Bernoulli draws of a "stochastic" reference
ROUNDING = 1e-5  # relative slack of a float32 squared distance, ||a - b||^2 vs ||a||^2 + ||b||^2
BLOCK_ENTRIES = 2**24  # distances held at once by the pairwise kernels (64 MiB of float32)
SHAPES = "N x 28 x 28 (or N x 28 x 28 x 1, or N x 784)"


# -- input --------------------------------------------------------------------------------------

def as_images(samples, name: str = "samples") -> np.ndarray:
    """``samples`` as float32 (N, 28, 28, 1), after checking it is N >= 4 MNIST-sized
    images with values in [0, 1]; otherwise a UsageError naming the fix."""
    x = np.asarray(samples)
    if x.dtype == bool:
        x = x.astype(np.float32)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise UsageError(f"{name}: dtype {x.dtype}, expected real numbers in [0, 1]; save the images as float32")
    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(-1, 28, 28)
    if x.ndim == 3 and x.shape[1:] == (28, 28):
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != (28, 28, 1):
        raise UsageError(f"{name}: shape {x.shape}, expected {SHAPES} MNIST-sized images")
    if len(x) < MIN_SAMPLES:
        raise UsageError(f"{name}: {len(x)} image(s), at least {MIN_SAMPLES} are needed (precision/recall take each "
                         f"sample's k-th nearest neighbour, k = {K_NEIGHBOURS}); sample {FID_MIN_SAMPLES} or more")
    if not np.all(np.isfinite(x)):
        raise UsageError(f"{name}: holds NaN or infinite values; save finite pixel values in [0, 1]")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 1:
        hint = " (uint8 pixels? divide them by 255)" if high > 1 and high <= 255 and low >= 0 else ""
        raise UsageError(f"{name}: values in [{low:g}, {high:g}], expected [0, 1]{hint}")
    return x.astype(np.float32)


def load_samples(path) -> np.ndarray:
    """A ``samples.npy`` file as checked float32 (N, 28, 28, 1) images (see :func:`as_images`)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file; pass the samples.npy an experiment wrote")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UsageError(f"{path}: not a NumPy .npy array ({e}); save samples with np.save")
    if not isinstance(x, np.ndarray):  # an .npz archive
        x.close()
        raise UsageError(f"{path}: an .npz archive, expected one .npy array of {SHAPES} images")
    return as_images(x, str(path))


def features(params, images) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, 10), features (N, 128)) of checked ``images`` in [0, 1] under the classifier."""
    logits, feats = classifier.apply(params, jnp.asarray(as_images(images)))
    return np.asarray(logits), np.asarray(feats)


def probabilities(logits) -> np.ndarray:
    """p(y|x) = softmax(logits), in float64."""
    return scipy.special.softmax(np.asarray(logits, np.float64), axis=-1)


# -- FID ----------------------------------------------------------------------------------------

def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    """S^{1/2} of a symmetric PSD matrix, by eigendecomposition with eigenvalues clipped at 0."""
    w, v = scipy.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, s1, mu2, s2) -> float:
    """Fréchet distance between N(mu1, S1) and N(mu2, S2):

        d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}),

    with tr (S1 S2)^{1/2} = tr (S1^{1/2} S2 S1^{1/2})^{1/2} (the same eigenvalues), computed
    through two symmetric eigendecompositions, eigenvalues clipped at 0, in float64;
    the result is clipped at 0 (it is a squared distance)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(s1, np.float64), np.asarray(s2, np.float64)
    r = _sqrt_psd(s1)
    m = r @ s2 @ r
    cross = np.sum(np.sqrt(np.clip(scipy.linalg.eigvalsh((m + m.T) / 2), 0, None)))
    return max(0.0, float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * cross))


def gaussian_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance with ddof=1) of the rows of ``feats``, in float64."""
    f = np.asarray(feats, np.float64)
    return f.mean(0), np.cov(f, rowvar=False, ddof=1)


def fid(feat_a, feat_b) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets (see :func:`frechet_distance`)."""
    return frechet_distance(*gaussian_stats(feat_a), *gaussian_stats(feat_b))


# -- class statistics ---------------------------------------------------------------------------

def class_entropy(probs) -> float:
    """H(p(y)) = -sum_y p(y) ln p(y) of the mean predicted distribution p(y) = mean_x p(y|x), in nats."""
    p_y = np.asarray(probs, np.float64).mean(0)
    return float(-np.sum(scipy.special.xlogy(p_y, p_y)))


def class_shares(probs) -> np.ndarray:
    """The share of images whose most probable class is each digit: count(argmax_y p(y|x) = d) / N."""
    probs = np.asarray(probs)
    return np.bincount(np.argmax(probs, -1), minlength=probs.shape[-1]) / len(probs)


def classifier_score(probs) -> float:
    """exp(E_x KL(p(y|x) || p(y))) with p(y) = mean_x p(y|x): the Inception score's analogue."""
    probs = np.asarray(probs, np.float64)
    kl = np.sum(scipy.special.rel_entr(probs, probs.mean(0)), axis=-1)
    return float(np.exp(kl.mean()))


# -- distances in feature space (jitted, a block of rows at a time) -----------------------------

def _block(points: int) -> int:
    return max(1, BLOCK_ENTRIES // max(points, 1))


def _sq_distances(a, b, b_sq):
    """||a_i - b_j||^2 = ||a_i||^2 + ||b_j||^2 - 2 a_i . b_j, clipped at 0."""
    ab = jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)
    return jnp.maximum(jnp.sum(a * a, -1)[:, None] + b_sq[None, :] - 2 * ab, 0.0)


def _first_argmin(d):
    """Index of each row's smallest entry (the first, on ties): a min and a masked min,
    several times faster on XLA:CPU than ``argmin`` (a two-operand reduction)."""
    columns = jnp.arange(d.shape[-1])
    return jnp.min(jnp.where(d <= jnp.min(d, -1, keepdims=True), columns, d.shape[-1]), -1)


def _kth_smallest(d, k: int):
    """Each row's k-th smallest entry, counting from 0: k times remove the smallest (one
    entry, so ties count separately), then take the minimum. On XLA:CPU about 15x faster
    than ``lax.top_k`` for k = 3 and rows of 10,000."""
    columns = jnp.arange(d.shape[-1])
    for _ in range(k):
        d = jnp.where(columns == _first_argmin(d)[:, None], jnp.inf, d)
    return jnp.min(d, -1)


@partial(jax.jit, static_argnames=("k", "block"))
def _kth_neighbour_sq(points, k: int, block: int):
    centred = points - jnp.mean(points, 0)  # smaller norms, less cancellation in float32
    sq = jnp.sum(centred * centred, -1)
    # The k-th nearest other point is the k-th smallest distance after the point itself (index 0).
    return map_in_chunks(lambda a: _kth_smallest(_sq_distances(a, centred, sq), k), centred, block)


def kth_neighbour_distance(points, k: int = K_NEIGHBOURS) -> np.ndarray:
    """r_i = the distance from row i to its k-th nearest other row (the row itself excluded)."""
    points = jnp.asarray(points, jnp.float32)
    if len(points) <= k:
        raise UsageError(f"{len(points)} points: the {k}-th nearest neighbour needs at least {k + 1}")
    return np.sqrt(np.asarray(_kth_neighbour_sq(points, k, _block(len(points)))))


@partial(jax.jit, static_argnames="block")
def _nearest(queries, points, block: int):
    centre = jnp.mean(points, 0)
    q, p = queries - centre, points - centre
    sq = jnp.sum(p * p, -1)
    index = map_in_chunks(lambda a: _first_argmin(_sq_distances(a, p, sq)), q, block)
    return jnp.sqrt(jnp.sum((q - p[index]) ** 2, -1))  # exact at the nearest point: 0 for a copy


def nearest_distance(queries, points) -> np.ndarray:
    """d_i = min_j ||q_i - p_j||: each query's distance to its nearest point."""
    points = jnp.asarray(points, jnp.float32)
    return np.asarray(_nearest(jnp.asarray(queries, jnp.float32), points, _block(len(points))))


@partial(jax.jit, static_argnames="block")
def _inside_any_ball(queries, centres, radii, block: int):
    centre = jnp.mean(centres, 0)
    c = centres - centre
    sq, r_sq = jnp.sum(c * c, -1), radii * radii

    def rows(a):
        slack = ROUNDING * (jnp.sum(a * a, -1)[:, None] + sq[None, :])  # float32 rounding of the distance
        return jnp.any(_sq_distances(a, c, sq) <= r_sq[None, :] + slack, -1)

    return map_in_chunks(rows, queries - centre, block)


def inside_any_ball(queries, centres, radii) -> np.ndarray:
    """1[exists j: ||q_i - c_j|| <= r_j]: whether each query lies in the union of the balls
    (up to float32 rounding: a point always lies in its own ball, even of radius 0)."""
    centres = jnp.asarray(centres, jnp.float32)
    return np.asarray(_inside_any_ball(jnp.asarray(queries, jnp.float32), centres,
                                       jnp.asarray(radii, jnp.float32), _block(len(centres))))


# -- precision / recall and memorization --------------------------------------------------------

def precision_recall(real_feat, fake_feat, k: int = K_NEIGHBOURS, real_radii=None) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019). With r(x) the distance from
    x to its k-th nearest neighbour within its own set,

        precision = mean_{fake f} 1[exists real x: ||f - x|| <= r(x)],
        recall    = mean_{real x} 1[exists fake f: ||x - f|| <= r(f)].

    ``real_radii`` may pass r over the real set, computed once (see :class:`Reference`)."""
    if real_radii is None:
        real_radii = kth_neighbour_distance(real_feat, k)
    fake_radii = kth_neighbour_distance(fake_feat, k)
    precision = inside_any_ball(fake_feat, real_feat, real_radii).mean()
    recall = inside_any_ball(real_feat, fake_feat, fake_radii).mean()
    return float(precision), float(recall)


def memorization_stats(sample_nn, test_nn) -> dict:
    """From each sample's distance to its nearest training image (``sample_nn``) and each
    test image's (``test_nn``): their medians, ``memorization_ratio`` = median(sample_nn) /
    median(test_nn), and ``copy_share`` = mean 1[sample_nn < 1st percentile of test_nn]."""
    sample_median, test_median = float(np.median(sample_nn)), float(np.median(test_nn))
    return {"memorization_ratio": sample_median / test_median,
            "nn_train_distance_median": sample_median,
            "test_nn_train_distance_median": test_median,
            "copy_share": float(np.mean(np.asarray(sample_nn) < np.percentile(test_nn, 1)))}


def memorization(sample_feat, train_feat, test_feat) -> dict:
    """:func:`memorization_stats` of samples against the training set, with the test set as the yardstick."""
    return memorization_stats(nearest_distance(sample_feat, train_feat), nearest_distance(test_feat, train_feat))


# -- scoring a file against a reference built once ----------------------------------------------

@dataclasses.dataclass(frozen=True)
class Reference:
    """What every score compares with, computed once by :func:`reference_set`."""

    test_features: np.ndarray  # (N_test, 128)
    test_probs: np.ndarray  # (N_test, 10) float64
    test_mu: np.ndarray  # float64 mean and covariance of the test features (FID)
    test_sigma: np.ndarray
    test_radii: np.ndarray  # k-th nearest neighbour distance within the test features (precision)
    train_features: np.ndarray  # (N_train, 128)
    train_probs: np.ndarray
    test_train_nn: np.ndarray  # each test image's distance to its nearest training image
    k: int = K_NEIGHBOURS
    pixels: str = "float"  # how the uint8 images became [0, 1] pixels (genjax.data.UNIT_PIXEL_MODES)


def check_pixels(mode: str) -> str:
    """``mode`` if it is one of :data:`genjax.data.UNIT_PIXEL_MODES`, else a UsageError naming them."""
    if mode not in data.UNIT_PIXEL_MODES:
        raise UsageError(f"unknown pixels {mode!r}: choose one of {', '.join(data.UNIT_PIXEL_MODES)} "
                         f"(the pixel model the samples' generator was trained on)")
    return mode


def unit_pixels(images: np.ndarray, mode: str = "float", seed: int = 0) -> np.ndarray:
    """uint8 images -> float32 pixels in [0, 1] by ``mode`` (:func:`genjax.data.to_pixels`):
    x/255, 1[x/255 > 0.5], or one Bernoulli(x/255) draw with key ``seed`` (the same ``seed``,
    the same draw)."""
    x = data.to_pixels(jnp.asarray(images), check_pixels(mode), jax.random.key(seed))
    return np.asarray(x, np.float32)


def reference_set(params, train_images: np.ndarray, test_images: np.ndarray, k: int = K_NEIGHBOURS,
                  pixels: str = "float") -> Reference:
    """The :class:`Reference` of uint8 MNIST ``train_images`` and ``test_images``, turned into
    [0, 1] pixels by ``pixels`` (``stochastic``: the fixed draws of ``STOCHASTIC_SEEDS``)."""
    test_logits, test_feat = features(params, unit_pixels(test_images, pixels, STOCHASTIC_SEEDS["test"]))
    train_logits, train_feat = features(params, unit_pixels(train_images, pixels, STOCHASTIC_SEEDS["train"]))
    mu, sigma = gaussian_stats(test_feat)
    return Reference(test_feat, probabilities(test_logits), mu, sigma, kth_neighbour_distance(test_feat, k),
                     train_feat, probabilities(train_logits), nearest_distance(test_feat, train_feat), k, pixels)


def with_test_subset(reference: Reference, keep: np.ndarray) -> Reference:
    """``reference`` with only the test images ``keep`` (indices): their Gaussian and k-NN radii recomputed."""
    feats = reference.test_features[keep]
    mu, sigma = gaussian_stats(feats)
    return dataclasses.replace(reference, test_features=feats, test_probs=reference.test_probs[keep], test_mu=mu,
                               test_sigma=sigma, test_radii=kth_neighbour_distance(feats, reference.k),
                               test_train_nn=reference.test_train_nn[keep])


def with_train_subset(reference: Reference, keep: np.ndarray) -> Reference:
    """``reference`` with only the training images ``keep`` (indices): the test images' nearest
    distances recomputed against them, so a memorization ratio compares like with like."""
    feats = reference.train_features[keep]
    return dataclasses.replace(reference, train_features=feats, train_probs=reference.train_probs[keep],
                               test_train_nn=nearest_distance(reference.test_features, feats))


def score_features(probs, feats, reference: Reference, train_nn=None) -> dict:
    """Every measure of one sample set from its class probabilities and features (see the
    module docstring). ``train_nn`` may pass the samples' nearest-training-image distances."""
    n = len(feats)
    precision, recall = precision_recall(reference.test_features, feats, reference.k, reference.test_radii)
    if train_nn is None:
        train_nn = nearest_distance(feats, reference.train_features)
    note = None
    if n < FID_MIN_SAMPLES:
        note = f"N = {n} < {FID_MIN_SAMPLES}: FID is biased upward for small N; score >= {FID_MIN_SAMPLES} samples"
    return {"n": n, "fid": frechet_distance(*gaussian_stats(feats), reference.test_mu, reference.test_sigma),
            "class_entropy": class_entropy(probs), "classifier_score": classifier_score(probs),
            "precision": precision, "recall": recall, "class_shares": class_shares(probs).tolist(),
            **memorization_stats(train_nn, reference.test_train_nn), "note": note,
            "reference_pixels": data.BINARIZATION[reference.pixels]}


def score(samples, params, reference: Reference) -> dict:
    """Every measure of ``samples`` (N x 28 x 28 in [0, 1], see :func:`as_images`) against ``reference``."""
    logits, feats = features(params, samples)
    return score_features(probabilities(logits), feats, reference)


def noise_images(rng: np.random.Generator, n: int, mode: str = "float") -> np.ndarray:
    """``n`` images of independent pixels, uniform over the values of ``mode``: U[0, 1] for
    ``float``, fair coin flips in {0, 1} for the binary modes."""
    u = rng.uniform(size=(n, 28, 28)).astype(np.float32)
    return u if check_pixels(mode) == "float" else (u < 0.5).astype(np.float32)


def reference_rows(params, reference: Reference, seed: int = 0, n: int = REFERENCE_ROWS) -> list[tuple[str, dict]]:
    """The floors printed with every score, in the reference's pixels, each a measurement that could fail:

    * ``m = min(n, N_train / 2)`` training images picked at random (a perfect generator's level) against
      the test set; their memorization against the N_train - m training images not picked, with the
      test images' nearest distances to the same images as the yardstick (about 1, not 0);
    * one random half of the test set (``min(n, N_test / 2)`` images) against a reference built from the
      other test images; memorization against the whole training set, the other test images as the yardstick;
    * ``n`` noise images (:func:`noise_images`): a ceiling, not a floor."""
    rng = np.random.default_rng(seed)
    n_train, n_test = len(reference.train_features), len(reference.test_features)
    order = rng.permutation(n_train)
    pick, rest = order[:min(n, n_train // 2)], order[min(n, n_train // 2):]
    train_row = score_features(reference.train_probs[pick], reference.train_features[pick],
                               with_train_subset(reference, rest))
    halves = rng.permutation(n_test)
    half = min(n, n_test // 2)
    scored, other = halves[:half], halves[half:]
    test_row = score_features(reference.test_probs[scored], reference.test_features[scored],
                              with_test_subset(reference, other), reference.test_train_nn[scored])
    noise_row = score(noise_images(rng, n, reference.pixels), params, reference)
    return [(f"floor: {len(pick)} train vs test", train_row),
            (f"floor: test half vs other half ({half})" if len(other) == half
             else f"floor: {half} test vs the other {len(other)}", test_row),
            (f"reference: {n} uniform noise", noise_row)]


COLUMNS = (("n", "n", "d"), ("fid", "fid", ".3f"), ("class_entropy", "class entropy", ".3f"),
           ("classifier_score", "score", ".3f"), ("precision", "precision", ".3f"), ("recall", "recall", ".3f"),
           ("memorization_ratio", "memorization ratio", ".3f"))


def format_table(rows: list[tuple[str, dict]]) -> str:
    """One aligned text table: a row per (name, score), the columns of ``COLUMNS``."""
    header = ["file", *(title for _, title, _ in COLUMNS)]
    body = [[name, *(format(s[key], fmt) for key, _, fmt in COLUMNS)] for name, s in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *body]]
    return "\n".join(lines)
