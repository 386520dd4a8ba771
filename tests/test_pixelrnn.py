"""The PixelRNN: its LSTM and its gradient against a hand-written PyTorch-order LSTM, the scan sampler
against teacher forcing, completion, and training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax.devices import data_mesh, replicate
from genjax.models.pixel_rnn import START, PixelRNN
from genjax.objectives import losses, pixelrnn
from genjax.training.step import TrainState, epoch_key, make_epoch, make_train_step

RBG = "rbg"  # the presets' key implementation


def rbg_key(seed: int) -> jax.Array:
    return jax.random.key(seed, impl=RBG)


def torch_lstm_step(p: dict, layers: int, token, state, xp=np):
    """One step of PyTorch's ``nn.LSTM`` + ``nn.Linear`` head, written out from PyTorch's
    documentation and sharing no code with genjax.models.lstm: gates in PyTorch's order (i, f, g, o),

        a = x_t W_ih + b_ih + h_{t-1} W_hh + b_hh,   i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g),
        o = sigmoid(a_o),   c_t = f c_{t-1} + i g,   h_t = o tanh(c_t),

    layer 0's input the embedding of ``token`` (the previous pixel), layer l's the h_t of layer l-1,
    and the logit h_t W_head + b_head. ``state``: per layer (h, c). ``xp``: numpy or jax.numpy."""
    hidden = p["w_hh_0"].shape[0]
    sigmoid = lambda a: 1.0 / (1.0 + xp.exp(-a))  # noqa: E731
    inp, new = p["embed"][token], []
    for l in range(layers):
        h, c = state[l]
        a = inp @ p[f"w_ih_{l}"] + p[f"b_ih_{l}"] + h @ p[f"w_hh_{l}"] + p[f"b_hh_{l}"]
        a_i, a_f, a_g, a_o = (a[:, j * hidden:(j + 1) * hidden] for j in range(4))
        c = sigmoid(a_f) * c + sigmoid(a_i) * xp.tanh(a_g)
        h = sigmoid(a_o) * xp.tanh(c)
        new.append((h, c))
        inp = h
    return new, inp @ p["head_w"][:, 0] + p["head_b"][0]


def previous_tokens(x) -> np.ndarray:
    """(T, B) inputs of teacher forcing: START, then pixels 0 .. T-2."""
    x = np.asarray(x).astype(np.int64)
    return np.concatenate([np.full((x.shape[0], 1), START), x[:, :-1]], axis=1).T


def numpy_lstm_logits(params, x, layers: int) -> np.ndarray:
    """Teacher-forced logits (B, T) of :func:`torch_lstm_step` in float64 NumPy, a Python loop over t."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    zeros = np.zeros((x.shape[0], p["w_hh_0"].shape[0]))
    state, logits = [(zeros, zeros)] * layers, []
    for token in previous_tokens(x):
        state, logit = torch_lstm_step(p, layers, token, state)
        logits.append(logit)
    return np.stack(logits, axis=1)


def jax_lstm_logits(params, x, layers: int) -> jax.Array:
    """The same :func:`torch_lstm_step` in jax.numpy, scanned, for autodiff's gradient."""
    zeros = jnp.zeros((x.shape[0], params["w_hh_0"].shape[0]))
    step = lambda state, token: torch_lstm_step(params, layers, token, state, xp=jnp)  # noqa: E731
    _, logits = jax.lax.scan(step, [(zeros, zeros)] * layers, jnp.asarray(previous_tokens(x)))
    return logits.T


def scanned_step_logits(model, params, x):
    """Teacher forcing through :meth:`PixelRNN.step` (the sampler's one-step function), scanned."""
    b = x.shape[0]
    table = model.apply({"params": params}, method="input_table")
    tokens = jnp.concatenate([jnp.full((b, 1), START, jnp.int32), x[:, :-1].astype(jnp.int32)], axis=1)
    step = lambda carry, tok: model.apply({"params": params}, carry, tok, table, method="step")  # noqa: E731
    _, logits = jax.lax.scan(step, model.apply({"params": params}, b, method="initial_carry"), tokens.T)
    return logits.T


@pytest.fixture(scope="module", params=[1, 2], ids=["1 layer", "2 layers"])
def small(request):
    model = PixelRNN(hidden=16, layers=request.param)
    x = jax.random.bernoulli(jax.random.key(0), 0.3, (6, 40)).astype(jnp.float32)
    params = model.init(jax.random.key(1), x[:1])["params"]
    return model, params, x


def saturating(params):
    """The parameters x 3: the gates leave their near-linear range (PyTorch's initialization keeps
    them close to 1/2 and 0), so an activation or a gate order that is wrong shows in the values."""
    return jax.tree.map(lambda a: 3.0 * a, params)


def test_teacher_forcing_and_the_step_match_a_hand_written_numpy_lstm(small):
    model, params, x = small
    params = saturating(params)
    want = numpy_lstm_logits(params, x, model.layers)
    assert np.std(want) > 0.05  # logits that vary with the pixels before them (0.11 to 0.4 here)
    # The fast path (lstm.layer, the head inside the top layer's loop) and the sampler's step.
    np.testing.assert_allclose(model.apply({"params": params}, x), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scanned_step_logits(model, params, x), want, rtol=1e-4, atol=1e-5)


def test_hand_written_gradient_matches_autodiff_of_the_independent_lstm(small):
    model, params, x = small
    params = saturating(params)

    def loss(logits):
        return -jnp.sum(losses.bernoulli_log_likelihood(logits, x))

    fast = jax.grad(lambda p: loss(model.apply({"params": p}, x)))(params)
    slow = jax.grad(lambda p: loss(jax_lstm_logits(p, x, model.layers)))(params)
    assert set(fast) == set(slow)
    for name in slow:
        assert np.all(np.isfinite(fast[name])), name
        assert float(jnp.max(jnp.abs(slow[name]))) > 0, name  # every parameter gets a gradient
        np.testing.assert_allclose(fast[name], slow[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_sampler_fed_the_true_pixels_accumulates_the_teacher_forced_likelihood(small):
    model, params, x = small
    n, length = x.shape
    xs, log_p = pixelrnn.sample(model, params, rbg_key(2), n, length, given=x, known=jnp.ones(length, bool))
    np.testing.assert_array_equal(xs, x)
    teacher = losses.bernoulli_log_likelihood(model.apply({"params": params}, x), x)
    np.testing.assert_allclose(log_p, teacher, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(pixelrnn.log_likelihood(model, params, x, chunk=4), teacher, rtol=1e-5, atol=1e-4)


def test_samples_are_binary_reproducible_and_score_their_own_likelihood(small):
    model, params, _ = small
    a, log_a = pixelrnn.sample(model, params, rbg_key(3), 32, 40)
    b, _ = pixelrnn.sample(model, params, rbg_key(3), 32, 40)
    c, _ = pixelrnn.sample(model, params, rbg_key(4), 32, 40)
    assert a.shape == (32, 40) and a.dtype == jnp.float32
    assert set(np.unique(np.asarray(a))) <= {0.0, 1.0}
    np.testing.assert_array_equal(a, b)  # same key, same samples
    assert np.mean(np.asarray(a) != np.asarray(c)) > 0.1  # another key, other samples
    assert len({tuple(row) for row in np.asarray(a)}) == 32  # the 32 images differ from each other
    np.testing.assert_allclose(log_a, losses.bernoulli_log_likelihood(model.apply({"params": params}, a), a),
                               rtol=1e-5, atol=1e-4)


def test_zero_temperature_follows_the_per_pixel_argmax(small):
    model, params, _ = small
    greedy, _ = pixelrnn.sample(model, params, rbg_key(5), 4, 40, temperature=0.0)
    # Each pixel is the likelier value given the pixels before it, on its own sequence.
    logits = model.apply({"params": params}, greedy)
    np.testing.assert_array_equal(greedy, (logits > 0).astype(jnp.float32))
    assert np.all(np.asarray(greedy) == np.asarray(greedy)[:1])  # no randomness: every row the same path
    cold, _ = pixelrnn.sample(model, params, rbg_key(6), 4, 40, temperature=1e-4)
    np.testing.assert_array_equal(cold, greedy)


def test_completion_keeps_the_given_pixels_and_varies_the_rest(small):
    model, params, x = small
    rows, width = 3, 8  # 40 pixels as 5 rows of 8: the first 24 are given
    done = pixelrnn.complete(model, params, rbg_key(7), x[:2], rows, 6, width=width)
    assert done.shape == (2, 6, 40)
    given = rows * width
    np.testing.assert_array_equal(done[:, :, :given], jnp.broadcast_to(x[:2, None, :given], (2, 6, given)))
    rest = np.asarray(done[:, :, given:])
    assert set(np.unique(rest)) <= {0.0, 1.0}
    assert len({tuple(r) for r in rest[0]}) > 1  # completions of one image differ


def test_the_sampler_is_one_compiled_loop(small):
    model, params, _ = small
    trace = lambda n: str(jax.make_jaxpr(  # noqa: E731
        lambda p, k: pixelrnn.sample.__wrapped__(model, p, k, 4, n))(params, rbg_key(0)))
    # The program does not grow with the number of pixels (only the loop's length changes).
    assert trace(40).count("\n") == trace(400).count("\n")
    assert "length=400" in trace(400)  # ... a loop over the 400 pixels


def test_a_short_run_on_mnist_lowers_the_test_nll(mnist):
    train, test = mnist
    model = PixelRNN(hidden=32)
    mesh = data_mesh()
    data = replicate({"image": jnp.asarray(train.images[:2048])}, mesh)
    x_test = pixelrnn.flat_binary(jnp.asarray(test.images[:256]))
    params = model.init(jax.random.key(0), x_test[:1])["params"]
    tx = optax.adamw(3e-3)
    state = TrainState.create(params, tx, rbg_key(1))
    nll = lambda s: -float(jnp.mean(pixelrnn.log_likelihood(model, s.params, x_test)))  # noqa: E731
    before = nll(state)
    epoch_fn = make_epoch(make_train_step(pixelrnn.make_loss(model), tx), 128, mesh)
    for e in range(3):
        state, metrics = epoch_fn(state, data, epoch_key(rbg_key(2), e))
    after = nll(state)
    assert np.all(np.isfinite(metrics["nll"]))
    assert before > 500  # about 784 ln 2 = 543 nats at initialization
    assert after < 260, (before, after)  # 3 short epochs: already far below an untrained model
    # The training loss is the same quantity: NLL per image, averaged over the batch.
    assert float(np.mean(metrics["nll"][-4:])) < before
