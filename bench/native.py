"""Native references: the benchmark model written directly in PyTorch and in JAX, without Keras.

Timing these next to Keras's own steps gives "Keras on backend / native" per backend: how much
Keras's abstraction costs over code a user would write by hand for that framework. Each reference
starts from the weights of the Keras model it is given and does the same math as Keras:

* the same layers: Embedding -> Bidirectional LSTM (sequences) -> Bidirectional LSTM (last
  state) -> Dense(1, sigmoid); backward directions read the sequence reversed and, as Keras's
  Bidirectional does, their sequence output is re-reversed and concatenated after the forward one;
* the same loss: binary cross-entropy on the sigmoid output, clipped to [eps, 1 - eps] as Keras
  does, mean over the batch;
* the same optimizer: Keras's Adam update, ``v -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``
  (settings read from the compiled Keras optimizer: lr 0.001, 0.9, 0.999, eps 1e-7 by default).

PyTorch runs ``torch.nn.LSTM`` (cuDNN on CUDA, oneDNN's fused kernel on CPU) and
``torch.optim.Adam``; JAX runs a ``jax.lax.scan`` LSTM under ``jax.jit`` with a hand-written
Adam (optax is not a dependency), its input projection hoisted out of the loop except on CPU.
TensorFlow has no native reference: raw TF ops would not be what a TensorFlow user runs (that is
tf.keras, i.e. Keras itself, or cuDNN through Keras).

Torch and JAX are imported inside the functions, as everywhere in kerasbench, so importing this
module does not start a backend.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from bench import backend

SUPPORTED = ("torch", "jax")
UNSUPPORTED_REASON = (
    "no native reference for the tensorflow backend: a TensorFlow user's LSTM is tf.keras, which is Keras itself"
)

# One direction of one LSTM layer, in Keras's layout: kernel (input_dim, 4 * units),
# recurrent_kernel (units, 4 * units), bias (4 * units,), gates in the order i, f, c, o.
LstmWeights = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class KerasWeights:
    """The Keras model's weights as NumPy copies, grouped by layer, in Keras's layout."""

    embeddings: np.ndarray  # (max_features, embed_dim)
    lstm1: tuple[LstmWeights, LstmWeights]  # (forward, backward)
    lstm2: tuple[LstmWeights, LstmWeights]
    dense: tuple[np.ndarray, np.ndarray]  # kernel (2 * units, 1), bias (1,)

    def as_list(self) -> list[np.ndarray]:
        """The same order as ``keras_model.get_weights()``."""
        return [self.embeddings, *itertools.chain(*self.lstm1, *self.lstm2), *self.dense]


@dataclass(frozen=True)
class AdamSettings:
    learning_rate: float
    beta_1: float
    beta_2: float
    epsilon: float


class NativeModel(Protocol):
    """What both references offer; batches are staged once with ``stage`` before any timing."""

    def stage(self, x: Any, y: Any) -> tuple[Any, Any]: ...

    def train_on_batch(self, x: Any, y: Any) -> float: ...

    def predict_on_batch(self, x: Any) -> np.ndarray: ...

    def get_weights(self) -> list[np.ndarray]: ...


def is_supported(name: str | None = None) -> bool:
    """Whether the (selected) backend has a native reference."""
    return (name or backend.selected_backend()) in SUPPORTED


def build_native(keras_model: Any) -> NativeModel:
    """A native copy of ``keras_model`` (same weights, same optimizer settings) for the current backend."""
    name = backend.selected_backend()
    if name not in SUPPORTED:
        raise NotImplementedError(UNSUPPORTED_REASON)
    weights, adam, clip_eps = keras_weights(keras_model), adam_settings(keras_model), _keras_epsilon()
    if name == "torch":
        return TorchNative(weights, adam, clip_eps)
    return JaxNative(weights, adam, clip_eps)


def native_train_step(keras_model: Any, batches: list[tuple[Any, Any]]) -> Callable[[], float]:
    """One native optimizer step per call, cycling through ``batches``; returns the loss when the device is done.

    Like Keras's ``train_on_batch`` (which returns NumPy logs), each step brings its loss to the host.
    """
    native = build_native(keras_model)
    cycle = itertools.cycle([native.stage(x, y) for x, y in batches])

    def step() -> float:
        x, y = next(cycle)
        return native.train_on_batch(x, y)

    return step


def native_predict_step(keras_model: Any, batches: list[tuple[Any, Any]]) -> Callable[[], np.ndarray]:
    """One native inference batch per call, returned as NumPy like Keras's ``predict_on_batch``."""
    native = build_native(keras_model)
    cycle = itertools.cycle([native.stage(x, y) for x, y in batches])

    def step() -> np.ndarray:
        x, _ = next(cycle)
        return native.predict_on_batch(x)

    return step


def native_kernel_name() -> str:
    """What runs the LSTMs in the native reference of the current backend, e.g. ``torch.nn.LSTM (cuDNN)``."""
    name = backend.selected_backend()
    if name == "torch":
        import torch

        if torch.cuda.is_available():
            return "torch.nn.LSTM (cuDNN)" if torch.backends.cudnn.enabled else "torch.nn.LSTM (CUDA, no cuDNN)"
        # ATen runs CPU LSTMs through oneDNN (aten::mkldnn_rnn_layer) when it is built in and enabled.
        if torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled:
            return "torch.nn.LSTM (CPU oneDNN)"
        return "torch.nn.LSTM (CPU ATen)"
    if name == "jax":
        import jax

        platform = jax.default_backend()
        where = "input projection hoisted" if _hoist_input_projection(platform) else "input projection per step"
        return f"jax.lax.scan (jax.jit, {platform}, {where})"
    raise NotImplementedError(UNSUPPORTED_REASON)


def describe() -> dict:
    """What a native benchmark records in extra_info (overriding the Keras model's jit/LSTM fields)."""
    kernel = native_kernel_name()
    return {
        "implementation": "native",
        "native_kernel": kernel,
        "lstm_kernel": kernel,
        "jit_compile": backend.selected_backend() == "jax",  # jax.jit; torch runs eagerly, as Keras does
    }


# --- reading the Keras model -------------------------------------------------------------------


def keras_weights(keras_model: Any) -> KerasWeights:
    """Copy the weights out of the benchmark model, checking it is the architecture written here."""
    from keras import layers, ops

    parts = [layer for layer in keras_model.layers if layer.weights]
    kinds = [type(layer) for layer in parts]
    expected = [layers.Embedding, layers.Bidirectional, layers.Bidirectional, layers.Dense]
    if kinds != expected:
        raise ValueError(f"the native reference implements {[k.__name__ for k in expected]}, "
                         f"not {[k.__name__ for k in kinds]}")
    embedding, first, second, dense = parts
    if embedding.mask_zero or dense.activation.__name__ != "sigmoid" or dense.units != 1:
        raise ValueError("the native reference needs an unmasked Embedding and a Dense(1, sigmoid) output")

    def copy(variable: Any) -> np.ndarray:
        # A real copy: on CPU, torch's numpy() shares memory with the Keras variable it came from.
        return np.array(ops.convert_to_numpy(variable), dtype=np.float32, copy=True)

    def lstm(bidirectional: Any, return_sequences: bool) -> tuple[LstmWeights, LstmWeights]:
        if bidirectional.merge_mode != "concat":
            raise ValueError("the native reference concatenates the two directions (merge_mode='concat')")
        directions = []
        for layer in (bidirectional.forward_layer, bidirectional.backward_layer):
            cell = layer.cell
            if (layer.return_sequences != return_sequences or not cell.use_bias or cell.dropout
                    or cell.recurrent_dropout or cell.activation.__name__ != "tanh"
                    or cell.recurrent_activation.__name__ != "sigmoid"):
                raise ValueError(f"{layer.name}: the native reference implements keras.layers.LSTM's defaults")
            directions.append((copy(cell.kernel), copy(cell.recurrent_kernel), copy(cell.bias)))
        return directions[0], directions[1]

    return KerasWeights(copy(embedding.embeddings), lstm(first, True), lstm(second, False),
                        (copy(dense.kernel), copy(dense.bias)))


def adam_settings(keras_model: Any) -> AdamSettings:
    """The compiled Keras optimizer's settings; only plain Adam is reproduced natively."""
    import keras

    opt = keras_model.optimizer
    if not isinstance(opt, keras.optimizers.Adam) or opt.amsgrad:
        raise ValueError(f"the native reference reproduces Adam, not {type(opt).__name__}")
    if opt.weight_decay or opt.clipnorm or opt.clipvalue or opt.global_clipnorm or opt.use_ema:
        raise ValueError("the native reference reproduces plain Adam (no weight decay, clipping or EMA)")
    lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
    return AdamSettings(lr, float(opt.beta_1), float(opt.beta_2), float(opt.epsilon))


def _keras_epsilon() -> float:
    import keras

    return float(keras.config.epsilon())  # Keras clips probabilities to [eps, 1 - eps] in binary cross-entropy


# --- PyTorch -----------------------------------------------------------------------------------


class TorchNative:
    """nn.Embedding -> nn.LSTM(bidirectional) x 2 -> nn.Linear -> sigmoid, trained with torch.optim.Adam."""

    def __init__(self, weights: KerasWeights, adam: AdamSettings, clip_eps: float) -> None:
        import torch
        from torch import nn

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.adam, self.clip_eps, self.steps = adam, clip_eps, 0
        vocab, embed_dim = weights.embeddings.shape
        units = weights.lstm1[0][1].shape[0]
        self.embedding = nn.Embedding(vocab, embed_dim)
        self.lstm1 = nn.LSTM(embed_dim, units, batch_first=True, bidirectional=True)
        self.lstm2 = nn.LSTM(2 * units, units, batch_first=True, bidirectional=True)
        self.dense = nn.Linear(2 * units, 1)
        self.modules = nn.ModuleList([self.embedding, self.lstm1, self.lstm2, self.dense]).to(self.device)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.from_numpy(weights.embeddings))
            for lstm, directions in ((self.lstm1, weights.lstm1), (self.lstm2, weights.lstm2)):
                for suffix, (kernel, recurrent, bias) in zip(("l0", "l0_reverse"), directions):
                    # Same gate order (Keras i, f, c, o = torch i, f, g, o); torch stores (4 * units, in).
                    getattr(lstm, f"weight_ih_{suffix}").copy_(torch.from_numpy(kernel.T))
                    getattr(lstm, f"weight_hh_{suffix}").copy_(torch.from_numpy(recurrent.T))
                    getattr(lstm, f"bias_ih_{suffix}").copy_(torch.from_numpy(bias))
                    # Keras has one bias, torch two that add up: keep the second at zero and frozen,
                    # else Adam would move both and the effective bias would take double steps.
                    getattr(lstm, f"bias_hh_{suffix}").zero_().requires_grad_(False)
                lstm.flatten_parameters()  # cuDNN wants the weights in one contiguous buffer
            self.dense.weight.copy_(torch.from_numpy(weights.dense[0].T))
            self.dense.bias.copy_(torch.from_numpy(weights.dense[1]))
        trainable = [p for p in self.modules.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=adam.learning_rate, betas=(adam.beta_1, adam.beta_2),
                                          eps=adam.epsilon)

    def stage(self, x: Any, y: Any) -> tuple[Any, Any]:
        import torch

        # int32 ids as staged for Keras (nn.Embedding takes them); labels as a (batch, 1) column like the output.
        return (torch.as_tensor(x, dtype=torch.int32, device=self.device),
                torch.as_tensor(y, dtype=torch.float32, device=self.device).reshape(-1, 1))

    def forward(self, x: Any) -> Any:
        import torch

        h = self.embedding(x)
        h, _ = self.lstm1(h)  # (batch, time, 2 * units): [forward, backward re-reversed], as Keras
        _, (h_n, _) = self.lstm2(h)  # h_n[0]: forward after the last step, h_n[1]: backward after the first
        return torch.sigmoid(self.dense(torch.cat((h_n[0], h_n[1]), dim=-1)))

    def train_on_batch(self, x: Any, y: Any) -> float:
        import torch.nn.functional as F

        self.optimizer.zero_grad(set_to_none=True)
        probs = self.forward(x).clamp(self.clip_eps, 1.0 - self.clip_eps)
        loss = F.binary_cross_entropy(probs, y)
        loss.backward()
        self.steps += 1
        # torch adds eps to sqrt(v_hat) = sqrt(v) / sqrt(1 - b2^t); Keras adds it to sqrt(v). Scaling eps
        # by 1 / sqrt(1 - b2^t) makes torch's update exactly Keras's (it matters while |grad| ~ eps).
        eps = self.adam.epsilon / math.sqrt(1.0 - self.adam.beta_2 ** self.steps)
        for group in self.optimizer.param_groups:
            group["eps"] = eps
        self.optimizer.step()
        backend.sync()
        return float(loss.item())

    def predict_on_batch(self, x: Any) -> np.ndarray:
        import torch

        with torch.no_grad():  # as Keras's torch predict_step
            out = self.forward(x)
        backend.sync()
        return out.cpu().numpy()

    def get_weights(self) -> list[np.ndarray]:
        """The current weights in Keras's layout and order (for checking against Keras)."""

        def arr(t: Any) -> np.ndarray:
            return t.detach().cpu().numpy().copy()

        out = [arr(self.embedding.weight)]
        for lstm in (self.lstm1, self.lstm2):
            for suffix in ("l0", "l0_reverse"):
                bias = getattr(lstm, f"bias_ih_{suffix}") + getattr(lstm, f"bias_hh_{suffix}")
                out += [arr(getattr(lstm, f"weight_ih_{suffix}")).T, arr(getattr(lstm, f"weight_hh_{suffix}")).T,
                        arr(bias)]
        return [*out, arr(self.dense.weight).T, arr(self.dense.bias)]


# --- JAX ---------------------------------------------------------------------------------------


class JaxNative:
    """A jax.lax.scan bidirectional LSTM, its loss, gradient and Adam update in one jax.jit'ed step."""

    def __init__(self, weights: KerasWeights, adam: AdamSettings, clip_eps: float,
                 hoist: bool | None = None) -> None:
        import jax
        import jax.numpy as jnp

        params = {"embeddings": weights.embeddings, "lstm1": weights.lstm1, "lstm2": weights.lstm2,
                  "dense": weights.dense}
        # Fresh device buffers owned here: the train step donates them, so they must not alias Keras's.
        params = jax.tree.map(lambda a: jnp.array(a, copy=True), params)
        zeros = jax.tree.map(jnp.zeros_like, params)
        self._state = (params, zeros, jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.float32))
        if hoist is None:
            hoist = _hoist_input_projection(jax.default_backend())
        forward, train = _jax_functions(adam, clip_eps, hoist)
        self._forward = jax.jit(forward)
        # Donating the state lets XLA update weights and moments in place, as Keras's JAX trainer does.
        self._train = jax.jit(train, donate_argnums=0)

    def stage(self, x: Any, y: Any) -> tuple[Any, Any]:
        import jax
        import jax.numpy as jnp

        staged = (jnp.asarray(x, dtype=jnp.int32), jnp.asarray(y, dtype=jnp.float32).reshape(-1, 1))
        return jax.block_until_ready(staged)

    def train_on_batch(self, x: Any, y: Any) -> float:
        self._state, loss = self._train(self._state, x, y)
        backend.sync((self._state, loss))
        return float(loss)

    def predict_on_batch(self, x: Any) -> np.ndarray:
        out = self._forward(self._state[0], x)
        backend.sync(out)
        return np.asarray(out)

    def get_weights(self) -> list[np.ndarray]:
        """The current weights in Keras's layout and order (the JAX copy keeps Keras's layout)."""
        p = self._state[0]
        lstm = [np.asarray(w) for w in itertools.chain(*p["lstm1"], *p["lstm2"])]
        return [np.asarray(p["embeddings"]), *lstm, *(np.asarray(w) for w in p["dense"])]


def _hoist_input_projection(platform: str) -> bool:
    """Whether the JAX LSTM computes ``x @ kernel`` for all steps before the scan, or inside each step.

    Hoisting turns 2 * maxlen small matmuls into one large one, as cuDNN does, which suits GPUs.
    On XLA:CPU it measured ~1.8x slower (13 vs 7 ms per direction at batch 32, maxlen 200, 64 units):
    the small in-loop matmul fuses with the cell, the hoisted (time, batch, 4 * units) tensor does not.
    """
    return platform != "cpu"


def _jax_functions(adam: AdamSettings, clip_eps: float, hoist: bool) -> tuple[Callable, Callable]:
    """The pure functions the JAX reference jits: forward(params, x) and train(state, x, y)."""
    import jax
    import jax.numpy as jnp

    def lstm(weights: LstmWeights, x: Any, reverse: bool) -> tuple[Any, Any]:
        kernel, recurrent, bias = weights
        units = recurrent.shape[0]
        # Scanned over time: either the precomputed input projection or the raw inputs.
        xs = jnp.swapaxes(x @ kernel + bias if hoist else x, 0, 1)

        def cell(carry: tuple[Any, Any], x_t: Any) -> tuple[tuple[Any, Any], Any]:
            h, c = carry
            z = x_t + h @ recurrent if hoist else x_t @ kernel + h @ recurrent + bias
            i, f, g, o = jnp.split(z, 4, axis=-1)  # Keras's gate order i, f, c, o
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((x.shape[0], units), x.dtype)
        # reverse=True walks the sequence backwards but stores output t at index t: Keras's re-reversal.
        (h, _), outputs = jax.lax.scan(cell, (zeros, zeros), xs, reverse=reverse)
        return jnp.swapaxes(outputs, 0, 1), h

    def forward(params: dict, x: Any) -> Any:
        h = params["embeddings"][x]
        (fwd, bwd) = params["lstm1"]
        h = jnp.concatenate([lstm(fwd, h, False)[0], lstm(bwd, h, True)[0]], axis=-1)
        (fwd, bwd) = params["lstm2"]
        h = jnp.concatenate([lstm(fwd, h, False)[1], lstm(bwd, h, True)[1]], axis=-1)
        kernel, bias = params["dense"]
        return jax.nn.sigmoid(h @ kernel + bias)

    def loss_fn(params: dict, x: Any, y: Any) -> Any:
        probs = jnp.clip(forward(params, x), clip_eps, 1.0 - clip_eps)
        return -jnp.mean(y * jnp.log(probs) + (1.0 - y) * jnp.log(1.0 - probs))

    b1, b2 = jnp.float32(adam.beta_1), jnp.float32(adam.beta_2)

    def train(state: tuple, x: Any, y: Any) -> tuple[tuple, Any]:
        params, m, v, t = state
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        t = t + 1
        # Keras's Adam, term for term (keras.optimizers.Adam.update_step).
        alpha = adam.learning_rate * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        m = jax.tree.map(lambda m_, g: m_ + (g - m_) * (1 - adam.beta_1), m, grads)
        v = jax.tree.map(lambda v_, g: v_ + (g * g - v_) * (1 - adam.beta_2), v, grads)
        params = jax.tree.map(lambda p, m_, v_: p - alpha * m_ / (jnp.sqrt(v_) + adam.epsilon), params, m, v)
        return (params, m, v, t), loss

    return forward, train
