"""Named variants: the backend switches users actually flip, as model-config overrides or runtime switches.

A variant's name is part of every benchmark name and result file, so runs of different variants
sit side by side in one report. Most are model-config overrides (``VARIANTS``); a few are switches
of the backend's runtime (``RUNTIME``), which the plugin hands to ``bench.backends.configure``
before the backend runs anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.backends import Adapter

DEFAULT_VARIANT = "default"

VARIANTS: dict[str, dict] = {
    # jit_compile="auto": XLA on JAX, eager on torch; on TF never XLA for this model: Keras turns it off on
    # CPU-only machines, and on a GPU the LSTM does (supports_jit=False beside its cuDNN kernel).
    DEFAULT_VARIANT: {},
    "jit": {"jit_compile": True},  # XLA on TF (CPU only: see GPU_SAME_AS) and JAX; torch.compile through Keras
    "no-jit": {"jit_compile": False},  # TF and JAX eager (JAX still jits ops one by one)
    "bf16": {"dtype_policy": "mixed_bfloat16"},  # refused on a JAX GPU (GPU_NEEDS)
    "fp16": {"dtype_policy": "mixed_float16"},
    "spe8": {"steps_per_execution": 8},  # fit runs 8 steps per compiled call: see the accuracy benchmark
    "flush-denormals": {},  # no model change: a runtime switch (RUNTIME)
    "strict-fp32": {},  # no model change: TF32 off in every backend (RUNTIME)
}

# Variants that switch the backend's runtime: keyword arguments of bench.backends.configure.
RUNTIME: dict[str, dict] = {
    # torch.set_flush_denormal(True): denormal floats become zero on the CPU, as TensorFlow's and
    # XLA's CPU threads already do; LSTM gradients over long sequences can reach denormal range.
    "flush-denormals": {"flush_denormals": True},
    # On NVIDIA GPUs from Ampere on, float32 matmuls and cuDNN RNNs may run in TF32 (10-bit mantissa), and the
    # backends' defaults differ (TF and JAX allow it for matmuls, torch only for cuDNN): a backend comparison
    # in the default variant mixes precisions. This one turns TF32 off everywhere. No effect on CPUs.
    "strict-fp32": {"strict_fp32": True},
}


# The capability of the backend's adapter a variant needs (a flag of bench.backends.Adapter): where the
# adapter lacks it the variant is refused up front, with the adapter's reason (Keras's own), not mid-run.
NEEDS: dict[str, str] = {
    "spe8": "supports_steps_per_execution",
    "flush-denormals": "supports_flush_denormals",
}


# On a GPU, the capability a variant needs besides: known only once the device is, still before anything runs.
GPU_NEEDS: dict[str, str] = {
    "bf16": "supports_half_lstm_on_gpu",
    "fp16": "supports_half_lstm_on_gpu",
}

# On a GPU, variants that run but are the same program as another where the adapter lacks a capability:
# (capability, the variant it equals). Said up front and in each record's jit_compile.
GPU_SAME_AS: dict[str, tuple[str, str]] = {
    "jit": ("supports_jit_on_gpu", "no-jit"),
}


def check_supported(name: str, adapter: Adapter | type[Adapter], device: str | None = None) -> None:
    """Raise ValueError when variant ``name`` cannot run on ``adapter``'s backend (on ``device``, once known)."""
    why = adapter.lacks(NEEDS[name]) if name in NEEDS else None
    where = ""
    if why is None and device == "gpu" and name in GPU_NEEDS:
        why, where = adapter.lacks(GPU_NEEDS[name]), " on a GPU"
    if why:
        raise ValueError(f"variant {name!r} cannot run on the {adapter.name} backend{where}: {why}.")


def same_as(name: str, adapter: Adapter | type[Adapter], device: str) -> str | None:
    """Why variant ``name`` is the same program as another on ``adapter``'s backend on ``device``, or None."""
    if device != "gpu" or name not in GPU_SAME_AS:
        return None
    capability, other = GPU_SAME_AS[name]
    why = adapter.lacks(capability)
    return f"variant {name!r} on the {adapter.name} backend on a GPU is the same as {other!r}: {why}." if why else None


def get_variant(name: str) -> dict:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}") from None


def runtime_switches(name: str) -> dict:
    """Keyword arguments for ``bench.backends.configure`` that variant ``name`` sets ({} for most)."""
    get_variant(name)  # unknown names fail the same way everywhere
    return dict(RUNTIME.get(name, {}))
