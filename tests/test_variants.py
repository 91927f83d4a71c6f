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


# Per backend, the variants refused on a GPU only (the device is known once the backend has started), and those
# that run there but are the same program as another.
REFUSED_ON_GPU = {"torch": {}, "tensorflow": {},
                  "jax": {"bf16": "Unknown output type", "fp16": "Unknown output type"}}
SAME_ON_GPU = {"torch": {}, "jax": {}, "tensorflow": {"jit": "no-jit"}}


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
@pytest.mark.per_backend
def test_on_a_gpu_a_variant_is_refused_up_front_or_said_to_be_another(backend_name):
    adapter = backends.current()
    for name in variants.VARIANTS:
        if name in REFUSED[backend_name]:
            continue
        variants.check_supported(name, adapter, "cpu")
        assert variants.same_as(name, adapter, "cpu") is None
        refused = REFUSED_ON_GPU[backend_name].get(name)
        if refused is None:
            variants.check_supported(name, adapter, "gpu")
        else:
            with pytest.raises(ValueError, match=f"variant '{name}' cannot run on the {backend_name} backend on a "
                                                 f"GPU: .*{refused}"):
                variants.check_supported(name, adapter, "gpu")
        note = variants.same_as(name, adapter, "gpu")
        other = SAME_ON_GPU[backend_name].get(name)
        assert (note is None) == (other is None), (name, note)
        if other is not None:
            assert note.startswith(f"variant '{name}' on the {backend_name} backend on a GPU is the same as "
                                   f"'{other}': ") and "supports_jit=False" in note


def test_a_gpu_only_capability_is_asked_only_on_a_gpu():
    class NoHalf(Adapter):
        name = "nohalf"
        supports_half_lstm_on_gpu = False
        why_not = {"supports_half_lstm_on_gpu": "its fused LSTM does not compile for half precision"}  # noqa: RUF012

    variants.check_supported("bf16", NoHalf, "cpu")
    variants.check_supported("bf16", NoHalf)  # device not known yet: only device-independent needs are asked
    with pytest.raises(ValueError, match="variant 'fp16' cannot run on the nohalf backend on a GPU: its fused LSTM "
                                         "does not compile for half precision"):
        variants.check_supported("fp16", NoHalf, "gpu")
    for capability in variants.GPU_NEEDS.values():
        assert isinstance(getattr(Adapter, capability), bool), capability
    for capability, other in variants.GPU_SAME_AS.values():
        assert isinstance(getattr(Adapter, capability), bool) and other in variants.VARIANTS
