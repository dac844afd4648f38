"""The losses outside TensorFlow: a plain `model.fit` under the JAX backend gives the TensorFlow
backend's values (SPEC 4.4), and no TensorFlow import remains under lossbench/losses/."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HELPER = Path(__file__).with_name("backend_fit.py")


def test_no_tensorflow_under_losses():
    for path in (ROOT / "lossbench" / "losses").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import tensorflow|from tensorflow)", text, re.M), path
        assert "tf." not in text, path


def run_backend(backend: str) -> dict:
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "JAX_PLATFORMS": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
    }
    proc = subprocess.run(
        [sys.executable, str(HELPER)], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT ") :])
    assert out["backend"] == backend
    return out["results"]


@pytest.mark.slow
def test_plain_fit_under_jax_equals_tensorflow():
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install 'lossbench[dev]' brings jax[cpu])")
    tf_res, jax_res = run_backend("tensorflow"), run_backend("jax")
    assert set(tf_res) == {"ce", "wce", "focal", "cb", "dwb", "la", "ldam", "vs", "pgfl"}
    for name, want in tf_res.items():
        got = jax_res[name]
        assert got["initial"] == pytest.approx(want["initial"], rel=1e-5), name
        np.testing.assert_allclose(got["history"], want["history"], rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(
            got["logits"], want["logits"], rtol=1e-5, atol=1e-5, err_msg=name
        )
        assert got["learned"] == pytest.approx(want["learned"], rel=1e-5), name
    # the callbacks changed the state between the epochs, under both backends
    assert tf_res["pgfl"]["learned"]["alpha_2"] != 1.0
    assert tf_res["ldam"]["learned"] == {"drw": 1.0}
