"""The claims of docs/design.md, executed on toy models and random data.

Each test builds a new kind of model against genjax's unchanged training core
(``make_train_step`` / ``make_epoch`` / ``fit`` / ``Checkpointer``):

(a) BatchNorm: ``batch_stats`` carried in ``TrainState.model_state`` and checkpoints;
(b) multi-host: two jax.distributed CPU processes give what one process gives.

The other claims are tested on the library's own code: the GAN's D-then-G step and its
resume in ``test_gan.py``, K vmapped models in ``test_sweep.py``, the LSTM's teacher forcing
against its ``lax.scan`` sampler in ``test_pixelrnn.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax.devices import data_mesh, replicate
from genjax.objectives.losses import masked_mean
from genjax.runs.checkpoint import Checkpointer
from genjax.runs.fit import fit
from genjax.training.step import TrainState, epoch_key, make_epoch, make_train_step

REPO = Path(__file__).resolve().parents[1]


def host(tree):
    """A NumPy copy: make_epoch donates its input state, so keep copies to compare with."""
    return jax.tree.map(np.array, jax.device_get(tree))


def assert_trees_equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, host(a), host(b))


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), host(a), host(b))


def max_abs_change(a, b) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(host(a)), jax.tree.leaves(host(b))))


# --------------------------------------------------------------------------- (a) BatchNorm


class BNClassifier(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool, mask=None):
        # No bias before BatchNorm: its gradient is zero up to rounding, which Adam would amplify.
        h = nn.Dense(16, use_bias=False, name="dense")(x)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="bn")(h, mask=mask)
        return nn.Dense(1)(nn.relu(h))[..., 0]


BN = BNClassifier()


def bn_loss(params, model_state, batch, key, step):
    mask = batch["mask"][:, None] > 0 if "mask" in batch else None  # padding rows stay out of the stats
    logits, new_model_state = BN.apply({"params": params, **model_state}, batch["x"], train=True, mask=mask,
                                       mutable=["batch_stats"])
    loss = masked_mean(optax.sigmoid_binary_cross_entropy(logits, batch["y"]), batch)
    return loss, (new_model_state, {"accuracy": masked_mean((logits > 0) == (batch["y"] > 0.5), batch)})


def bn_state(tx):
    variables = BN.init(jax.random.key(0), jnp.zeros((1, 6)), train=False)
    return TrainState.create(variables["params"], tx, jax.random.key(1),
                             model_state={"batch_stats": variables["batch_stats"]})


def bn_data(n=256):
    x = 3.0 + jax.random.normal(jax.random.key(3), (n, 6))
    return {"x": x, "y": (x[:, 0] > 3.0).astype(jnp.float32)}


def test_batchnorm_stats_flow_through_step_and_checkpoint(tmp_path):
    tx = optax.adam(1e-2)
    data = replicate(bn_data(), data_mesh())

    # One step: the new running mean is 0.9 * 0 + 0.1 * (batch mean of the Dense features).
    state = bn_state(tx)
    batch = {k: v[:32] for k, v in data.items()}
    new, _ = jax.jit(make_train_step(bn_loss, tx))(state, batch)
    features = batch["x"] @ state.params["dense"]["kernel"]
    np.testing.assert_allclose(new.model_state["batch_stats"]["bn"]["mean"], 0.1 * features.mean(0),
                               rtol=1e-5, atol=1e-5)
    # make_epoch's padding mask keeps padded rows out of the statistics.
    padded = {"x": batch["x"].at[24:].set(1e3), "y": batch["y"], "mask": (jnp.arange(32) < 24).astype(jnp.float32)}
    new, _ = jax.jit(make_train_step(bn_loss, tx))(state, padded)
    np.testing.assert_allclose(new.model_state["batch_stats"]["bn"]["mean"], 0.1 * features[:24].mean(0),
                               rtol=1e-5, atol=1e-5)

    # Whole epochs (250 examples: the last batch is padded); stats move, and the stats, params and
    # optimizer state round-trip exactly.
    data = replicate(bn_data(250), data_mesh())
    state = bn_state(tx)
    init_stats = host(state.model_state)
    epoch_fn = make_epoch(make_train_step(bn_loss, tx), 32, data_mesh())
    for e in range(3):
        state, metrics = epoch_fn(state, data, epoch_key(jax.random.key(5), e))
    assert np.isfinite(metrics["loss"]).all()
    assert max_abs_change(state.model_state, init_stats) > 0.5  # the running mean moved towards ~3
    ckpt = Checkpointer(tmp_path / "ckpt", asynchronous=False)
    ckpt.save(3, state, {"epochs": 3})
    restored, _ = ckpt.restore(bn_state(tx))
    ckpt.close()
    assert_trees_equal(restored, state)
    # Evaluation uses the restored running averages (no mutable collection).
    logits = BN.apply({"params": restored.params, **restored.model_state}, data["x"], train=False)
    assert np.isfinite(np.asarray(logits)).all()


# --------------------------------------------------------------------------- (b) two processes


def sharded_run(out: Path) -> list[np.ndarray]:
    """BatchNorm through fit + Checkpointer on ``data_mesh()`` (all devices of all processes);
    returns the leaves of the restored state and of the history's losses."""
    mesh, tx = data_mesh(), optax.adam(1e-2)
    data = replicate(host(bn_data()), mesh)  # NumPy, identical in every process
    epoch_fn = make_epoch(make_train_step(bn_loss, tx), 32, mesh)
    ckpt = Checkpointer(out / "checkpoints")  # one shared directory; every process calls save
    out.mkdir(parents=True, exist_ok=True)  # shared: only process 0 writes history.csv
    fit(replicate(bn_state(tx), mesh), epoch_fn, data, jax.random.key(5), 2, lambda s: {}, ckpt, {}, out,
        progress=False)
    ckpt.close()
    restored, meta = Checkpointer(out / "checkpoints").restore(replicate(bn_state(tx), mesh))
    losses_ = np.array([row["train_loss"] for row in meta["history"]])
    return [losses_, *jax.tree.leaves(host(restored))]


WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU only; GPUs need nothing
    pid, port, out = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid)  # before anything else
    import numpy as np
    import test_design
    assert jax.process_count() == 2 and jax.device_count() == 2 and jax.local_device_count() == 1
    np.savez(out / f"leaves{pid}.npz", *test_design.sharded_run(out))
    test_design.process_local_inputs_work(pid)
""")


def process_local_inputs_work(pid: int) -> None:
    """In a multi-process run: a dataset sharded by rows (each process holds its half) trains
    exactly like the replicated one, and evaluation accepts NumPy, process-local or replicated x."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh, tx = data_mesh(), optax.adam(1e-2)
    full = host(bn_data())
    half = len(full["x"]) // 2
    local = {k: v[pid * half:(pid + 1) * half] for k, v in full.items()}
    sharded = jax.make_array_from_process_local_data(NamedSharding(mesh, P("batch")), local)
    epoch_fn = make_epoch(make_train_step(bn_loss, tx), 32, mesh)
    key = epoch_key(jax.random.key(5), 0)
    from_rows, _ = epoch_fn(replicate(bn_state(tx), mesh), sharded, key)
    from_copies, _ = epoch_fn(replicate(bn_state(tx), mesh), replicate(full, mesh), key)
    assert_trees_close(from_rows, from_copies)
    score = jax.jit(lambda s, x: jnp.mean(BN.apply({"params": s.params, **s.model_state}, x, train=False)))
    x = full["x"][:64]
    values = [float(score(from_rows, v)) for v in (x, jnp.asarray(x), replicate(x, mesh))]
    assert values[0] == values[1] == values[2], values


def test_two_processes_match_one(tmp_path):
    """jax.distributed with 2 CPU processes (1 device each): the mesh spans both; training, the
    global BatchNorm statistics, fit's history and the orbax checkpoint match a single-process run."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(pid), str(port), str(tmp_path / "multi")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for pid in (0, 1)]
    (tmp_path / "multi").mkdir()
    try:
        logs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-2000:] for log in logs)

    assert (tmp_path / "multi" / "history.csv").read_text().count("\n") == 3  # header + 2 epochs
    single = sharded_run(tmp_path / "single")
    for pid in (0, 1):
        with np.load(tmp_path / "multi" / f"leaves{pid}.npz") as f:
            multi = [f[f"arr_{i}"] for i in range(len(f.files))]
        assert len(multi) == len(single)
        for a, b in zip(multi, single):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
