"""The settings that take one of a few values, as `Literal` types: declared once here, read by the
CLI's option types, the settings edge's rules, the config's option fields, and the models and
training code.

A leaf module (it imports nothing from lossbench), so every layer can use it without a cycle.
"""

from __future__ import annotations

from typing import Literal, get_args

Preset = Literal["cicids2017", "cicids2018", "none", "auto"]
NanPolicy = Literal["drop", "median", "error"]
Scaler = Literal["minmax", "standard"]
ModelName = Literal["cnn1d", "mlp"]
Select = Literal["macro_f1", "nll", "auprc", "balanced_accuracy"]  # SPEC 5.1
Device = Literal["auto", "cpu", "gpu"]
Jit = Literal["auto", "on", "off"]
Precision = Literal["float32", "mixed_bfloat16", "mixed_float16"]  # SPEC 7
Executor = Literal["local", "ray"]
Plots = Literal["summary", "runs"]
Task = Literal["multiclass", "binary"]  # issue 33: binary = negative class against the rest

#: The selection criteria (SPEC 5.1), in the order `--help` lists them.
SELECT_CRITERIA: tuple[str, ...] = get_args(Select)
