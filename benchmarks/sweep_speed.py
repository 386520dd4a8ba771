"""K VAEs as one vmapped program against K runs one after another, in one run on this machine.

    python -m benchmarks.sweep_speed                    # K = 8 seed002 VAEs, 20 epochs each, IWAE k = 100
    python -m benchmarks.sweep_speed --epochs 5 --scaling 1 2 4 8 16

1. Wall time of `python -m experiments.ablations seeds --seeds K --iwae-k 100 --no-score`
   (one process, one compiled epoch for all K) against K sequential runs of the main job
   `python -m experiments.vae_mnist --seed s --iwae-k 100` (the same training, -ELBO and
   IWAE evaluation per model; the main job also draws its pictures and samples.npy).
2. Seconds per model-epoch as K grows (in this process, after a compiling epoch),
   against the same preset's matmul GFLOP/s and the GEMM peak: where the CPU saturates.
Prints the CPU model beside every figure; nothing is compared with another run's figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time

import jax

from benchmarks.machine import cpu_model, describe, gemm_peak_gflops
from genjax import data
from genjax.devices import data_mesh
from genjax.presets import PRESETS
from genjax.recipes import sweep as vae_sweep
from genjax.recipes.vae import VAE
from genjax.training.step import epoch_key, num_batches


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t


def sweep_against_sequential(k: int, epochs: int, iwae_k: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        common = ["--epochs", str(epochs), "--iwae-k", str(iwae_k), "--no-progress"]
        t_sweep = wall([sys.executable, "-m", "experiments.ablations", "seeds", "--seeds", str(k), "--no-score",
                        "--out", f"{tmp}/sweep", *common])
        t_runs = [wall([sys.executable, "-m", "experiments.vae_mnist", "--seed", str(s), "--out", f"{tmp}/run{s}",
                        *common]) for s in range(k)]
    total = sum(t_runs)
    print(f"\n{k} seed002 VAEs x {epochs} epochs, IWAE k = {iwae_k}, wall seconds ({cpu_model()})")
    print(f"{'one vmapped program':<28}{t_sweep:>10.1f}")
    print(f"{'K sequential main jobs':<28}{total:>10.1f}   (each {min(t_runs):.1f}-{max(t_runs):.1f})")
    print(f"{'speed-up':<28}{total / t_sweep:>9.2f}x")


def matmul_flops_per_model_epoch(params, batch_size: int, steps: int) -> float:
    """Per example and dense layer: 2 |W| forward, 4 |W| backward (input and weight gradients;
    the first layer needs no input gradient)."""
    layers = jax.tree.leaves(params, is_leaf=lambda x: isinstance(x, dict) and "kernel" in x)
    per_example = sum(6 * layer["kernel"].size for layer in layers) - 2 * params["encoder"]["hidden_0"]["kernel"].size
    return per_example * batch_size * steps


def scaling(ks: list[int], epochs: int) -> None:
    config = dataclasses.replace(PRESETS["seed002"])
    train, _ = data.load_dataset("mnist")
    mesh = data_mesh()
    steps = num_batches(len(train), config.batch_size)
    run_key = jax.random.key(0, impl=config.prng)
    peak = gemm_peak_gflops()
    print(f"\nper-model epoch time as K grows: seed002, batch {config.batch_size}, {steps} steps ({cpu_model()}; "
          f"GEMM peak {peak:.0f} GFLOP/s)")
    print(f"{'K':>4}{'s/epoch':>10}{'s/model-epoch':>15}{'GFLOP/s':>10}{'% peak':>8}")
    for k in ks:
        configs = [dataclasses.replace(config, seed=s) for s in range(k)]
        p = vae_sweep.prepare_group([VAE(c) for c in configs], data.ImageSet(train.images, None), mesh)
        state, epoch_fn, images = p.state, p.epoch_fn, p.train_data
        flops = k * matmul_flops_per_model_epoch(jax.tree.map(lambda a: a[0], state.models.params),
                                                 config.batch_size, steps)
        state, m = epoch_fn(state, images, epoch_key(run_key, 0))  # compiles
        jax.block_until_ready(m)
        times = []
        for e in range(1, epochs + 1):
            t = time.perf_counter()
            state, m = epoch_fn(state, images, epoch_key(run_key, e))
            jax.block_until_ready(m)
            times.append(time.perf_counter() - t)
        s = statistics.median(times)
        print(f"{k:>4}{s:>10.2f}{s / k:>15.3f}{flops / s / 1e9:>10.0f}{100 * flops / s / 1e9 / peak:>7.0f}%")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--epochs", type=int, default=20, help="epochs of each model in part 1")
    p.add_argument("--iwae-k", type=int, default=100)
    p.add_argument("--scaling", type=int, nargs="*", default=[1, 2, 4, 8, 16], help="K values of part 2")
    p.add_argument("--scaling-epochs", type=int, default=2, help="timed epochs per K in part 2")
    p.add_argument("--skip-sweep", action="store_true", help="part 2 only")
    args = p.parse_args()
    print(describe())
    if not args.skip_sweep:
        sweep_against_sequential(args.k, args.epochs, args.iwae_k)
    if args.scaling:
        scaling(args.scaling, args.scaling_epochs)


if __name__ == "__main__":
    main()
