"""The rules the backend libraries apply below Keras to pick an LSTM kernel, asked of the libraries themselves.

Backend-independent: each test calls the library's own predicate (torch's ``torch.backends.cudnn``
checks, ``torch.compiler.is_compiling``, jaxlib's cuDNN RNN lowering) with what a GPU would give it,
and checks that kerasbench's label, or its refusal, follows.
"""

import types

import pytest

from bench.backends import kernel_family

# --- torch: ATen picks cuDNN or its own CUDA cell below Keras (backend-independent: the rule, not a run) ----------


def _cuda(monkeypatch, *, enabled: bool = True, version: int = 91300, capability: tuple = (9, 0)) -> None:
    """Make torch's own cuDNN checks answer as on a CUDA build with a GPU; its dtype check stays torch's."""
    import torch

    # torch.backends.cudnn is a PropModule over the real module, whose globals is_acceptable reads.
    module = getattr(torch.backends.cudnn, "m", torch.backends.cudnn)
    monkeypatch.setattr(torch._C, "_get_cudnn_enabled", lambda: enabled)
    monkeypatch.setattr(module, "is_available", lambda: True)
    monkeypatch.setattr(module, "_init", lambda: True)
    monkeypatch.setattr(module, "version", lambda: version)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)


def _on_cuda(dtype_name: str) -> types.SimpleNamespace:
    import torch

    return types.SimpleNamespace(device=torch.device("cuda"), dtype=getattr(torch, dtype_name))


@pytest.mark.parametrize(("dtype", "cuda", "cudnn"), [
    ("float32", {}, True),
    ("float16", {}, True),
    ("float64", {}, True),
    ("bfloat16", {}, True),  # cuDNN 9.13 on sm_90 (an H200)
    ("bfloat16", {"version": 91000}, False),  # built with cuDNN 9.10
    ("bfloat16", {"capability": (7, 5)}, False),  # a T4
    ("float32", {"enabled": False}, False),  # torch.backends.cudnn.enabled = False
    ("bfloat16", {"enabled": False}, False),
])
def test_torch_label_follows_atens_cudnn_rule(monkeypatch, dtype, cuda, cudnn):
    from bench.backends.torch import aten_lstm_uses_cudnn, vf_lstm_label

    _cuda(monkeypatch, **cuda)
    uses, why = aten_lstm_uses_cudnn(_on_cuda(dtype))
    assert uses is cudnn and bool(why) is not cudnn
    label = vf_lstm_label("cudnn (fused bidirectional, torch._VF.lstm)", (_on_cuda(dtype),))
    assert kernel_family(label) == ("cudnn" if cudnn else "cuda"), label


def test_torchs_own_predicate_holds_the_dtypes_the_rule_assumes():
    # torch.backends.cudnn.is_acceptable's dtypes are ATen's use_cudnn's but bfloat16; a CPU tensor is refused.
    import torch

    from bench.backends.torch import aten_lstm_uses_cudnn

    assert {torch.float16, torch.float32, torch.float64} == torch.backends.cudnn.CUDNN_TENSOR_DTYPES
    uses, why = aten_lstm_uses_cudnn(torch.zeros(2))
    assert not uses and "is_acceptable is False for torch.float32 on cpu" in why


def test_torchs_loop_is_named_as_traced_by_torch_compile():
    # Keras skips cuDNN where torch.compiler.is_compiling() (torch/rnn.py: lstm, bidirectional_lstm): the label
    # asks the same predicate, here inside a real torch.compile trace.
    import torch

    from bench.backends.torch import LOOP_LABEL, loop_label

    assert loop_label() == LOOP_LABEL
    traced = torch.compile(loop_label, fullgraph=True)()
    assert traced == f"{LOOP_LABEL} (traced by torch.compile)" and kernel_family(traced) == "loop"


# --- JAX: jaxlib's cuDNN RNN lowering, which runs when Keras's jitted step compiles ------------------------------


def test_jaxlibs_cudnn_lowering_takes_the_dtypes_the_jax_adapter_allows():
    # jaxlib/gpu_rnn.py's lowering itself, called with a stub context: bfloat16 and float16 stop at its dtype
    # check; float32 and float64 pass it (and stop later, for want of the CUDA plugin on this machine).
    import jax
    import jaxlib.mlir.ir as ir
    from jaxlib import gpu_rnn

    from bench.backends.jax import JaxAdapter

    refused = set()
    for dtype in ("bfloat16", "float16", "float32", "float64"):
        aval = jax.core.ShapedArray((2, 3, 4), jax.numpy.dtype(dtype))
        ctx = types.SimpleNamespace(avals_out=[aval], avals_in=[aval])
        with pytest.raises(Exception) as raised, ir.Context(), ir.Location.unknown():
            gpu_rnn._rnn_fwd_lowering(None, "cu", ctx, None, None, None, None, None, input_size=4, hidden_size=4,
                                      num_layers=1, dropout=False, bidirectional=False, cudnn_allow_tf32=False)
        if "Unknown output type" in str(raised.value):
            refused.add(dtype)
    assert refused == {"bfloat16", "float16"}  # the variants bf16 and fp16 compute in
    assert JaxAdapter.supports_half_lstm_on_gpu is False and "Unknown output type" in JaxAdapter.why_not[
        "supports_half_lstm_on_gpu"]
