"""What every benchmark prints beside its figures: the CPU it ran on and JAX's GEMM peak there."""

from __future__ import annotations

import importlib
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp


def import_baseline(name: str):
    """The PyTorch baseline module ``benchmarks.<name>``, or exit with the command that installs PyTorch."""
    try:
        return importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError as missing:
        if missing.name != "torch":
            raise
        sys.exit("error: the baselines need PyTorch: pip install torch==2.13.0 (a CPU build)")


def cpu_model() -> str:
    """'vendor, model name (family F model M, AVX-512 or AVX2), N cores' from /proc/cpuinfo
    (platform.processor() elsewhere). Cloud CPUs often name only the line ('AMD EPYC'): the
    family and model tell its generation apart (AMD family 23 is Zen 1/2, 25 Zen 3/4), and the
    widest vector ISA which of XLA's kernels run."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    vendor = fields.get("vendor_id", "")
    name = fields.get("model name") or platform.processor() or "unknown CPU"
    flags = fields.get("flags", "").split()
    isa = next((label for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), "")
    detail = ", ".join(filter(None, [f"family {fields['cpu family']} model {fields['model']}"
                                     if "cpu family" in fields and "model" in fields else "", isa]))
    return f"{vendor + ', ' if vendor else ''}{name}{f' ({detail})' if detail else ''}, {os.cpu_count()} cores"


def cpu_vendor() -> str:
    """/proc/cpuinfo's ``vendor_id`` (``AuthenticAMD``, ``GenuineIntel``), or '' where there is none:
    the key of the benchmarks' per-CPU speed targets."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


def describe() -> str:
    return (f"CPU: {cpu_model()}; jax {jax.__version__} on {jax.default_backend()} "
            f"({jax.device_count()} device(s))")


def gemm_peak_gflops(n: int = 2048, reps: int = 20) -> float:
    """Best-of-3 float32 GFLOP/s of a jitted n x n matmul on the default backend."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    matmul = jax.jit(lambda a: a @ a)
    matmul(a).block_until_ready()
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            out = matmul(a)
        out.block_until_ready()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t) / 1e9)
    return best


def timed_calls(fn, *args, repeats: int = 3) -> list[float]:
    """Seconds of each of ``repeats`` timed calls of ``fn(*args)`` after one untimed (compiling) call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return times


def best_seconds(fn, *args, repeats: int = 3) -> float:
    """The fastest of :func:`timed_calls`."""
    return min(timed_calls(fn, *args, repeats=repeats))


def timed_median(fn, *args, repeats: int) -> tuple[float, list[float]]:
    """Median seconds of ``repeats`` calls after one untimed (compiling) call, and every call's."""
    times = timed_calls(fn, *args, repeats=repeats)
    return statistics.median(times), times


def print_ceilings(rows, peak: float, products: str = "matmuls") -> None:
    """Print, per ``(name, baseline_seconds, floor_seconds, flops, target)`` row, the most any program
    could beat the baseline by in this run: baseline / floor (at XLA's kernels, nothing else) and
    baseline / (``flops`` at the GEMM ``peak``, GFLOP/s), with the GFLOP/s the ``target`` speed-up
    needs; ' !' where even the floor misses the target."""
    print(f"the most speed-up over PyTorch in this run: at the floor (XLA's kernels, nothing else), at the GEMM "
          f"peak ({peak:.0f} GFLOP/s, the {products} alone); the GFLOP/s the target needs ('!': out of reach at "
          f"XLA's kernels)")
    width = max(len(row[0]) for row in rows)
    for name, baseline, floor, flops, target in rows:
        needs = flops * target / baseline / 1e9
        print(f"  {name:{width}} at the floor {baseline / floor:5.2f}x, at the GEMM peak "
              f"{baseline * peak * 1e9 / flops:5.2f}x; {target}x needs {needs:.0f} GFLOP/s "
              f"({100 * needs / peak:.0f}% of peak){' !' if baseline / floor < target else ''}")
