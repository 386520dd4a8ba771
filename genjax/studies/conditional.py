"""The conditional VAE's study (``python -m experiments.cvae_mnist``): the VAE recipe's run, then
samples of each digit in equal numbers scored by the evaluator (does the classifier see the digit
asked for?) and the conditional pictures."""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genjax import prng
from genjax.evaluation import plots
from genjax.evaluation import scorer as scoring
from genjax.objectives import vae
from genjax.recipes import vae as vae_recipe
from genjax.runs import run


def add_flags(parser: argparse.ArgumentParser, presets: dict) -> None:
    """The VAE's flags, ``--digit`` and the scorer's."""
    vae_recipe.add_flags(parser, presets)
    parser.add_argument("--digit", type=int, choices=range(10), help="also draw 64 samples of this digit")
    scoring.add_flags(parser)


def score_and_draw(recipe: vae_recipe.VAE, train, test, metrics: dict, r: run.Run, scorer: scoring.Scorer | None,
                   digit: int | None) -> None:
    """The samples the run saved (the classes in turn, as equally often as ``num_samples`` allows; a
    binary-pixel model's Bernoulli draws, samples_binary.npy), scored against references in the
    model's pixel model (``class_accuracy``: the share the classifier assigns to the digit asked
    for), and the conditional pictures: grid.png, class_interpolation.png, digit_D.png."""
    c, classes = recipe.config, recipe.config.num_classes
    _, k_grid, k_digit = jax.random.split(recipe.keys()["draw"], 3)
    if scorer is not None:
        samples, pixels, labels = recipe.scored_run_samples()
        scores, probs = scorer.with_reference(train.images, test.images).score_with_probabilities(samples, pixels)
        hits = probs.argmax(axis=1) == labels
        per_digit = [float(hits[labels == d].mean()) if (labels == d).any() else None for d in range(classes)]
        metrics.update({**scores, "class_accuracy": float(hits.mean()), "class_accuracy_per_digit": per_digit})
    if not r.writes_files:
        return
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


def cli_run(args: argparse.Namespace, presets: dict) -> dict:
    """The whole run of ``python -m experiments.cvae_mnist``: the scorer first (nothing is written
    before it loads), then the VAE recipe's run with :func:`score_and_draw` before metrics.json."""
    scorer = scoring.from_args(args, args.data_dir)
    return vae_recipe.cli_run(args, presets, after=lambda *a: score_and_draw(*a, scorer=scorer, digit=args.digit))


def cli_script(doc: str, prog: str, default_out: Path, presets: dict, default_preset: str):
    """(parser, experiment) of the conditional VAE's script."""
    parser = run.parser(doc, prog, default_out, presets, default_preset)
    add_flags(parser, presets)
    return parser, lambda args: cli_run(args, presets)


__all__ = ["add_flags", "cli_run", "cli_script", "score_and_draw"]
