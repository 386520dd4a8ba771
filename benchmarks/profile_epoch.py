"""Where an epoch's time goes: a jax.profiler trace of one compiled epoch (and of the IWAE), read back.

    pip install xprof                 # reads the trace back (the trace itself needs only jax)
    python -m benchmarks.profile_epoch [--preset seed002] [--iwae-images 500] [--out runs/profile]

The recipe, so that the next person can repeat a before/after comparison:

1. Build the epoch exactly as ``experiments.vae_mnist`` does (``vae.make_vae_step``, ``make_epoch``,
   the fast compiler options), run two epochs (compile, warm up), then trace a third with
   ``jax.profiler.start_trace``/``stop_trace``. With ``--iwae-images`` > 0, also trace the main
   job's IWAE evaluation (K = 1000) on that many test images.
2. Write the optimized HLO of each program (``lower(...).compile().as_text()``) beside the trace:
   the trace names XLA's ops (``dot.74``, ``multiply_add_fusion.20``); the HLO gives each its
   shape, operands and the JAX source in ``op_name`` metadata.
3. With ``xprof`` installed, convert the trace to trace-viewer events and print, per program,
   the time summed over XLA's worker threads: by category (dots, loop fusions, copies, gathers,
   ...), by the JAX operation that emitted it (``op_name``: ``transpose(jvp(VAE))/decoder/logits``
   is the decoder's last layer in the backward pass), and the largest single ops with shapes.

Thread time is summed over XLA's CPU threads, which run independent ops concurrently, so it
exceeds wall time; compare categories with each other, before and after a change. The trace
files (``<out>/trace``) also open in TensorBoard's or xprof's trace viewer.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

import jax

from benchmarks.machine import describe
from genjax import data
from genjax.devices import data_mesh, replicate
from genjax.objectives import vae
from genjax.presets import PRESETS, get_preset
from genjax.recipes.vae import VAE
from genjax.training.step import epoch_key

THREAD = "XLAEigen"  # XLA:CPU's worker threads in the trace
SKIP = ("Thread", "ThunkExecutor", "end:", "SlinkyThreadPool")  # bookkeeping events, not ops


def trace(fn, path: Path) -> None:
    jax.profiler.start_trace(str(path))
    jax.block_until_ready(fn())
    jax.profiler.stop_trace()


def hlo_ops(hlo: str) -> dict:
    """op name -> (shape, the JAX op_name metadata) from optimized HLO text."""
    ops = {}
    for line in hlo.splitlines():
        m = re.match(r"\s*(?:ROOT )?%(\S+) = (\S+) ", line)
        if m:
            meta = re.search(r'op_name="([^"]*)"', line)
            ops.setdefault(m.group(1), (m.group(2), meta.group(1) if meta else ""))
    return ops


def op_times(trace_dir: Path) -> tuple[collections.Counter, collections.Counter]:
    """(summed microseconds, count) per XLA op name over the worker threads of the newest trace."""
    from xprof.convert import raw_to_tool_data

    (xplane,) = sorted(trace_dir.glob("plugins/profile/*/*.xplane.pb"))[-1:]
    events = json.loads(raw_to_tool_data.xspace_to_tool_data([str(xplane)], "trace_viewer", {})[0])["traceEvents"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X" and THREAD in threads.get((e["pid"], e["tid"]), "") and not e["name"].startswith(SKIP):
            total[e["name"]] += e["dur"]
            count[e["name"]] += 1
    return total, count


def report(name: str, trace_dir: Path, hlo: str, calls: int, top: int) -> None:
    total, count = op_times(trace_dir)
    ops = hlo_ops(hlo)
    summed = sum(total.values())
    print(f"\n== {name}: {summed / 1e3:.1f} ms of op time summed over XLA's threads, "
          f"{sum(count.values()) / calls:.0f} ops per step/chunk")
    by_kind, by_source = collections.Counter(), collections.Counter()
    for op, us in total.items():
        by_kind["dot" if op.startswith("dot") else re.sub(r"[.\d]+$", "", op)] += us
        source = re.sub(r"^jit\([^)]*\)/(while/body/)?(closed_call/)?", "", ops.get(op, ("", "?"))[1])
        by_source["/".join(source.split("/")[:3]) or "?"] += us
    for title, table in (("by kind", by_kind), ("by JAX source", by_source)):
        print(f"-- {title}")
        for key, us in table.most_common(top):
            print(f"{us / 1e3:9.1f} ms {100 * us / summed:5.1f}%  {key}")
    print("-- largest ops")
    for op, us in total.most_common(top):
        shape, source = ops.get(op, ("?", ""))
        print(f"{us / 1e3:9.1f} ms {count[op]:6d}x  {op:36} {shape:22} {source[-70:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="seed002", choices=sorted(PRESETS))
    parser.add_argument("--iwae-images", type=int, default=500, help="test images of the traced IWAE (0: none)")
    parser.add_argument("--out", default="runs/profile", help="trace and HLO directory")
    parser.add_argument("--top", type=int, default=25, help="rows per table")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(describe())

    config = get_preset(args.preset)
    train = data.load_split("mnist", "train", args.data_dir)
    mesh = data_mesh()
    p = VAE(config).prepare(train, mesh)  # the main job's epoch, built by its recipe
    model, keys, steps = p.recipe.model, p.recipe.keys(), p.steps_per_epoch
    epoch, state, images = p.epoch_fn, p.state, p.train_data
    hlo = epoch.lower(state, images, epoch_key(keys["run"], 0)).compile().as_text()
    (out / "epoch_hlo.txt").write_text(hlo)
    for e in range(2):
        state, metrics = epoch(state, images, epoch_key(keys["run"], e))
        jax.block_until_ready(metrics)
    holder = {}

    def one_epoch():
        holder["state"], m = epoch(state, images, epoch_key(keys["run"], 2))
        return m

    trace(one_epoch, out / "trace_epoch")
    programs = [(f"{args.preset} epoch ({steps} steps)", out / "trace_epoch", hlo, steps)]

    if args.iwae_images > 0:
        k = 1000
        test = data.load_split("mnist", "test", args.data_dir).images[:args.iwae_images]
        x = replicate(data.fixed_eval_pixels(test, config.pixels), mesh)
        chunk = vae.iwae_chunk_size(k, 784)
        params = holder["state"].params

        def iwae():
            return vae.iwae_nll(model, params, x, keys["eval"], k, chunk, mesh)

        jax.block_until_ready(iwae())
        iwae_hlo = vae.iwae_nll.lower(model, params, x, keys["eval"], k, chunk, mesh).compile().as_text()
        (out / "iwae_hlo.txt").write_text(iwae_hlo)
        trace(iwae, out / "trace_iwae")
        programs.append((f"IWAE k={k}, {args.iwae_images} images", out / "trace_iwae", iwae_hlo,
                         -(-args.iwae_images // chunk)))

    try:
        import xprof  # noqa: F401
    except ImportError:
        sys.exit(f"traces and HLO are in {out}; `pip install xprof` to print the tables")
    for name, trace_dir, text, calls in programs:
        report(name, trace_dir, text, calls, args.top)


if __name__ == "__main__":
    main()
