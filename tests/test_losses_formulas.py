"""Every loss against an independent NumPy reference of its SPEC section 4 formula.

Also: the identities with `ce`, DWB's autodiff gradient against its closed form, AMRL for K = 2
against the seed notebook's binary form, integer vs one-hot labels, and finite values and
gradients for huge logits and a class with a single training sample.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from lossbench import losses as L

# ----------------------------------------------------------------------------------------------
# NumPy references (written from the SPEC, not from the code under test)


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def np_logsumexp(z: np.ndarray, axis: int = 1) -> np.ndarray:
    m = z.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def pick(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    return a[np.arange(len(y)), y]


def ref_cb_weights(n: np.ndarray, beta: float) -> np.ndarray:
    w = (1.0 - beta) / (1.0 - beta**n)
    return w * len(n) / w.sum()


def ref_ce(z, y, n):
    return -pick(np_log_softmax(z), y)


def ref_wce(z, y, n, weights="inverse", beta=0.999):
    k = len(n)
    if isinstance(weights, list):
        w = np.array(weights)
    elif weights == "inverse":
        w = n.sum() / (k * n)
    elif weights == "sqrt":
        w = np.sqrt(n.sum() / (k * n))
    elif weights == "effective":
        w = ref_cb_weights(n, beta)
    else:
        w = np.ones(k)
    return w[y] * ref_ce(z, y, n)


def ref_focal(z, y, n, gamma=2.0, alpha=None):
    k = len(n)
    if alpha is None:
        a = np.ones(k)
    elif isinstance(alpha, list):
        a = np.array(alpha)
    elif k == 2:
        pos = 0 if n[0] < n[1] else 1
        a = np.array([1.0 - alpha, 1.0 - alpha])
        a[pos] = alpha
    else:
        a = np.full(k, alpha)
    p = pick(np.exp(np_log_softmax(z)), y)
    return -a[y] * (1.0 - p) ** gamma * np.log(p)


def ref_cb(z, y, n, beta=0.999, base="ce", gamma=2.0):
    w = ref_cb_weights(n, beta)
    b = ref_ce(z, y, n) if base == "ce" else ref_focal(z, y, n, gamma=gamma)
    return w[y] * b


def ref_dwb(z, y, n, reg_weight=1.0):
    w = np.log(n.max() / n) + 1.0
    p = pick(np.exp(np_log_softmax(z)), y)
    return -(w[y] ** (1.0 - p)) * np.log(p) - reg_weight * p * (1.0 - p)


def ref_amrl(z, y, n, m=1.0, lam=1.0, beta=None, weights="prior"):
    k = len(n)
    minority = n < n.sum() / k
    lam_v = np.broadcast_to(lam, k)
    beta_v = np.where(minority, 2.0, 1.0) if beta is None else np.broadcast_to(beta, k)
    m_v = np.array(m) if isinstance(m, list) else m * (n.min() / n) ** 0.25
    w = 1.0 - n / n.sum() if weights == "prior" else np.ones(k)
    others = z.copy()
    others[np.arange(len(y)), y] = -np.inf
    s = pick(z, y) - np_logsumexp(others)
    hinge = np.maximum(0.0, m_v[y] - s)
    return w[y] * ref_ce(z, y, n) + lam_v[y] * hinge ** beta_v[y]


def ref_la(z, y, n, tau=1.0):
    return -pick(np_log_softmax(z + tau * np.log(n / n.sum())), y)


def ref_ldam(z, y, n, max_margin=0.5, s=None, head="cosine", drw_weights=None):
    """z: the model's logits (s * cos for the cosine head); margins scaled by s; the returned
    per-sample values average (Keras' batch mean) to the weighted mean sum(w l) / sum(w)."""
    s = (30.0 if head == "cosine" else 1.0) if s is None else s
    delta = n**-0.25
    delta = max_margin * delta / delta.max()
    zz = z.copy()
    zz[np.arange(len(y)), y] -= s * delta[y]
    w = np.ones(len(n)) if drw_weights is None else drw_weights
    return -w[y] * pick(np_log_softmax(zz), y) / w[y].mean()


def ref_vs(z, y, n, gamma=0.3, tau=1.0, weights="none", l=None, delta=None):  # noqa: E741
    k = len(n)
    d = (n / n.max()) ** gamma if delta is None else np.array(delta)
    off = tau * np.log(n / n.sum()) if l is None else np.array(l)
    w = np.ones(k) if weights == "none" else n.sum() / (k * n)
    return -w[y] * pick(np_log_softmax(z * d + off), y)


# name, params, reference
CASES = [
    ("ce", {}, ref_ce),
    ("wce", {}, ref_wce),
    ("wce", {"weights": "sqrt"}, ref_wce),
    ("wce", {"weights": "effective", "beta": 0.99}, ref_wce),
    ("wce", {"weights": "none"}, ref_wce),
    ("focal", {}, ref_focal),
    ("focal", {"gamma": 0.5}, ref_focal),
    ("focal", {"gamma": 1, "alpha": 0.25}, ref_focal),
    ("cb", {}, ref_cb),
    ("cb", {"beta": 0.99, "base": "focal", "gamma": 1.5}, ref_cb),
    ("dwb", {}, ref_dwb),
    ("dwb", {"reg_weight": 0.3}, ref_dwb),
    ("amrl", {}, ref_amrl),
    ("amrl", {"m": 0.5, "lam": 0.7, "beta": 1.5, "weights": "none"}, ref_amrl),
    ("pgfl", {}, ref_focal),
    ("la", {}, ref_la),
    ("la", {"tau": 0.5}, ref_la),
    ("ldam", {}, ref_ldam),
    ("ldam", {"max_margin": 1.0, "s": 3.0}, ref_ldam),
    ("ldam", {"head": "linear"}, ref_ldam),
    ("vs", {}, ref_vs),
    ("vs", {"gamma": 0.5, "tau": 0.3, "weights": "inverse"}, ref_vs),
    ("autobalance", {}, ref_vs),
]


def make_problem(k: int, seed: int, batch: int = 40, scale: float = 3.0, single: bool = True):
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 500, size=k).astype(np.float64)
    if single:
        n[rng.integers(k)] = 1.0  # a class with one training sample
    z = rng.normal(scale=scale, size=(batch, k))
    y = rng.integers(0, k, size=batch)
    return n, z, y


def per_sample(loss, y, z) -> np.ndarray:
    return loss.call(y, tf.constant(z)).numpy()


@pytest.mark.parametrize("k", [2, 3, 11])
@pytest.mark.parametrize("name,params,ref", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_matches_numpy_reference(name, params, ref, k):
    n, z, y = make_problem(k, seed=k * 100 + len(params))
    loss = L.get(name, n.astype(int).tolist(), **params)
    loss64 = type(loss).from_config({**loss.get_config(), "dtype": "float64"})
    expected = ref(z, y, n, **params)
    got = per_sample(loss64, y, z)
    assert got.shape == (len(y),)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-10)
    # Keras reduction: sum over the batch divided by the batch size
    np.testing.assert_allclose(float(loss64(y, z)), expected.mean(), rtol=1e-5)
    # and the default float32 loss agrees to float32 precision
    np.testing.assert_allclose(
        per_sample(loss, y, z.astype(np.float32)), expected, rtol=2e-3, atol=1e-5
    )


def test_autobalance_uses_current_l_and_delta():
    n, z, y = make_problem(4, seed=7)
    loss = L.AutoBalanceLoss(n.astype(int), dtype="float64")
    rng = np.random.default_rng(1)
    l_new, d_new = rng.normal(size=4), rng.uniform(0.2, 2.0, size=4)
    loss.l.assign(l_new)
    loss.log_delta.assign(np.log(d_new))
    expected = ref_vs(z, y, n, l=l_new, delta=d_new)
    np.testing.assert_allclose(per_sample(loss, y, z), expected, rtol=1e-6)


def test_ldam_drw_weights_follow_epochs():
    n, z, y = make_problem(3, seed=3)
    loss = L.LDAMLoss(n.astype(int), dtype="float64")
    loss.on_train_begin(10)
    loss.on_epoch_begin(7)  # int(0.8 * 10) = 8: not yet
    assert loss.learned_params() == {"drw": 0.0}
    np.testing.assert_allclose(per_sample(loss, y, z), ref_ldam(z, y, n), rtol=1e-6)
    loss.on_epoch_begin(8)
    assert loss.learned_params() == {"drw": 1.0}
    w = ref_cb_weights(n, 0.9999)
    np.testing.assert_allclose(w.sum(), 3.0)
    np.testing.assert_allclose(per_sample(loss, y, z), ref_ldam(z, y, n, drw_weights=w), rtol=1e-6)


def test_ldam_largest_margin_is_rarest_class():
    loss = L.LDAMLoss([1000, 16, 1])
    margins = loss.margins.numpy()
    assert margins.max() == pytest.approx(0.5)
    assert np.argmax(margins) == 2
    np.testing.assert_allclose(margins, 0.5 * np.array([1000, 16, 1]) ** -0.25, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# identities with ce


IDENTITIES = [
    ("focal", {"gamma": 0}),
    ("focal", {"gamma": 0, "alpha": "ones"}),
    ("cb", {"beta": 1e-12}),
    ("cb", {"beta": 1e-12, "base": "focal", "gamma": 0}),
    ("la", {"tau": 0}),
    ("vs", {"gamma": 0, "tau": 0}),
    ("autobalance", {"gamma": 0, "tau": 0}),
    ("amrl", {"lam": 0, "weights": "none"}),
    ("pgfl", {"gamma": 0}),
    ("wce", {"weights": "none"}),
]


@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize(
    "name,params", IDENTITIES, ids=[f"{c[0]}-{i}" for i, c in enumerate(IDENTITIES)]
)
def test_identity_with_ce(name, params, k):
    n, z, y = make_problem(k, seed=11 + k)
    if params.get("alpha") == "ones":
        params = {**params, "alpha": [1] * k}
    loss = L.get(name, n.astype(int).tolist(), **params)
    loss64 = type(loss).from_config({**loss.get_config(), "dtype": "float64"})
    np.testing.assert_allclose(per_sample(loss64, y, z), ref_ce(z, y, n), rtol=1e-9)


def test_dwb_first_term_with_unit_weights_is_ce():
    _, z, y = make_problem(4, seed=5)
    balanced = [30, 30, 30, 30]  # w_k = log(1) + 1 = 1
    loss = L.DWBLoss(balanced, reg_weight=0, dtype="float64")
    np.testing.assert_allclose(per_sample(loss, y, z), ref_ce(z, y, None), rtol=1e-12)
    # with the regulariser the difference is exactly -p_y (1 - p_y)
    full = L.DWBLoss(balanced, dtype="float64")
    p = pick(np.exp(np_log_softmax(z)), y)
    np.testing.assert_allclose(per_sample(full, y, z), ref_ce(z, y, None) - p * (1 - p), rtol=1e-9)


# ----------------------------------------------------------------------------------------------
# DWB gradient


@pytest.mark.parametrize("reg_weight", [0.0, 1.0])
@pytest.mark.parametrize("k", [2, 3, 11])
def test_dwb_gradient_matches_closed_form(k, reg_weight):
    n, z, y = make_problem(k, seed=21 + k)
    loss = L.DWBLoss(n.astype(int), reg_weight=reg_weight, dtype="float64")
    zt = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(zt)
        total = tf.reduce_sum(loss.call(y, zt))
    grad = tape.gradient(total, zt).numpy()

    w = (np.log(n.max() / n) + 1.0)[y][:, None]
    probs = np.exp(np_log_softmax(z))
    p = pick(probs, y)[:, None]
    onehot = np.eye(k)[y]
    first = w ** (1 - p) * (1 - p * np.log(p) * np.log(w)) * (probs - onehot)
    # regulariser R = -p_y (1 - p_y): dR/dz_i = (1 - 2 p_y) * p_y * (p_i - 1[i = y])
    reg = (1 - 2 * p) * p * (probs - onehot)
    np.testing.assert_allclose(grad, first + reg_weight * reg, rtol=1e-6, atol=1e-12)


def test_dwb_gradient_is_not_the_papers_sign_slip():
    n, z, y = make_problem(3, seed=4, single=False)
    n = np.array([1000.0, 50.0, 3.0])
    loss = L.DWBLoss(n.astype(int), reg_weight=0, dtype="float64")
    zt = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(zt)
        total = tf.reduce_sum(loss.call(y, zt))
    grad = tape.gradient(total, zt).numpy()
    w = (np.log(n.max() / n) + 1.0)[y][:, None]
    probs = np.exp(np_log_softmax(z))
    p = pick(probs, y)[:, None]
    slip = w ** (1 - p) * (1 + p * np.log(p) * np.log(w)) * (probs - np.eye(3)[y])
    assert not np.allclose(grad, slip, rtol=1e-3)


# ----------------------------------------------------------------------------------------------
# AMRL for K = 2 = the notebook's binary AMRL


def notebook_binary_amrl(z, y, n0, n1, m1=1.0, m0=-1.0, lam1=2.0, lam0=1.0, b1=2.0, b0=1.0):
    """The seed notebook's binary AMRL on one positive logit z (class 1 = minority positive)."""
    bce = np.where(y == 1, np.logaddexp(0.0, -z), np.logaddexp(0.0, z))
    w1, w0 = n0 / (n0 + n1), n1 / (n0 + n1)
    pos = w1 * bce + lam1 * np.maximum(0.0, m1 - z) ** b1
    neg = w0 * bce + lam0 * np.maximum(0.0, z - m0) ** b0
    return np.where(y == 1, pos, neg)


@pytest.mark.parametrize("seed", [0, 1])
def test_amrl_k2_equals_notebook_binary_form(seed):
    rng = np.random.default_rng(seed)
    z2 = rng.normal(scale=2.5, size=(64, 2))
    y = rng.integers(0, 2, size=64)
    n0, n1 = 900, 37
    # the notebook's constants: m1 = 1, m0 = -1 (m_0 = 1), lambda1 = 2, lambda0 = 1
    loss = L.AMRLLoss([n0, n1], m=[1.0, 1.0], lam=[1.0, 2.0], dtype="float64")
    expected = notebook_binary_amrl(z2[:, 1] - z2[:, 0], y, n0, n1)
    np.testing.assert_allclose(per_sample(loss, y, z2), expected, rtol=1e-9)
    # both hinge branches are exercised
    z = z2[:, 1] - z2[:, 0]
    assert ((y == 1) & (z < 1)).any() and ((y == 0) & (z > -1)).any()


def test_amrl_k2_notebook_margin_is_minus_m0():
    rng = np.random.default_rng(3)
    z2 = rng.normal(scale=2.0, size=(50, 2))
    y = rng.integers(0, 2, size=50)
    loss = L.AMRLLoss([500, 60], m=[0.4, 1.7], lam=[0.5, 3.0], dtype="float64")
    z = z2[:, 1] - z2[:, 0]
    expected = notebook_binary_amrl(z, y, 500, 60, m1=1.7, m0=-0.4, lam1=3.0, lam0=0.5)
    np.testing.assert_allclose(per_sample(loss, y, z2), expected, rtol=1e-9)


# ----------------------------------------------------------------------------------------------
# labels: integer, (batch, 1) and one-hot


@pytest.mark.parametrize("name", L.names())
def test_integer_and_onehot_labels_agree(name):
    n, z, y = make_problem(4, seed=31)
    loss = L.get(name, n.astype(int).tolist())
    zf = z.astype(np.float32)
    v_int = float(loss(y, zf))
    v_col = float(loss(y[:, None], zf))
    v_hot = float(loss(np.eye(4, dtype=np.float32)[y], zf))
    v_i64 = float(loss.call(tf.constant(y, tf.int64), zf).numpy().mean())
    assert v_int == pytest.approx(v_col, rel=1e-6)
    assert v_int == pytest.approx(v_hot, rel=1e-6)
    assert v_int == pytest.approx(v_i64, rel=1e-6)


# ----------------------------------------------------------------------------------------------
# numerical stability


def extreme_logits(k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.choice([-1e4, 1e4, 0.0], size=(24, k)).astype(np.float32)
    y = rng.integers(0, k, size=24)
    y[:4] = 1  # the single-sample class appears in the batch
    z[0] = -1e4
    z[0, (y[0] + 1) % k] = 1e4  # confidently wrong
    z[1] = -1e4
    z[1, y[1]] = 1e4  # confidently right
    z[2] = 1e4  # all equal and huge
    return z, y


@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize("name", L.names())
def test_finite_for_huge_logits_and_single_sample_class(name, k):
    counts = [5000] + [1] + [40] * (k - 2)  # class 1 has one training sample
    loss = L.get(name, counts)
    z, y = extreme_logits(k, seed=k)
    zt = tf.constant(z)
    extra = list(loss.upper_variables or [])
    with tf.GradientTape() as tape:
        tape.watch(zt)
        values = loss.call(y, zt)
        total = tf.reduce_mean(values)
    grads = tape.gradient(total, [zt, *extra])
    assert np.all(np.isfinite(values.numpy())), values.numpy()
    assert all(np.all(np.isfinite(tf.convert_to_tensor(g).numpy())) for g in grads)
    # the confidently wrong sample has a huge loss, the right one (almost) none
    assert values.numpy()[0] > 100.0
    if name in ("ce", "la", "focal", "pgfl"):
        assert values.numpy()[1] < 1e-3
