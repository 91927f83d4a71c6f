"""Named variants: the backend switches users actually flip, as model-config overrides or runtime switches.

A variant's name is part of every benchmark name and result file, so runs of different variants
sit side by side in one report. Most are model-config overrides (``VARIANTS``); a few are switches
of the backend's runtime (``RUNTIME``), which the plugin hands to ``bench.backends.configure``
before the backend runs anything.
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
    "flush-denormals": {},  # no model change: a runtime switch (RUNTIME)
}

# Variants that switch the backend's runtime: keyword arguments of bench.backends.configure.
RUNTIME: dict[str, dict] = {
    # torch.set_flush_denormal(True): denormal floats become zero on the CPU, as TensorFlow's and
    # XLA's CPU threads already do; LSTM gradients over long sequences can reach denormal range.
    "flush-denormals": {"flush_denormals": True},
}


# Variants Keras refuses on a backend, and Keras's reason: refused up front, not mid-run.
UNSUPPORTED: dict[tuple[str, str], str] = {
    ("spe8", "torch"): "Keras's PyTorch trainer requires steps_per_execution=1",
    ("flush-denormals", "tensorflow"): "it is a PyTorch switch; TensorFlow's CPU threads flush denormals already "
                                       "(each record's runtime.denormals shows what was observed)",
    ("flush-denormals", "jax"): "it is a PyTorch switch; XLA:CPU flushes denormals already "
                                "(each record's runtime.denormals shows what was observed)",
}


def check_supported(name: str, backend: str) -> None:
    """Raise ValueError when Keras does not support variant ``name`` on ``backend``."""
    reason = UNSUPPORTED.get((name, backend))
    if reason:
        raise ValueError(f"variant {name!r} cannot run on the {backend} backend: {reason}.")


def get_variant(name: str) -> dict:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}") from None


def runtime_switches(name: str) -> dict:
    """Keyword arguments for ``bench.backends.configure`` that variant ``name`` sets ({} for most)."""
    get_variant(name)  # unknown names fail the same way everywhere
    return dict(RUNTIME.get(name, {}))
