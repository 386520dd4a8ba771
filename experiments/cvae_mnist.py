"""A conditional VAE on MNIST (seed 003's exercise 3): ask for a digit, get that digit.

    python -m experiments.cvae_mnist                   # seed002's VAE + one-hot labels, latent 8, 50 epochs
    python -m experiments.cvae_mnist --digit 7         # also digit_7.png, 64 samples of a 7
    python -m experiments.cvae_mnist --latent-dim 20   # z then also carries the class: fewer samples are the digit asked for

The one-hot label y is concatenated to the encoder's input, q(z | x, y), and to the
decoder's, p(x | z, y); the prior is N(0, I). On threshold-binarized pixels the test
-ELBO and IWAE bound are of the conditional likelihood log p(x | y). The library's evaluator scores the
samples: the share of them its digit classifier assigns to the digit asked for
(class accuracy), FID and the rest (the classifier is trained and cached on first use;
--no-score skips the scores).

Writes into --out: metrics.json (last), history.csv, samples.npy (N x 28 x 28 in
[0, 1], N / 10 of each digit) with sample_labels.npy (the digit asked for),
grid.png (rows: digit, columns: z), class_interpolation.png (one z, the label
moving from one digit to the next), elbo.png, checkpoints/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genjax import prng
from genjax.evaluation import plots
from genjax.evaluation import scorer as scoring
from genjax.objectives import vae
from genjax.presets import CVAE_PRESETS
from genjax.recipes import vae as vae_recipe
from genjax.runs import run

parser = run.parser(__doc__, "python -m experiments.cvae_mnist", Path("runs/cvae_mnist"), CVAE_PRESETS, "cvae")
vae_recipe.add_flags(parser, CVAE_PRESETS)
parser.add_argument("--digit", type=int, choices=range(10), help="also draw 64 samples of this digit")
scoring.add_flags(parser)


def score_and_draw(recipe: vae_recipe.VAE, train, test, metrics: dict, r: run.Run, scorer: scoring.Scorer | None,
                   digit: int | None) -> None:
    """Samples of each digit in equal numbers, scored (does the classifier see the digit asked
    for?), and the conditional pictures: grid.png, class_interpolation.png, digit_D.png."""
    c, classes = recipe.config, recipe.config.num_classes
    k_samples, k_grid, k_digit = jax.random.split(recipe.keys()["draw"], 3)
    labels = np.repeat(np.arange(classes), max(1, c.num_samples // classes)).astype(np.int32)
    samples = recipe.sample(len(labels), k_samples, labels)[..., 0]
    if scorer is not None:
        scores, probs = scorer.with_reference(train.images, test.images).score_with_probabilities(samples)
        hits = probs.argmax(axis=1) == labels
        metrics.update({**scores, "class_accuracy": float(hits.mean()),
                        "class_accuracy_per_digit": [float(hits[labels == d].mean()) for d in range(classes)]})
    if not r.writes_files:
        return
    np.save(r.out / "samples.npy", samples.astype(np.float32))
    np.save(r.out / "sample_labels.npy", labels)
    z = np.asarray(prng.normal(k_grid, (classes, c.latent_dim)))  # column j: the same z_j for every digit
    grid = recipe.decode(np.tile(z, (classes, 1)), np.repeat(np.arange(classes), classes))
    plots.save_grid(r.out / "grid.png", grid[..., 0], classes, classes,
                    "rows: the digit asked for; columns: one z each")
    t = np.linspace(0.0, 1.0, 10, dtype=np.float32)[:, None]
    cond = np.concatenate([(1 - t) * np.eye(classes)[d] + t * np.eye(classes)[(d + 1) % classes]
                           for d in range(classes)])
    s = recipe.state
    steps = vae.decode_means(recipe.model, s.params, jnp.broadcast_to(jnp.asarray(z[:1]), (len(cond), c.latent_dim)),
                             jnp.asarray(cond), s.model_state)
    plots.save_grid(r.out / "class_interpolation.png", np.asarray(steps).reshape(-1, 28, 28), classes, 10,
                    "one z; the label moves from digit d (left) to d + 1 (right)")
    if digit is not None:
        mine = recipe.sample(64, k_digit, np.full(64, digit))
        plots.save_grid(r.out / f"digit_{digit}.png", mine[..., 0], 8, 8, f"64 samples of the digit {digit}")


def experiment(args) -> dict:
    scorer = scoring.from_args(args, args.data_dir)  # before anything is written: it scores the samples
    return vae_recipe.cli_run(args, CVAE_PRESETS, after=lambda *a: score_and_draw(*a, scorer=scorer, digit=args.digit))


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
