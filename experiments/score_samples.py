"""Score MNIST samples: FID, class entropy, classifier score, precision/recall, memorization.

    python -m experiments.score_samples runs/vae_mnist/samples.npy runs/gan/samples.npy
    python -m experiments.score_samples runs/*/samples.npy --json     # one JSON object per file
    python -m experiments.score_samples runs/pixelrnn/samples.npy --pixels threshold   # a binary model

Each FILE is a .npy array of N x 28 x 28 (or N x 28 x 28 x 1, or N x 784) images
with values in [0, 1]. Everything is measured in the feature space of the digit
classifier trained by `python -m experiments.mnist_classifier` (see
genjax/evaluation/evaluator.py for the definitions): FID, precision and recall against the
10,000 MNIST test images, memorization against the 60,000 training images.
The real images are put in the pixel model the generator was trained on
(--pixels: float x/255 for greyscale models, threshold or stochastic for binary
ones, such as the PixelRNN), so a binary model is not charged for binarizing.
The table starts with three reference rows in the same pixels: 10,000 training
images against the test set (a perfect generator's floor; memorization against
the 50,000 training images not picked, about 1), one half of the test set
against the other (5,000 each) and 10,000 uniform-noise images (a ceiling).
FID needs N >= 10,000 for a headline number.
"""

from __future__ import annotations

import sys

from genjax.evaluation import score_files
from genjax.runs import cli

parser, main = score_files.cli_script(__doc__, "python -m experiments.score_samples")


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
