"""Seed 003's exercises as ablation studies (``python -m experiments.ablations STUDY``): the VAE
preset with one field set to each of several values, trained as one vmapped program per group of
equal shapes (:func:`genjax.recipes.sweep.train_many`), each model's metrics, IWAE and sample
scores in one table, and the study's pictures."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import jax
import numpy as np

from genjax import data
from genjax.errors import UsageError
from genjax.evaluation import plots, report
from genjax.evaluation import scorer as scoring
from genjax.objectives import vae
from genjax.presets import PRESETS
from genjax.recipes import sweep as vae_sweep
from genjax.recipes.vae import VAE
from genjax.runs import cli, run

# study -> (the config field it varies, its default values)
DEFAULT_OUT = Path("runs/ablations/STUDY")  # STUDY: replaced by the study's name
STUDIES = {
    "beta": ("beta", (0.5, 1.0, 2.0, 4.0)),
    "latent-dim": ("latent_dim", (2, 10, 20, 50, 100)),
    "recon-loss": ("likelihood", ("bernoulli", "mse")),
    "kl-annealing": ("kl_warmup_epochs", (0, 10)),
    "seeds": ("seed", None),  # --seed, --seed + 1, ..., --seeds of them
}


def _likelihood(name: str):
    def parse(text):
        if text not in vae.LIKELIHOODS:
            raise argparse.ArgumentTypeError(f"{name} must be one of {', '.join(vae.LIKELIHOODS)}, got {text!r}")
        return text

    return parse


# field -> the parser of one of its values, with the range its single-run flag accepts
VALUE_TYPES = {"beta": cli.non_negative_float, "latent_dim": cli.positive_int, "likelihood": _likelihood,
               "kl_warmup_epochs": cli.non_negative_int, "seed": cli.seed}

COLUMNS = (("model", "model", ""), ("neg_elbo", "-ELBO", ".2f"), ("nll_iwae", "IWAE NLL", ".2f"),
           ("recon", "recon", ".2f"), ("kl", "KL", ".2f"), ("active_units", "active units", "d"),
           ("recon_mse", "recon MSE", ".2f"), ("fid", "FID", ".1f"), ("class_entropy", "class entropy", ".3f"),
           ("precision", "precision", ".3f"), ("recall", "recall", ".3f"), ("diverged_epoch", "diverged", ""),
           ("seconds_per_epoch", "s/epoch (group)", ".2f"))


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    study: str
    preset: str
    values: tuple
    epochs: int
    batch_size: int
    lr: float
    seed: int
    iwae_k: int = 1000
    num_samples: int = 10000
    score: bool = True

    def members(self) -> list:
        """The study's model configs: the preset with one field set to each value."""
        field, _ = STUDIES[self.study]
        base = dataclasses.replace(PRESETS[self.preset], epochs=self.epochs, batch_size=self.batch_size,
                                   lr=self.lr, seed=self.seed, iwae_k=self.iwae_k, num_samples=self.num_samples)
        return [dataclasses.replace(base, **{field: v}) for v in self.values]


def add_flags(p: argparse.ArgumentParser) -> None:
    """The study (positional), --values, --seeds, --iwae-k, --num-samples and the scorer's flags."""
    p.add_argument("study", choices=tuple(STUDIES), help="which study")
    p.add_argument("--values", help="comma-separated values of the studied field (default: the study's)")
    p.add_argument("--seeds", type=cli.positive_int("--seeds"), default=5,
                   help="models of the seeds study (default 5)")
    run.preset_flag(p, "--iwae-k", PRESETS, type=cli.positive_int("--iwae-k"), help="importance samples (IWAE)")
    run.preset_flag(p, "--num-samples", PRESETS, type=cli.positive_int("--num-samples"),
                    help="prior samples per model for the evaluator")
    scoring.add_flags(p)


def study_values(args, base) -> tuple:
    """The studied field's values: ``--values`` (each range-checked as its own flag would be,
    no repeats), else the study's defaults; refused with a UsageError before any work."""
    field, values = STUDIES[args.study]
    parse = VALUE_TYPES[field](f"each {field.replace('_', '-')} value of --values")
    if args.values is not None:
        try:
            values = tuple(parse(v.strip()) for v in args.values.split(","))
        except argparse.ArgumentTypeError as e:
            raise UsageError(str(e))
    elif field == "seed":
        if base.seed + args.seeds - 1 > cli.MAX_SEED:
            raise UsageError(f"--seed {base.seed} --seeds {args.seeds}: the seeds would pass {cli.MAX_SEED}; "
                             f"choose --seed {cli.MAX_SEED - args.seeds + 1} or less")
        values = tuple(base.seed + i for i in range(args.seeds))
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise UsageError(f"--values {args.values!r} repeats {', '.join(repeated)}: each model needs its own {field}")
    return values


def study_config(args) -> StudyConfig:
    base = run.config_from_args(args, PRESETS)
    values = study_values(args, base)
    return StudyConfig(args.study, args.preset, values, base.epochs, base.batch_size, base.lr, base.seed,
                       base.iwae_k, base.num_samples, args.score)


def label(field: str, value) -> str:
    return f"{field}={value}"


def traversal(recipe: VAE, images: np.ndarray, key_dims: int = 10) -> np.ndarray:
    """Decoded z of the first of ``images`` with the ``key_dims`` units most active over all of them
    swept over [-3, 3]."""
    z = recipe.encode(images)
    order = np.argsort(-np.var(z, axis=0))[:key_dims]
    steps = np.linspace(-3, 3, 9, dtype=np.float32)
    grid = np.repeat(z[:1], len(order) * len(steps), axis=0)
    for r, u in enumerate(order):
        grid[r * len(steps):(r + 1) * len(steps), u] = steps
    return recipe.decode(grid)[..., 0]


def cli_run(args: argparse.Namespace) -> dict:
    """The whole run of ``python -m experiments.ablations STUDY`` (see its docstring)."""
    config = study_config(args)
    if args.out == DEFAULT_OUT:
        args.out = Path("runs/ablations") / config.study
    scorer = scoring.from_args(args, args.data_dir)  # before anything is written
    r = run.Run(args, config, resumable=("epochs", "iwae_k", "num_samples", "score"))
    field, members = STUDIES[config.study][0], config.members()
    train, test, mesh = run.load_data(members[0].dataset, args.data_dir, config.batch_size)
    run_key = jax.random.key(config.seed, impl=members[0].prng)  # the batch order every model shares
    trained = vae_sweep.train_many([VAE(c) for c in members], train, test, run=r, mesh=mesh, run_key=run_key)
    if scorer is not None:
        scorer = scorer.with_reference(train.images, test.images)
    rows, curves, recon_rows = [], {}, []
    originals = np.asarray(trained[0].test_pixels(data.ImageSet(test.images[:12], None)))[..., 0]
    for cfg, m in zip(members, trained):
        name = label(field, getattr(cfg, field))
        last = m.history[-1] if m.history else {}
        row = {"model": name, field: getattr(cfg, field),
               **{k.removeprefix("test_"): v for k, v in last.items() if k.startswith("test_")},
               "recon_mse": last.get("test_mse"), **vae_sweep.final_metrics(m, test, mesh),
               "diverged_epoch": vae_sweep.diverged_epoch(m),
               "seconds_per_epoch": r.summary(m.history, mesh)["seconds_per_epoch"]}  # its group's
        rows.append(row)
        curves[name] = [h.get("test_neg_elbo", h.get("test_loss")) for h in m.history]
        if row["diverged_epoch"] is not None:
            recon_rows.append(np.full_like(originals, np.nan))
            continue
        drawn = m.run_samples()
        samples = drawn[0][..., 0]
        if scorer is not None:  # a binary-pixel model's Bernoulli draws of the same z's, against binarized digits
            s = scorer.score(*m.scored_run_samples(drawn)[:2])
            row.update({k: s[k] for k in ("fid", "class_entropy", "classifier_score", "precision", "recall",
                                          "reference_pixels")})
        recon_rows.append(m.reconstruct(test.images[:12])[..., 0])
        if r.writes_files:
            plots.save_grid(r.out / f"samples_{name}.png", samples[:64], 8, 8,
                            f"{name}: prior samples (Bernoulli means)")
            if config.study == "beta":
                plots.save_grid(r.out / f"traversal_{name}.png", traversal(m, test.images), 10, 9,
                                f"{name}: one digit, its 10 most active units swept over [-3, 3]")

    rows = [{k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()} for row in rows]
    metrics = {"study": config.study, "field": field, "models": rows, "devices": mesh.size,
               "binarization": data.BINARIZATION[members[0].pixels], "epochs": config.epochs}
    if config.study == "seeds":
        summary = {k: report.mean_std([row.get(k) for row in rows]) for k, *_ in COLUMNS[1:-2]}
        metrics["mean_std"] = {k: v for k, v in summary.items() if v is not None}
        rows_md = rows + [{"model": "mean", **{k: v[0] for k, v in metrics["mean_std"].items()}},
                          {"model": "std", **{k: v[1] for k, v in metrics["mean_std"].items()}}]
    else:
        rows_md = rows
    if r.writes_files:
        header = (f"{config.study}: preset {config.preset}, {config.epochs} epochs, seed {config.seed}; "
                  f"pixels: {data.BINARIZATION[members[0].pixels]}; nats per test image; IWAE k = {config.iwae_k}; "
                  f"scores of {config.num_samples} prior samples against MNIST references in the same pixels")
        report.write_tables(r.out, "results", rows_md, COLUMNS, header)
        epochs = list(range(1, len(next(iter(curves.values()))) + 1))
        plots.save_curves(r.out / "curves.png", epochs, curves, "test -ELBO or loss (nats/image)", config.study)
        plots.save_grid(r.out / "reconstructions.png", np.concatenate([originals, *recon_rows]),
                        1 + len(recon_rows), 12, "test digits, then each model's reconstructions: "
                        + ", ".join(row["model"] for row in rows))
        if config.study == "latent-dim":
            keys = [k for k in ("neg_elbo", "nll_iwae", "recon", "kl") if rows[0].get(k) is not None]
            plots.save_lines(r.out / "latent_dim.png", list(config.values),
                             {**{k: [row.get(k) for row in rows] for k in keys},
                              "active units": [row["active_units"] for row in rows]},
                             "latent dimension", "nats per image (active units: count)", "latent size", log_x=True)
    return r.finish(metrics, [])


def cli_script(doc: str, prog: str, default_out: Path = DEFAULT_OUT, default_preset: str = "seed002"):
    """(parser, experiment) of the ablations' script."""
    parser = run.parser(doc, prog, default_out, PRESETS, default_preset)
    add_flags(parser)
    return parser, cli_run


__all__ = ["STUDIES", "StudyConfig", "add_flags", "cli_run", "cli_script", "study_config", "study_values",
           "traversal"]
