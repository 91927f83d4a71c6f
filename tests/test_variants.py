"""Variants (bench/variants.py): what Keras refuses on a backend is refused up front, by the adapter's flags."""

from __future__ import annotations

import re

import pytest

from bench import backends, variants
from bench.backends import Adapter

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
