"""The claims of docs/design.md, executed on toy models and random data.

Each test builds a new kind of model against genjax's unchanged training core
(``make_train_step`` / ``make_epoch`` / ``fit`` / ``Checkpointer``):

(a) a GAN: two parameter sets, two optimizers, D then G in one jitted step;
(b) BatchNorm: ``batch_stats`` carried in ``TrainState.model_state`` and checkpoints;
(c) K VAEs at once: ``jax.vmap`` over stacked states (own learning rate and beta);
(d) an LSTM over binary sequences: teacher forcing in the step, a ``lax.scan`` sampler;
(e) multi-host: two jax.distributed CPU processes give what one process gives.
"""

from __future__ import annotations

import functools
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

from genjax import losses, vae
from genjax.checkpoint import Checkpointer
from genjax.fit import fit
from genjax.models.mlp_vae import VAE
from genjax.train import TrainState, data_mesh, epoch_key, make_epoch, make_train_step, masked_mean, replicate

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


# --------------------------------------------------------------------------- (a) GAN


class Generator(nn.Module):
    @nn.compact
    def __call__(self, z):
        return nn.Dense(8)(nn.relu(nn.Dense(16)(z)))


class Discriminator(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(nn.relu(nn.Dense(16)(x)))[..., 0]


GEN, DISC, LATENT = Generator(), Discriminator(), 4
TX_G, TX_D = optax.adam(2e-3, b1=0.5), optax.adam(1e-3, b1=0.5)


def gradient_update(loss_fn, tx, params, opt_state, *args):
    """One optax update of ``params`` on ``loss_fn(params, *args) -> (loss, aux)``."""
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, *args)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def d_loss(d_params, g_params, batch, z):
    """-log D(x) - log(1 - D(G(z))), with D(.) = sigmoid(logit); real examples weighted by the mask."""
    fake = jax.lax.stop_gradient(GEN.apply({"params": g_params}, z))
    real_logit = DISC.apply({"params": d_params}, batch["x"])
    fake_logit = DISC.apply({"params": d_params}, fake)
    return masked_mean(jax.nn.softplus(-real_logit), batch) + jnp.mean(jax.nn.softplus(fake_logit)), None


def g_loss(g_params, d_params, z):
    """Non-saturating generator loss: -log D(G(z))."""
    return jnp.mean(jax.nn.softplus(-DISC.apply({"params": d_params}, GEN.apply({"params": g_params}, z)))), None


def gan_step(state: TrainState, batch):
    """D update, then G update against the *new* D; one step of the run."""
    kd, kg = jax.random.split(state.step_key())
    x = batch["x"]
    p, o = state.params, state.opt_state
    disc, od, ld = gradient_update(d_loss, TX_D, p["disc"], o["disc"], p["gen"], batch,
                                   jax.random.normal(kd, (x.shape[0], LATENT)))
    gen, og, lg = gradient_update(g_loss, TX_G, p["gen"], o["gen"], disc,
                                  jax.random.normal(kg, (x.shape[0], LATENT)))
    new = state.replace(step=state.step + 1, params={"gen": gen, "disc": disc}, opt_state={"gen": og, "disc": od})
    return new, {"loss": ld + lg, "d_loss": ld, "g_loss": lg}


def gan_state(seed=0):
    kg, kd, ks = jax.random.split(jax.random.key(seed), 3)
    params = {"gen": GEN.init(kg, jnp.zeros((1, LATENT)))["params"],
              "disc": DISC.init(kd, jnp.zeros((1, 8)))["params"]}
    opt_state = {"gen": TX_G.init(params["gen"]), "disc": TX_D.init(params["disc"])}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
                      model_state={}, key=jax.random.key_data(ks))


def gan_data():
    x = 2.0 + 0.5 * jax.random.normal(jax.random.key(42), (256, 8))
    return replicate({"x": x}, data_mesh())


def test_gan_alternates_d_then_g_inside_one_jitted_step():
    state = gan_state()
    batch = {"x": gan_data()["x"][:32]}
    new, metrics = jax.jit(gan_step)(state, batch)
    # Reference: D's update, then G's loss and update against the *updated* D.
    kd, kg = jax.random.split(state.step_key())
    z_d, z_g = jax.random.normal(kd, (32, LATENT)), jax.random.normal(kg, (32, LATENT))
    p, o = state.params, state.opt_state
    update = jax.jit(gradient_update, static_argnums=(0, 1))
    disc1, _, _ = update(d_loss, TX_D, p["disc"], o["disc"], p["gen"], batch, z_d)
    gen1, _, _ = update(g_loss, TX_G, p["gen"], o["gen"], disc1, z_g)
    assert_trees_close(new.params["disc"], disc1)
    assert_trees_close(new.params["gen"], gen1)
    g_vs_new_d, g_vs_old_d = g_loss(p["gen"], disc1, z_g)[0], g_loss(p["gen"], p["disc"], z_g)[0]
    np.testing.assert_allclose(metrics["g_loss"], g_vs_new_d, rtol=1e-5)
    assert abs(float(g_vs_new_d - g_vs_old_d)) > 1e-4  # so the check above tells D-then-G from simultaneous
    assert int(new.step) == 1 and set(metrics) == {"loss", "d_loss", "g_loss"}


def test_gan_runs_through_make_epoch_fit_and_checkpointer(tmp_path):
    mesh, data, run_key = data_mesh(), gan_data(), jax.random.key(7)
    epoch_fn = make_epoch(gan_step, 32, mesh)

    def evaluate(state):
        return {"d_real": jnp.mean(jax.nn.sigmoid(DISC.apply({"params": state.params["disc"]}, data["x"][:64])))}

    def run(out, epochs, state, history=None):
        ckpt = Checkpointer(out / "checkpoints")
        state, history = fit(state, epoch_fn, data, run_key, epochs, evaluate, ckpt, {"model": "toy-gan"},
                             out, history, progress=False)
        ckpt.close()
        return host(state), history

    init = host(gan_state())
    (tmp_path / "straight").mkdir()
    final, history = run(tmp_path / "straight", 2, replicate(gan_state(), mesh))
    assert int(final.step) == 2 * (256 // 32)
    for row in history:
        assert np.isfinite([row["train_loss"], row["train_d_loss"], row["train_g_loss"], row["test_d_real"]]).all()
    assert max_abs_change(final.params["gen"], init.params["gen"]) > 1e-3
    assert max_abs_change(final.params["disc"], init.params["disc"]) > 1e-3

    # The whole two-network state (both optimizers' moments included) round-trips exactly.
    restored, meta = Checkpointer(tmp_path / "straight" / "checkpoints").restore(gan_state())
    assert_trees_equal(restored, final)
    assert meta["model"] == "toy-gan" and len(meta["history"]) == 2

    # Resume: one epoch, restore into a fresh process-like state, one more; identical to two straight.
    (tmp_path / "resumed").mkdir()
    run(tmp_path / "resumed", 1, replicate(gan_state(), mesh))
    state, meta = Checkpointer(tmp_path / "resumed" / "checkpoints").restore(replicate(gan_state(), mesh))
    resumed, resumed_history = run(tmp_path / "resumed", 2, state, meta["history"])
    assert_trees_equal(resumed, final)
    assert [r["train_loss"] for r in resumed_history] == [r["train_loss"] for r in history]


# --------------------------------------------------------------------------- (b) BatchNorm


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


# --------------------------------------------------------------------------- (c) K models by vmap

K_LRS = (1e-3, 3e-3, 1e-2)
K_BETAS = (0.5, 1.0, 2.0)
VAE_MODEL = VAE(hidden=(32,), latent_dim=4, num_pixels=64)
TX_ANY_LR = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)  # the rate is read from each opt_state


def sweep_step(state, batch):
    """A VAE step whose beta comes from the state, so it can differ per vmapped model."""
    loss_fn = vae.make_vae_loss(VAE_MODEL, "bernoulli", "stochastic", beta=state.model_state["beta"])
    return make_train_step(loss_fn, TX_ANY_LR)(state, batch)


def sweep_states():
    """K states from the same initial parameters (own copies: make_epoch donates its input)."""
    params = lambda: VAE_MODEL.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), jax.random.key(0))["params"]
    # rbg keys, as the presets use: each vmapped model must still draw from its own key (genjax.prng).
    return [TrainState.create(params(), optax.inject_hyperparams(optax.adam)(learning_rate=lr),
                              jax.random.key(10 + k, impl="rbg"),
                              model_state={"beta": jnp.float32(beta)})
            for k, (lr, beta) in enumerate(zip(K_LRS, K_BETAS))]


def test_k_models_vmapped_match_separate_runs(tmp_path):
    mesh, run_key, epochs = data_mesh(), jax.random.key(3, impl="rbg"), 2
    images = jax.random.randint(jax.random.key(1), (250, 8, 8, 1), 0, 256).astype(jnp.uint8)
    data = replicate({"image": images}, mesh)

    # Reference: the K runs one after another (one compiled epoch: lr and beta live in the state).
    separate = []
    one_epoch = make_epoch(sweep_step, 32, mesh)
    for state in sweep_states():
        for e in range(epochs):
            state, _ = one_epoch(state, data, epoch_key(run_key, e))
        separate.append(host(state))

    # K models: stack the K states on a leading axis; the batch is shared (in_axes None).
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *sweep_states())
    init = host(stacked)
    epoch_fn = make_epoch(jax.vmap(sweep_step, in_axes=(0, None)), 32, mesh)
    x_test = jnp.asarray(np.asarray(images[:64]) > 127, jnp.float32)

    def evaluate(state):  # fit wants scalars: one entry per model
        m = jax.vmap(lambda p: vae.evaluate(VAE_MODEL, p, x_test, jax.random.key(0, impl="rbg"), "bernoulli"))(
            state.params)
        return {f"neg_elbo_{k}": m["neg_elbo"][k] for k in range(len(K_LRS))}

    ckpt = Checkpointer(tmp_path / "ckpt")
    final, history = fit(replicate(stacked, mesh), epoch_fn, data, run_key, epochs, evaluate, ckpt, {}, tmp_path,
                         progress=False)
    ckpt.close()
    final = host(final)

    for k in range(len(K_LRS)):
        assert_trees_close(jax.tree.map(lambda a: a[k], final), separate[k], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(final.opt_state.hyperparams["learning_rate"], K_LRS, rtol=1e-6)
    # Each model used its own rate: the distance travelled from the shared init grows with it.
    moved = [max_abs_change(jax.tree.map(lambda a: a[k], final.params), jax.tree.map(lambda a: a[k], init.params))
             for k in range(len(K_LRS))]
    assert moved[0] < moved[1] < moved[2], moved
    assert all(np.isfinite(v) for v in history[-1].values())
    restored, _ = Checkpointer(tmp_path / "ckpt").restore(stacked)
    assert_trees_equal(restored, final)

    # Own shuffle per model: vmap the compiled epoch itself, over states and epoch keys.
    keys = jax.random.split(jax.random.key(9, impl="rbg"), len(K_LRS))
    own_order, m = jax.jit(jax.vmap(one_epoch, in_axes=(0, None, 0)))(
        jax.tree.map(lambda *xs: jnp.stack(xs), *sweep_states()), data, keys)
    # Each model used its own beta: loss = recon + beta_k KL, model by model (metrics: [K, num_batches]).
    betas = np.array(K_BETAS)[:, None]
    np.testing.assert_allclose(m["loss"], m["recon"] + betas * m["kl"], rtol=1e-5)
    assert np.ptp(np.asarray(m["loss"] - m["recon"]) / np.asarray(m["kl"])) > 1.0
    for k, (state, key) in enumerate(zip(sweep_states(), keys)):
        alone, _ = one_epoch(state, data, key)
        assert_trees_close(jax.tree.map(lambda a: a[k], own_order), alone, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- (d) LSTM, teacher forcing + scan sampler


class BinaryLSTM(nn.Module):
    """One step of an autoregressive LSTM: (carry, x_{t-1}) -> (carry, logit of p(x_t = 1 | x_<t))."""

    hidden: int = 16

    @nn.compact
    def __call__(self, carry, x_prev):
        carry, h = nn.OptimizedLSTMCell(self.hidden, name="cell")(carry, x_prev[:, None])
        return carry, nn.Dense(1, name="logit")(h)[:, 0]

    def zero_carry(self, batch: int):
        return jnp.zeros((batch, self.hidden)), jnp.zeros((batch, self.hidden))


LSTM = BinaryLSTM()


def sequence_log_prob(params, x):
    """Teacher forcing: log p(x) = sum_t log p(x_t | x_<t), inputs are x shifted right by one (x_0 = 0)."""
    inputs = jnp.concatenate([jnp.zeros_like(x[:, :1]), x[:, :-1]], axis=1)

    def body(carry, x_prev):
        return LSTM.apply({"params": params}, carry, x_prev)

    _, logits = jax.lax.scan(body, LSTM.zero_carry(x.shape[0]), inputs.T)
    return losses.bernoulli_log_likelihood(logits.T, x)


def lstm_loss(params, model_state, batch, key, step):
    nll = -masked_mean(sequence_log_prob(params, batch["x"]), batch)
    return nll, (model_state, {"nll": nll})


@functools.partial(jax.jit, static_argnames=("n", "length"))
def sample(params, key, n: int, length: int):
    """Ancestral sampling as one lax.scan over time; returns (x (n, length), log p(x))."""

    def body(carry, key):
        lstm_carry, x_prev, log_p = carry
        lstm_carry, logit = LSTM.apply({"params": params}, lstm_carry, x_prev)
        x = jax.random.bernoulli(key, jax.nn.sigmoid(logit)).astype(jnp.float32)
        return (lstm_carry, x, log_p + x * logit - jax.nn.softplus(logit)), x

    init = (LSTM.zero_carry(n), jnp.zeros((n,)), jnp.zeros((n,)))
    (_, _, log_p), xs = jax.lax.scan(body, init, jax.random.split(key, length))
    return xs.T, log_p


def markov_sequences(key, n, length, flip=0.1):
    """x_0 ~ Bernoulli(1/2), x_t = x_{t-1} XOR Bernoulli(flip)."""
    k0, k1 = jax.random.split(key)
    first = jax.random.bernoulli(k0, 0.5, (n, 1))
    flips = jax.random.bernoulli(k1, flip, (n, length - 1))
    return jnp.concatenate([first, first ^ (jnp.cumsum(flips, axis=1) % 2 == 1)], axis=1).astype(jnp.float32)


def test_lstm_teacher_forcing_and_scan_sampler_agree():
    length, flip = 16, 0.1
    mesh = data_mesh()
    data = replicate({"x": markov_sequences(jax.random.key(0), 1000, length, flip)}, mesh)  # last batch padded
    params = LSTM.init(jax.random.key(1), LSTM.zero_carry(1), jnp.zeros((1,)))["params"]
    tx = optax.adam(1e-2)
    state = TrainState.create(params, tx, jax.random.key(2))
    epoch_fn = make_epoch(make_train_step(lstm_loss, tx), 64, mesh)
    first_nll = None
    for e in range(6):
        state, metrics = epoch_fn(state, data, epoch_key(jax.random.key(3), e))
        first_nll = float(metrics["nll"][0]) if first_nll is None else first_nll
    entropy = np.log(2) + (length - 1) * -(flip * np.log(flip) + (1 - flip) * np.log(1 - flip))  # ~5.57 nats
    final_nll = float(np.mean(metrics["nll"][-4:]))
    assert first_nll > 10.0 and final_nll < entropy + 1.0, (first_nll, final_nll, entropy)

    xs, log_p = sample(state.params, jax.random.key(4), 256, length)
    # The sampler's running log-probability is the teacher-forced likelihood of what it drew.
    np.testing.assert_allclose(log_p, sequence_log_prob(state.params, xs), rtol=1e-5, atol=1e-4)
    flips = float(np.mean(np.abs(np.diff(np.asarray(xs), axis=1))))
    assert 0.05 < flips < 0.15, flips  # the samples have the data's flip rate
    # One compiled loop: the program does not grow with the sequence length.
    trace = jax.make_jaxpr(sample.__wrapped__, static_argnums=(2, 3))
    size = lambda n: len(str(trace(state.params, jax.random.key(0), 8, n)))
    assert size(16) == size(64)


# --------------------------------------------------------------------------- (e) two processes


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
    from jax.sharding import NamedSharding, PartitionSpec as P

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
