"""GANs on MNIST: seed 000's MLP GAN and a DCGAN, trained and scored by the library's evaluator.

    python -m experiments.gan_mnist                          # seed 000's MLP GAN, 10 epochs, runs/gan_mnist
    python -m experiments.gan_mnist --preset dcgan --out runs/dcgan
    python -m experiments.gan_mnist --d-grad-leak --out runs/gan_as_written   # the seed's loop as written

Its samples are scored by the evaluator's digit classifier (trained and cached on
first use; --no-score skips it). One jitted step alternates a D update and a G update (non-saturating G
loss by default; --g-loss saturating for the minimax one). Pixels are x/255 in
[0, 1], as the seed's ToTensor. Writes into --out: metrics.json (last; the
sample scores at its top level under the keys of `score_samples --json`, and
per-epoch D and G losses, D(x) and D(G(z)) means), history.csv, samples.npy
(N x 28 x 28 in [0, 1]), samples.png (8x8), interpolation.png, losses.png,
d_outputs.png and checkpoints/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from genjax.presets import GAN_PRESETS as PRESETS
from genjax.recipes import gan as gan_recipe
from genjax.runs import run

parser, experiment = gan_recipe.cli_script(__doc__, "python -m experiments.gan_mnist", Path("runs/gan_mnist"),
                                           PRESETS, "seed000")


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
