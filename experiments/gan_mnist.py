"""GANs on MNIST: seed 000's MLP GAN and a DCGAN, trained and scored by the library's evaluator.

    python -m experiments.gan_mnist                          # seed 000's MLP GAN, 10 epochs, runs/gan_mnist
    python -m experiments.gan_mnist --preset dcgan --out runs/dcgan
    python -m experiments.gan_mnist --d-grad-leak --out runs/gan_as_written   # the seed's loop as written

Needs the evaluator's digit classifier (`python -m experiments.mnist_classifier`,
once). One jitted step alternates a D update and a G update (non-saturating G
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

import jax
import jax.numpy as jnp
import numpy as np

from genjax import data, prng
from genjax.evaluation import plots
from genjax.evaluation import scorer as scoring
from genjax.models.dcgan import DISCRIMINATOR_NORMS
from genjax.objectives import gan, latent
from genjax.presets import GAN_PRESETS as PRESETS
from genjax.recipes.gan import GAN
from genjax.runs import cli, run

DEFAULT_OUT = Path("runs/gan_mnist")

parser = run.parser(__doc__, "python -m experiments.gan_mnist", DEFAULT_OUT, PRESETS, "seed000", aliases=("--model",))
run.preset_flag(parser, "--latent-dim", PRESETS, type=cli.positive_int("--latent-dim"), help="noise dimensions")
run.preset_flag(parser, "--hidden", PRESETS, type=cli.positive_int("--hidden"),
                aliases={"--width": {"type": cli.positive_int("--width")}},
                help="MLP: hidden units; DCGAN: channels of G's last and D's first convolution")
run.preset_flag(parser, "--g-loss", PRESETS, choices=tuple(gan.GENERATOR_LOSSES),
                help="generator loss: non_saturating (-log D(G(z)), the seed's) or saturating (log(1 - D(G(z))))")
run.preset_flag(parser, "--d-norm", PRESETS, choices=DISCRIMINATOR_NORMS,
                help="DCGAN: D's normalization after its second convolution and its hidden layer (batch: "
                     "BatchNorm by the statistics of each batch D judges; layer: LayerNorm over each position's "
                     "channels; none)")
run.preset_flag(parser, "--fc-hidden", PRESETS, type=cli.non_negative_int("--fc-hidden"),
                help="DCGAN: units of a fully connected hidden layer in G (before its 7x7 map) and in D (before "
                     "its logit), as InfoGAN's MNIST networks (1024); 0: none")
run.preset_flag(parser, "--g-lr", PRESETS, type=cli.positive_float("--g-lr"),
                help="G's learning rate (unset: D's, --lr)")
parser.add_argument("--d-grad-leak", action="store_true", default=None,
                    help="reproduce the seed's loop as written: D's gradients from G's backward pass are never "
                         "cleared and add into D's next update (default: cleared, the intended algorithm)")
run.preset_flag(parser, "--num-samples", PRESETS, type=cli.positive_int("--num-samples"),
                help="samples saved in samples.npy and scored")
scoring.add_flags(parser)


def draw_pictures(out: Path, g: GAN, key) -> None:
    """samples.png (8x8) and interpolation.png (8 rows of 10 steps between two noise draws)."""
    k_grid, k_ends = jax.random.split(key)
    plots.save_grid(out / "samples.png", g.sample(64, k_grid)[..., 0], 8, 8, f"{g.config.preset}: samples G(z)")
    ends = prng.normal(k_ends, (8, 2, g.config.latent_dim))
    z = jnp.concatenate([latent.interpolate(a, b, 10) for a, b in ends])
    plots.save_grid(out / "interpolation.png", g.generate(z)[..., 0], 8, 10, "linear interpolation between noise draws")


def experiment(args) -> dict:
    config = run.config_from_args(args, PRESETS)
    scorer = scoring.from_args(args, args.data_dir)  # before anything is written: it scores the samples
    r = run.Run(args, config, resumable=GAN.resumable)
    train, test, mesh = run.load_data(config.dataset, args.data_dir, config.batch_size)
    g = GAN(config).train(data.ImageSet(train.images, None), test, run=r, mesh=mesh, progress=r.progress)
    final = run.last_test_metrics(g.history, g.make_evaluate(test, mesh), g.state)
    draw_key = g.keys()["draw"]
    samples = g.sample(config.num_samples, draw_key)[..., 0]
    scores = scorer.with_reference(train.images, test.images).score(samples) if scorer else {}
    metrics = {**scores, **r.summary(g.history, mesh), "model": config.model, "g_loss_kind": config.g_loss,
               "d_grad_leak": config.d_grad_leak, "d_norm": config.d_norm if config.model == "dcgan" else None,
               "fc_hidden": config.fc_hidden, "g_lr": config.g_lr or config.lr,
               "pixels": config.pixels,
               **{f"test_{k}": final[k] for k in ("d_loss", "g_loss", "d_real", "d_fake")}}

    if r.writes_files:
        np.save(r.out / "samples.npy", samples.astype(np.float32))
        draw_pictures(r.out, g, draw_key)
        history, epochs = g.history, [row["epoch"] for row in g.history]
        plots.save_curves(r.out / "losses.png", epochs,
                          {name: [row[f"{split}_{key}"] for row in history]
                           for split in ("train", "test") for key, name in
                           (("d_loss", f"{split} D loss"), ("g_loss", f"{split} G loss"))},
                          "loss per image", f"{config.preset}: D and G losses")
        plots.save_curves(r.out / "d_outputs.png", epochs,
                          {f"{split} {name}": [row[f"{split}_{key}"] for row in history]
                           for split in ("train", "test") for key, name in (("d_real", "D(x)"), ("d_fake", "D(G(z))"))},
                          "mean D output", f"{config.preset}: D on real and generated images")
    return r.finish(metrics, g.history)


if __name__ == "__main__":
    sys.exit(run.main(parser, experiment))
