"""A conditional VAE on MNIST (seed 003's exercise 3): ask for a digit, get that digit.

    python -m experiments.cvae_mnist                   # seed002's VAE + one-hot labels, latent 8, 50 epochs
    python -m experiments.cvae_mnist --digit 7         # also digit_7.png, 64 samples of a 7
    python -m experiments.cvae_mnist --latent-dim 20   # z also carries the class: fewer samples are the digit asked

The one-hot label y is concatenated to the encoder's input, q(z | x, y), and to the
decoder's, p(x | z, y); the prior is N(0, I). On threshold-binarized pixels the test
-ELBO and IWAE bound are of the conditional likelihood log p(x | y). The library's evaluator scores the
samples: the share of them its digit classifier assigns to the digit asked for
(class accuracy), FID and the rest (the classifier is trained and cached on first use;
--no-score skips the scores).

Writes into --out: metrics.json (last), history.csv, samples.npy (N x 28 x 28 in
[0, 1], the decoder means, the digits in turn) with sample_labels.npy (the digit asked for),
samples_binary.npy (their Bernoulli draws: the samples scored, against binarized references),
grid.png (rows: digit, columns: z), class_interpolation.png (one z, the label
moving from one digit to the next), elbo.png, checkpoints/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from genjax.presets import CVAE_PRESETS
from genjax.runs import run
from genjax.studies import conditional

parser, experiment = conditional.cli_script(__doc__, "python -m experiments.cvae_mnist", Path("runs/cvae_mnist"),
                                            CVAE_PRESETS, "cvae")


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
