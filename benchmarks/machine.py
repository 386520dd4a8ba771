"""What every benchmark prints beside its figures: the CPU it ran on, JAX's GEMM peak there, and each row's
target with its mark."""

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
        sys.exit("error: the baselines need PyTorch: pip install torch==2.13.0 "
                 "--index-url https://download.pytorch.org/whl/cpu (a CPU build)")


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


CEILING_RULE = 1.3  # below this ceiling a speed-up target gives way to: genjax within 1.3x of the arithmetic at peak


def row_target(target, torch_s, genjax_s, floor_s, at_peak_s) -> tuple[str, str]:
    """A benchmark row's target cell, 'ok' or 'MISS' after it, and the words of the ceiling rule where it applies.
    ``target``: None; ``("speed-up", x[, moonshot])``, genjax >= x times as fast as PyTorch; or ``("floor", x)``,
    genjax <= x times its floor. The ceiling rule: where a row's ceiling (PyTorch's seconds over ``at_peak_s``,
    its arithmetic at the GEMM peak) is below :data:`CEILING_RULE`, no program can be that much faster than
    PyTorch here, and its speed-up target becomes genjax <= CEILING_RULE x ``at_peak_s``."""
    if target is None:
        return "-", ""
    kind, x, *moonshot = target
    if kind == "floor":
        return (f"<={x}x floor " + ("ok" if genjax_s <= x * floor_s else "MISS"), "") if floor_s else ("n/a", "")
    if torch_s / at_peak_s < CEILING_RULE:
        words = (f"the ceiling, {torch_s / at_peak_s:.2f}x, is below {CEILING_RULE}x: no program can be "
                 f"{CEILING_RULE}x as fast as PyTorch on this CPU, so the target is genjax within {CEILING_RULE}x "
                 f"of its arithmetic at the GEMM peak (it is at {genjax_s / at_peak_s:.2f}x)")
        return f"<={CEILING_RULE}x peak " + ("ok" if genjax_s <= CEILING_RULE * at_peak_s else "MISS"), words
    speedup = torch_s / genjax_s
    return (f">={x}x " + ("ok" if speedup >= x else "MISS")
            + "".join(f" (moonshot {m}x: {'ok' if speedup >= m else 'not yet'})" for m in moonshot), "")


def print_table(rows, peak: float, products: str = "matmuls") -> None:
    """Print, under the CPU model and the GEMM ``peak`` (GFLOP/s), one line per ``(name, pytorch_s, genjax_s,
    floor_s, flops, target)`` row (``pytorch_s``, ``floor_s`` None where there is none; ``flops`` the row's
    ``products``, whose time at the peak sets the ceiling): the seconds, the speed-up over PyTorch, genjax
    over its floor, the ceiling (PyTorch's seconds over the ``flops`` at the peak: the most any program could
    beat PyTorch by here) and the target of :func:`row_target` with its mark; then the ceiling rule's words."""
    width, columns = max(len(row[0]) for row in rows), (("pytorch s", 10), ("genjax s", 10), ("speed-up", 9),
                                                        ("floor s", 9), ("/floor", 7), ("ceiling", 9))
    print(f"{cpu_model()}; float32 GEMM peak {peak:.0f} GFLOP/s; ceiling: PyTorch s / the {products} at the peak")
    print(f"{'':{width}} " + " ".join(f"{c:>{w}}" for c, w in columns) + "  target")
    notes = []
    for name, torch_s, genjax_s, floor_s, flops, target in rows:
        at_peak = flops / (peak * 1e9) if flops else None
        mark, note = row_target(target, torch_s, genjax_s, floor_s, at_peak)
        notes += [f"  {name}: {note}"] if note else []
        figures = (torch_s, genjax_s, torch_s and torch_s / genjax_s, floor_s, floor_s and genjax_s / floor_s,
                   torch_s and at_peak and torch_s / at_peak)
        cells = ("" if v is None else f"{v:.3f}" if i in (0, 1, 3) else f"{v:.2f}x" for i, v in enumerate(figures))
        print(f"{name:{width}} " + " ".join(c.rjust(w) for c, (_, w) in zip(cells, columns)) + f"  {mark}")
    if notes:
        print("\n".join(["the ceiling rule applied:", *notes]))
