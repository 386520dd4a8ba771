"""The evaluator as one object: the digit classifier and the real-MNIST reference, loaded once,
scoring any number of sample sets the same way (:mod:`genjax.evaluation.evaluator`).

    scorer = genjax.Scorer()                      # the cached classifier; MNIST train and test
    scorer.score(vae.sample(10_000, key=0))       # {"fid": ..., "precision": ..., ...}
    scorer.score(pixelrnn_samples, pixels="threshold")   # a binary model: against binarized digits
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genjax import data
from genjax.evaluation import classifier, evaluator


class Scorer:
    """Scores MNIST-sized samples (N x 28 x 28 [x 1] in [0, 1]) against real MNIST: FID, class
    entropy, classifier score, precision/recall and memorization (see :mod:`genjax.evaluation.evaluator`).

    ``classifier_dir``: the trained classifier (default: the cache, see :mod:`genjax.evaluation.classifier`),
    loaded and checked at once; trained there first when there is none (``train_if_missing``).
    ``train_images``/``test_images`` (uint8): the reference sets
    (default: MNIST from ``data_dir``), whose features are computed on the first score in each pixel
    model (``pixels``: ``float`` for greyscale generators, ``threshold`` or ``stochastic`` for
    binary ones, as they were trained; see :func:`genjax.evaluation.evaluator.reference_set`)."""

    def __init__(self, classifier_dir: str | Path | None = None, train_images: np.ndarray | None = None,
                 test_images: np.ndarray | None = None, data_dir: str | Path | None = None,
                 train_if_missing: bool = True):
        if train_if_missing:
            self.params, self.classifier_info = classifier.load_or_train(classifier_dir, data_dir)
        else:
            self.params, self.classifier_info = classifier.load(classifier_dir)
        self._images = (train_images, test_images)
        self._data_dir = data_dir
        self._references: dict[str, evaluator.Reference] = {}

    def with_reference(self, train_images: np.ndarray, test_images: np.ndarray) -> Scorer:
        """The same classifier against other reference images (uint8 train and test sets)."""
        other = object.__new__(Scorer)
        other.params, other.classifier_info = self.params, self.classifier_info
        other._images, other._data_dir, other._references = (train_images, test_images), self._data_dir, {}
        return other

    def _reference_images(self) -> tuple[np.ndarray, np.ndarray]:
        """(train, test) uint8 images: those given, else MNIST's (loaded once)."""
        train_images, test_images = self._images
        if train_images is None or test_images is None:
            train, test = data.load_dataset("mnist", self._data_dir)
            train_images = train.images if train_images is None else train_images
            test_images = test.images if test_images is None else test_images
            self._images = (train_images, test_images)
        return np.asarray(train_images), np.asarray(test_images)

    def reference_for(self, pixels: str = "float") -> evaluator.Reference:
        """The reference features of the real images in pixel model ``pixels`` (one of
        :data:`genjax.data.UNIT_PIXEL_MODES`), computed on first use and kept."""
        evaluator.check_pixels(pixels)
        if pixels not in self._references:
            self._references[pixels] = evaluator.reference_set(self.params, *self._reference_images(), pixels=pixels)
        return self._references[pixels]

    @property
    def reference(self) -> evaluator.Reference:
        """The greyscale (``float``) reference: :meth:`reference_for` ``("float")``."""
        return self.reference_for("float")

    def score(self, samples, pixels: str = "float") -> dict:
        """Every measure of ``samples`` against the reference in ``pixels`` (``n``: their count;
        ``reference_pixels``: which binarization the real images went through)."""
        return evaluator.score(samples, self.params, self.reference_for(pixels))

    def score_with_probabilities(self, samples, pixels: str = "float") -> tuple[dict, np.ndarray]:
        """(:meth:`score`, p(y | x) (N, 10) of each sample): for class-conditional checks."""
        reference = self.reference_for(pixels)  # an unknown ``pixels`` refused before any work
        logits, feats = evaluator.features(self.params, samples)
        probs = evaluator.probabilities(logits)
        return evaluator.score_features(probs, feats, reference), probs


def add_flags(p) -> None:
    """``--classifier-dir`` and ``--no-score`` (``args.score``), for every script that scores samples."""
    classifier.add_dir_flag(p)
    p.add_argument("--no-score", dest="score", action="store_false",
                   help="skip the evaluator's sample scores (no classifier needed)")


def from_args(args, data_dir=None) -> Scorer | None:
    """The scorer a script's flags ask for (None with ``--no-score``): its classifier loaded, or
    trained and cached on first use, before the run writes anything."""
    return Scorer(args.classifier_dir, data_dir=data_dir) if args.score else None


__all__ = ["Scorer", "add_flags", "from_args"]
