"""Which LSTM kernel ran: the spy (real calls only, recorded after they return) and its cross-check.

The cross-check reads the program the backend executes (torch's profiler ops, JAX's compiled HLO,
TensorFlow's graph ops), so a label the spy got wrong shows up as a mismatch. On CPU every backend
runs a loop; a layer setting that keeps Keras off its fused kernel is named in the label.
"""

import importlib

import numpy as np
import pytest

from bench import backends
from bench.backends import compare_kernels, kernel_family

pytestmark = pytest.mark.per_backend

X = np.random.default_rng(0).integers(1, 50, (4, 12)).astype("int32")  # no 0: a mask keeps every step

# What Keras 3.15 runs on CPU: the generic RNN loop, or torch's own loop after a fused input projection.
CPU_LOOP = {"tensorflow": "generic (tf.while_loop)", "jax": "generic (lax.scan)",
            "torch": "fused input projection + python per-timestep loop"}


def tiny(mask_zero: bool = False, recurrent_dropout: float = 0.0):
    """The benchmark model's shape (Embedding, two Bidirectional LSTMs, Dense), a few units wide."""
    import keras
    from keras import layers

    inputs = keras.Input((None,), dtype="int32")
    x = layers.Embedding(50, 8, mask_zero=mask_zero)(inputs)
    x = layers.Bidirectional(layers.LSTM(4, return_sequences=True, recurrent_dropout=recurrent_dropout))(x)
    x = layers.Bidirectional(layers.LSTM(4, recurrent_dropout=recurrent_dropout))(x)
    model = keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


@pytest.fixture
def adapter():
    found = backends.current()
    found.install_lstm_spy()
    found.take_lstm_paths()  # start from nothing seen
    return found


def test_building_a_model_records_no_kernel(adapter):
    # Keras builds symbolically (torch: on the "meta" device): nothing runs, so nothing is recorded.
    tiny()
    assert adapter.take_lstm_paths() == "unknown"


def test_the_loop_is_seen_by_the_spy_and_in_the_executed_program(adapter, backend_name):
    if adapter.device.kind == "gpu":
        pytest.skip("on a GPU Keras takes its fused cuDNN kernel")
    model = tiny()
    model.predict_on_batch(X)
    spied = adapter.take_lstm_paths()
    # Exactly the loop: Bidirectional's fused attempt raised NotImplementedError and recorded nothing.
    assert spied == CPU_LOOP[backend_name]
    check = adapter.kernel_cross_check(model, X, spied)
    assert check.observed.startswith("loop: ") and "12 timesteps" in check.observed
    assert check.verdict == "agrees" and check.family == "loop"
    assert adapter.take_lstm_paths() == "unknown"  # the cross-check's own trace added nothing


def test_a_wrong_label_is_reported_as_a_mismatch(adapter):
    if adapter.device.kind == "gpu":
        pytest.skip("on a GPU cuDNN is what runs")
    model = tiny()
    check = adapter.kernel_cross_check(model, X, "cudnn (fused bidirectional)")
    assert check.verdict.startswith("MISMATCH: the spy saw 'cudnn (fused bidirectional)' (cudnn)")
    assert check.family == "loop"  # what ran is the program's word, not the spy's


# Where a setting does not keep Keras off cuDNN on a GPU: TensorFlow's lstm hands a (right-padded) mask to
# CudnnRNNV3 (keras/src/backend/tensorflow/rnn.py: _cudnn_lstm); torch's and JAX's raise NotImplementedError.
ON_GPU = {("tensorflow", "mask"): "cudnn"}


@pytest.mark.parametrize(("setting", "label"), [
    ({"mask_zero": True}, "masked input"),
    ({"recurrent_dropout": 0.25}, "fused kernel not tried: layer settings"),
], ids=["mask", "recurrent_dropout"])
def test_a_setting_that_keeps_keras_off_the_fused_kernel_is_labelled(adapter, backend_name, setting, label):
    model = tiny(**setting)
    model.predict_on_batch(X)
    spied = adapter.take_lstm_paths()
    case = (backend_name, "mask" if "mask_zero" in setting else "recurrent_dropout")
    if adapter.device.kind == "gpu" and case in ON_GPU:
        assert spied == ON_GPU[case]
    else:
        assert spied == f"generic ({adapter.generic_loop}; {label})"
    assert adapter.kernel_cross_check(model, X, spied).verdict == "agrees"


def test_cudnn_runs_on_a_gpu(adapter):
    # The one test that needs a GPU (skipped without): the default model's LSTMs run cuDNN, by the spy and by
    # the executed program, on whichever backend runs it.
    if adapter.device.kind != "gpu":
        pytest.skip("needs a GPU: cuDNN runs only there")
    model = tiny()
    model.predict_on_batch(X)
    spied = adapter.take_lstm_paths()
    assert kernel_family(spied) == "cudnn", spied
    check = adapter.kernel_cross_check(model, X, spied)
    assert check.family == "cudnn" and check.verdict == "agrees", check


# Where Keras asks whether a GPU (and cuDNN) is there before it picks its LSTM kernel, per backend.
GPU_PROBE = {"tensorflow": ("keras.src.backend.tensorflow.rnn", "_is_gpu_available"),
             "jax": ("keras.src.backend.jax.rnn", "_is_gpu_available"),
             "torch": ("keras.src.backend.torch.rnn", "_is_cuda_cudnn_available")}


def test_jit_on_a_gpu_is_what_keras_makes_of_it(adapter, backend_name, monkeypatch):
    # Keras's own rule, run with its GPU probe answering yes: TensorFlow's LSTM sets supports_jit=False beside
    # cuDNN, and Keras compiles without XLA; the adapter's flag and the recorded jit_compile say the same.
    module, probe = GPU_PROBE[backend_name]
    monkeypatch.setattr(importlib.import_module(module), probe, lambda: True)
    import keras
    from keras import layers

    inputs = keras.Input((None,), dtype="int32")
    x = layers.Bidirectional(layers.LSTM(4))(layers.Embedding(50, 8)(inputs))
    model = keras.Model(inputs, layers.Dense(1)(x))
    model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=True)
    resolved = adapter.resolved_jit_compile(model)
    assert (resolved is True) == adapter.supports_jit_on_gpu
    if not adapter.supports_jit_on_gpu:
        assert resolved.startswith("False (jit_compile=True asked; Keras turned it off: supports_jit is False on "
                                   "LSTM")


@pytest.mark.parametrize(("label", "family"), [
    ("generic (lax.scan)", "loop"),
    ("generic (tf.while_loop; masked input)", "loop"),
    ("generic (python per-timestep loop; fused kernel not tried: layer settings)", "loop"),
    ("fused input projection + python per-timestep loop", "loop"),
    ("cudnn", "cudnn"),
    ("cudnn (fused bidirectional, torch._VF.lstm)", "cudnn"),
    ("cudnn (jax.experimental.rnn), generic (lax.scan)", "mixed (cudnn + loop)"),
    ("torch.nn.LSTM (cuDNN)", "cudnn"),
    ("torch.nn.LSTM (CUDA without cuDNN)", "cuda"),
    ("torch.nn.LSTM (CPU oneDNN)", "onednn"),
    ("torch.nn.LSTM (CPU ATen)", "aten"),
    ("jax.lax.scan (jax.jit, gpu, input projection hoisted)", "loop"),
    ("loop: 0 CudnnRNN* op, 4 While op in the traced graph of one forward pass of 12 timesteps", "loop"),
    ("mixed (cudnn + loop): 2 cuDNN RNN custom call, 2 HLO while loop", "mixed (cudnn + loop)"),
    ("unknown", "unknown"),
    ("", "unknown"),
])
def test_kernel_family(label, family):
    assert kernel_family(label) == family


def test_compare_kernels():
    program = "loop: 0 aten::_cudnn_rnn, 800 aten::mm/addmm in one forward pass of 200 timesteps"
    assert compare_kernels("fused input projection + python per-timestep loop", program) == "agrees"
    assert compare_kernels("cudnn", program).startswith("MISMATCH: the spy saw 'cudnn' (cudnn)")
    assert compare_kernels("unknown", program).startswith("not checked: the spy saw no LSTM call")
    assert compare_kernels("cudnn", "not checked: RuntimeError: boom") == "not checked: RuntimeError: boom"
    assert compare_kernels("cudnn", "unknown: 0 HLO while loop").startswith("not checked: the executed program")

