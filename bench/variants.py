"""Named variants: the backend switches users actually flip, as model-config overrides.

A variant's name is part of every benchmark name and result file, so runs of different variants
sit side by side in one report.
"""

from __future__ import annotations

DEFAULT_VARIANT = "default"

VARIANTS: dict[str, dict] = {
    DEFAULT_VARIANT: {},  # jit_compile="auto": XLA on TF and JAX, eager on torch
    "jit": {"jit_compile": True},  # torch: torch.compile through Keras
    "no-jit": {"jit_compile": False},  # TF and JAX eager (JAX still jits ops one by one)
    "bf16": {"dtype_policy": "mixed_bfloat16"},
    "fp16": {"dtype_policy": "mixed_float16"},
    "spe8": {"steps_per_execution": 8},  # fit runs 8 steps per compiled call: see the accuracy benchmark
}


def get_variant(name: str) -> dict:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}") from None
