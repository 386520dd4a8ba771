"""Seed 001's uses of an autoencoder (``python -m experiments.ae_applications``): denoising (a plain
AE and one denoising AE per noise level, one vmapped program) and anomaly detection by reconstruction
error (an AE and a VAE trained on one digit each, every test image scored)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from genjax import data, prng
from genjax.devices import replicate
from genjax.errors import UsageError
from genjax.evaluation import plots, report
from genjax.evaluation.metrics import roc_auc
from genjax.objectives import autoencoder, vae
from genjax.presets import AE_APPLICATION_PRESETS as PRESETS
from genjax.presets import AE_PRESETS
from genjax.presets import PRESETS as VAE_PRESETS
from genjax.recipes.autoencoder import Autoencoder, add_likelihood_flag, make_ae_step
from genjax.recipes.vae import VAE
from genjax.runs import run
from genjax.training import sweep
from genjax.training.step import fast_compiler_options, make_epoch, num_batches

TASKS = ("denoising", "anomaly")
DENOISING = (("noise", "noise sigma", ".2f"), ("psnr_noisy", "PSNR noisy input", ".2f"),
             ("psnr_ae", "PSNR plain AE", ".2f"), ("psnr_dae", "PSNR DAE", ".2f"),
             ("psnr_dae_clean", "PSNR DAE, clean input", ".2f"))
ANOMALY = (("digit", "normal digit", ""), ("auroc_ae", "AUROC AE", ".4f"), ("auroc_vae", "AUROC VAE", ".4f"),
           ("mse_normal_ae", "AE MSE normal", ".4f"), ("mse_rest_ae", "AE MSE rest", ".4f"),
           ("mse_normal_vae", "VAE MSE normal", ".4f"), ("mse_rest_vae", "VAE MSE rest", ".4f"))


def comma_list(flag: str, kind: type, check, what: str):
    """An argparse type: comma-separated distinct values of ``kind``, each passing ``check``."""
    def parse(text):
        try:
            values = tuple(kind(v) for v in text.split(","))
        except ValueError:
            values = ()
        if not values or not all(check(v) for v in values) or len(set(values)) < len(values):
            raise argparse.ArgumentTypeError(f"{flag} must be comma-separated distinct {what}, got {text!r}")
        return values

    return parse


AE_CHOICES = tuple(n for n, c in AE_PRESETS.items() if c.dataset == "mnist")


def add_flags(p: argparse.ArgumentParser) -> None:
    """The studies' flags: --tasks, --noise levels, --digits, the AE's likelihood, the AE and VAE presets."""
    run.preset_flag(p, "--tasks", PRESETS,
                    type=comma_list("--tasks", str, TASKS.__contains__, "of " + ", ".join(TASKS)),
                    help="studies to run, comma-separated")
    run.preset_flag(p, "--noise", PRESETS, type=comma_list("--noise", float, lambda v: 0 < v < 1e3, "levels > 0"),
                    help="the denoising AEs' noise levels, comma-separated")
    run.preset_flag(p, "--digits", PRESETS, type=comma_list("--digits", int, lambda v: 0 <= v <= 9, "digits 0-9"),
                    help="anomaly detection: the normal digit of each pair of models, comma-separated")
    add_likelihood_flag(p, PRESETS, "the AE's reconstruction term")
    run.preset_flag(p, "--ae-preset", PRESETS, choices=AE_CHOICES, aliases={"--ae": {"choices": AE_CHOICES}},
                    help="the autoencoder of both studies (python -m experiments.ae_mnist's --preset)")
    run.preset_flag(p, "--vae-preset", PRESETS, choices=tuple(VAE_PRESETS),
                    aliases={"--vae": {"choices": tuple(VAE_PRESETS)}},
                    help="anomaly detection's VAE (python -m experiments.vae_mnist's --preset)")


def params_of(s: sweep.Sweep, k: int):
    """Model ``k``'s parameters in a sweep's stacked state."""
    return jax.tree.map(lambda a: a[k], s.models.params)


def denoising(r, config, ae_config, train, test, mesh, keys) -> tuple[list[dict], np.ndarray]:
    """Train the plain AE and one DAE per level in one sweep; (table rows, picture rows)."""
    shape, levels = train.images.shape[1:], (0.0, *config.noise)
    model = autoencoder.from_config(ae_config, shape)
    x_test = replicate(data.fixed_eval_pixels(test.images, ae_config.pixels), mesh)
    states = [Autoencoder(ae_config, shape).init_state() for _ in levels]
    state = replicate(sweep.stack(states, [{"lr": ae_config.lr, "noise": s} for s in levels]), mesh)
    step_for = make_ae_step(model, ae_config.likelihood, ae_config.pixels, ae_config.optimizer)
    epoch_fn = make_epoch(sweep.make_sweep_step(step_for), config.batch_size, mesh,
                          compiler_options=fast_compiler_options(mesh))

    def scores(params, noise):
        return autoencoder.evaluate(model, params, x_test, keys["eval"], ae_config.likelihood, noise, mesh=mesh)

    def evaluate(s):  # each model at its own level
        return {f"{k}_{i}": v for i, level in enumerate(levels) for k, v in scores(params_of(s, i), level).items()}

    state, _ = r.fit(state, epoch_fn, replicate({"image": jnp.asarray(train.images)}, mesh), keys["run"], evaluate,
                     num_batches(len(train), config.batch_size), name="denoising")
    rows = [{"noise": 0.0, "psnr_ae": float(scores(params_of(state, 0), 0.0)["psnr"])}]  # the plain AE, clean input
    picture = [np.asarray(x_test[:10])]
    noisy_keys = jax.random.split(keys["eval"], len(test))[:10]  # the draws evaluate() makes for these images
    for i, level in enumerate(config.noise, start=1):
        plain, dae = scores(params_of(state, 0), level), scores(params_of(state, i), level)
        rows.append({"noise": level, "psnr_noisy": float(plain["psnr_input"]), "psnr_ae": float(plain["psnr"]),
                     "psnr_dae": float(dae["psnr"]), "psnr_dae_clean": float(scores(params_of(state, i), 0.0)["psnr"])})
        noisy = jax.vmap(lambda x, k, s=level: autoencoder.corrupt(k, x, s))(x_test[:10], noisy_keys)
        picture += [np.asarray(noisy)] + [np.asarray(autoencoder.reconstruct(model, params_of(state, k), noisy))
                                          for k in (0, i)]
    return rows, np.concatenate(picture)[..., 0]


def detector_errors(recipe, train_d: data.ImageSet, test: data.ImageSet, anomalous: np.ndarray, r, name: str,
                    mesh) -> np.ndarray:
    """Fit one model (an :class:`Autoencoder` or a :class:`VAE` recipe) on one digit's images; the
    per-image reconstruction MSE of every test image, its anomaly score."""
    model = recipe.with_image_shape(train_d.images.shape[1:]).model
    x_test = replicate(recipe.test_pixels(test), mesh)

    def errors(s):
        return np.asarray(autoencoder.reconstruction_mse(model, s.params, x_test, mesh=mesh))

    def evaluate(s):
        e = errors(s)
        return {"mse_normal": e[~anomalous].mean(), "mse_rest": e[anomalous].mean(), "auroc": roc_auc(e, anomalous)}

    trained = recipe.train(train_d, run=r, mesh=mesh, name=name, primary=False,
                           progress=r.progress, evaluate=evaluate)
    return errors(trained.state)


def anomaly(r, config, ae_config, vae_config, train, test, mesh) -> tuple[list[dict], dict]:
    """Per digit, an AE and a VAE trained on it alone; (table rows, histogram panels per model)."""
    rows, panels = [], {"ae": [], "vae": []}
    for d in config.digits:
        train_d, anomalous = train.where_label(d), test.labels != d
        err = {"ae": detector_errors(Autoencoder(ae_config), train_d, test, anomalous, r, f"ae_digit_{d}", mesh),
               "vae": detector_errors(VAE(vae_config), train_d, test, anomalous, r, f"vae_digit_{d}", mesh)}
        row = {"digit": d}
        for kind, e in err.items():
            row.update({f"auroc_{kind}": roc_auc(e, anomalous), f"mse_normal_{kind}": float(e[~anomalous].mean()),
                        f"mse_rest_{kind}": float(e[anomalous].mean())})
            panels[kind].append((f"digit {d}: AUROC {row[f'auroc_{kind}']:.3f}",
                                 {f"{d} (normal)": e[~anomalous], "other digits": e[anomalous]}))
        rows.append(row)
    return rows, panels


def cli_run(args: argparse.Namespace) -> dict:
    """The whole run of ``python -m experiments.ae_applications`` (see its docstring)."""
    config = run.config_from_args(args, PRESETS)
    ae_config = dataclasses.replace(AE_PRESETS[config.ae_preset], likelihood=config.likelihood, epochs=config.epochs,
                                    noise=0.0, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                                    prng=config.prng)
    vae_config = dataclasses.replace(VAE_PRESETS[config.vae_preset], epochs=config.epochs, batch_size=config.batch_size,
                                     seed=config.seed, prng=config.prng)
    r = run.Run(args, config, resumable=("epochs",))
    train, test, mesh = run.load_data("mnist", args.data_dir, config.batch_size)
    smallest = min(len(train.where_label(d)) for d in config.digits)
    if "anomaly" in config.tasks and config.batch_size > smallest:
        raise UsageError(f"--batch-size {config.batch_size} exceeds the {smallest} training images of a digit")
    keys = prng.run_keys(config.seed, config.prng, vae.KEY_NAMES)
    metrics = {"epochs": config.epochs, "devices": mesh.size, "ae": ae_config.preset, "vae": vae_config.preset,
               "likelihood": config.likelihood, "pixels": {"ae": ae_config.pixels, "vae": vae_config.pixels}}
    settings = f"{config.epochs} epochs a model, batch {config.batch_size}, seed {config.seed}"
    if "denoising" in config.tasks:
        rows, picture = denoising(r, config, ae_config, train, test, mesh, keys)
        metrics["denoising"] = rows
        if r.writes_files:
            report.write_tables(r.out, "denoising", rows, DENOISING,
                                f"{ae_config.preset} AE ({config.likelihood}) and DAEs on MNIST test digits, "
                                f"{settings}; "
                                "PSNR in dB, mean over images, against the clean image")
            plots.save_grid(r.out / "denoising.png", picture, len(picture) // 10, 10,
                            "clean; then per level " + ", ".join(map(str, config.noise)) + ": noisy, plain AE, DAE")
    if "anomaly" in config.tasks:
        rows, panels = anomaly(r, config, ae_config, vae_config, train, test, mesh)
        mean = {"digit": "mean", **{k: float(np.mean([row[k] for row in rows])) for k in rows[0] if k != "digit"}}
        metrics.update(anomaly=rows, anomaly_mean_auroc={"ae": mean["auroc_ae"], "vae": mean["auroc_vae"]})
        if r.writes_files:
            report.write_tables(r.out, "anomaly", rows + [mean], ANOMALY,
                                f"trained on one digit, every MNIST test image scored by reconstruction MSE; "
                                f"ROC AUC of the other digits against it; AE {ae_config.preset} ({config.likelihood}), "
                                f"VAE {vae_config.preset}; {settings}")
            for kind, name in (("ae", "AE"), ("vae", "VAE")):
                plots.save_histogram_grid(r.out / f"anomaly_{kind}.png", panels[kind], 5,
                                          "reconstruction MSE per image",
                                          f"{name} trained on one digit: test reconstruction errors", log_x=True)
    return r.finish(metrics, [])


def cli_script(doc: str, prog: str, default_out: Path, default_preset: str = "seed001"):
    """(parser, experiment) of the AE applications' script."""
    parser = run.parser(doc, prog, default_out, PRESETS, default_preset)
    add_flags(parser)
    return parser, cli_run


__all__ = ["TASKS", "add_flags", "anomaly", "cli_run", "cli_script", "denoising", "detector_errors"]
