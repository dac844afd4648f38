"""The private TensorFlow, Keras and pandas APIs lossbench relies on, each isolated in one
function of `lossbench.training` or `lossbench.data.csvchunks`: these tests fail loudly when an
upgrade changes one (the code would otherwise fall back silently and run slower, or compute
AutoBalance's look-ahead wrongly)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from lossbench.training import adam_lookahead, kernel_caches_kept
from lossbench.training.bilevel import adam_moments
from lossbench.training.step_cache import CACHE_CLEARER, cache_clearer_module


def test_tensorflow_still_clears_its_kernel_caches_through_the_patched_function(monkeypatch):
    """`kernel_caches_kept` replaces `pywrap_tfe.TFE_ContextClearCaches`: it must exist, be what
    seeding and `clear_session` call, and be silenced inside the context (and only there)."""
    module = cache_clearer_module()
    real = getattr(module, CACHE_CLEARER, None)
    assert callable(real), f"TensorFlow has no {CACHE_CLEARER}: kernel_caches_kept does nothing"
    calls: list[object] = []

    def recording(handle):
        calls.append(handle)
        return real(handle)

    monkeypatch.setattr(module, CACHE_CLEARER, recording)
    (tf.constant(1.0) + 1.0).numpy()  # the eager context exists
    keras.utils.set_random_seed(0)
    seeding = len(calls)
    keras.backend.clear_session(free_memory=False)
    assert seeding >= 1 and len(calls) > seeding, "TensorFlow clears its caches another way"
    calls.clear()
    with kernel_caches_kept():
        keras.utils.set_random_seed(0)
        keras.backend.clear_session(free_memory=False)
    assert calls == []
    assert getattr(module, CACHE_CLEARER) is recording  # restored on the way out
    keras.utils.set_random_seed(0)
    assert len(calls) == 1


def test_adam_moments_are_the_slots_keras_adam_updates():
    """`adam_moments` reads Adam's private `_get_variable_index`, `_momentums` and `_velocities`:
    after one step they hold m = (1 - beta_1) g and v = (1 - beta_2) g^2 of each variable."""
    a = keras.Variable(np.array([1.0, -2.0], np.float32))
    b = keras.Variable(np.array([[0.5], [3.0], [-1.0]], np.float32))
    optimizer = keras.optimizers.Adam(learning_rate=0.1)
    optimizer.build([a, b])
    ga, gb = np.array([0.5, -1.0], np.float32), np.array([[2.0], [0.0], [-4.0]], np.float32)
    optimizer.apply_gradients([(ga, a), (gb, b)])
    for var, g in ((a, ga), (b, gb)):
        m, v = (keras.ops.convert_to_numpy(t) for t in adam_moments(optimizer, var))
        np.testing.assert_allclose(m, 0.1 * g, rtol=1e-6)
        np.testing.assert_allclose(v, 0.001 * g**2, rtol=1e-5)


def test_the_lookahead_is_the_step_keras_adam_takes():
    """AutoBalance's look-ahead restates Keras' Adam update from its private state: it must be
    the weights the optimizer's next real step gives."""
    variables = [keras.Variable(np.array([1.0, -2.0, 0.3], np.float32))]
    optimizer = keras.optimizers.Adam(learning_rate=0.05)
    optimizer.build(variables)
    optimizer.apply_gradients([(np.array([0.2, -0.7, 1.5], np.float32), variables[0])])
    grads = [tf.constant([-0.4, 0.9, 0.0])]
    (ahead,) = adam_lookahead(optimizer, variables, grads)
    optimizer.apply_gradients(zip(grads, variables, strict=True))
    assert keras.ops.convert_to_numpy(ahead) == pytest.approx(
        keras.ops.convert_to_numpy(variables[0]), rel=1e-6, abs=1e-7
    )


def test_a_pandas_parser_reused_for_another_buffer_reads_only_that_buffer():
    """`csvchunks._new_parser` and `_parse_buffer` use pandas' private `TextReader.load_buffer`,
    `_engine.read` and `_first_chunk`; without them a CSV is parsed in halves (slower, the same
    table), which `REUSE_PARSERS` says."""
    from lossbench.data import csvchunks

    assert csvchunks.REUSE_PARSERS, "pandas' C parser cannot be reused: CSVs parsed in halves"
    parser = csvchunks._new_parser(header=None, names=["n", "Label"])
    try:
        first = csvchunks._parse_buffer(parser, b"1.5,a\n2.5,b\n")
        again = csvchunks._parse_buffer(parser, memoryview(b"7,c\n,d\n9,e\n"))
    finally:
        parser.close()
    assert first["n"].tolist() == [1.5, 2.5] and list(first["Label"]) == ["a", "b"]
    assert np.array_equal(again["n"], [7.0, np.nan, 9.0], equal_nan=True)
    assert list(again["Label"]) == ["c", "d", "e"]
