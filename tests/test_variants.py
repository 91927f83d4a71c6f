"""Variants (bench/variants.py): what Keras refuses on a backend is refused up front, by the adapter's flags."""

from __future__ import annotations

import re

import pytest

from bench import backends, variants
from bench.backends import Adapter, DeviceInfo

# Per backend, the variants Keras refuses there and the reason the user is shown (Keras's own).
REFUSED = {
    "torch": {"spe8": "Keras's PyTorch trainer requires steps_per_execution=1"},
    "tensorflow": {"flush-denormals": "it is a PyTorch switch; TensorFlow's CPU threads flush denormals already"},
    "jax": {"flush-denormals": "it is a PyTorch switch; XLA:CPU flushes denormals already"},
}


@pytest.mark.per_backend
def test_the_selected_backends_refusals_come_from_its_adapter(backend_name):
    adapter = backends.current()
    for name in variants.VARIANTS:
        reason = REFUSED[backend_name].get(name)
        if reason is None:
            variants.check_supported(name, adapter)
            continue
        expected = f"variant '{name}' cannot run on the {backend_name} backend: {reason}"
        with pytest.raises(ValueError, match=re.escape(expected)):
            variants.check_supported(name, adapter)


def test_a_variant_needs_a_flag_every_adapter_has():
    for capability in variants.NEEDS.values():
        assert isinstance(getattr(Adapter, capability), bool), capability


def test_a_missing_capability_without_a_reason_still_says_which():
    class Bare(Adapter):
        name = "bare"
        supports_steps_per_execution = False

    assert Bare.lacks("supports_devices") is None
    with pytest.raises(ValueError, match="variant 'spe8' cannot run on the bare backend: the bare backend has no "
                                         "supports_steps_per_execution"):
        variants.check_supported("spe8", Bare)


# ------------------------------------------------------------------------------------- precision

class _GpuAdapter(Adapter):
    """An adapter on a pretend GPU whose TF32 switches and compute capability a test sets."""

    name = "fake"

    def __init__(self, switches, capability):
        super().__init__()
        self._device = DeviceInfo("gpu", "Test GPU")
        self._switches, self._capability = switches, capability

    def _tf32_switches(self):
        return (*self._switches, "test switches")

    def _compute_capability(self):
        return self._capability


def test_precision_follows_the_dtype_policy_the_kernel_and_the_gpu():
    # torch's defaults on an H100-class GPU: matmuls fp32, cuDNN's LSTM tf32; any other LSTM kernel is matmuls.
    torch_like = _GpuAdapter((False, True), (9, 0))
    assert (torch_like.precision("float32", "cudnn").matmul, torch_like.precision("float32", "cudnn").rnn) == (
        "fp32", "tf32")
    assert torch_like.precision("float32", "loop").rnn == "fp32"
    # TF32 needs compute capability 8.0: a V100 (7.0) runs float32 whatever the switches say.
    assert torch_like.__class__((True, True), (7, 0)).precision("float32", "cudnn").rnn == "fp32"
    assert _GpuAdapter((True, True), (8, 0)).precision("float32", "cudnn").matmul == "tf32"
    unknown = _GpuAdapter((True, False), None).precision("float32", "cudnn")
    assert unknown.matmul.startswith("tf32 if the GPU has it") and unknown.rnn == "fp32"
    # A mixed policy computes in its 16-bit type, on any device.
    mixed = _GpuAdapter((True, True), (9, 0)).precision("mixed_bfloat16", "cudnn")
    assert (mixed.matmul, mixed.rnn) == ("bf16", "bf16") and "mixed_bfloat16" in mixed.how


def test_strict_fp32_is_a_runtime_switch():
    assert variants.get_variant("strict-fp32") == {}  # no model change
    assert variants.runtime_switches("strict-fp32") == {"strict_fp32": True}
