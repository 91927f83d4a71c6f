"""The native JAX reference: what a JAX user writes by hand for this model.

JAX has no LSTM layer, so the cell is a ``jax.lax.scan`` (the loop XLA compiles well), and the
whole step (forward, loss, gradient, Adam) is one ``jax.jit``'ed function as a JAX user would
write it. Adam is written out term for term because optax is not a dependency, and because
matching Keras's update exactly is the point. jax is imported inside the functions so that
importing this module starts no backend.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.native.weights import AdamSettings, KerasWeights, LstmWeights

JIT_COMPILE = True  # jax.jit


def kernel_name() -> str:
    """What runs the LSTMs here, e.g. ``jax.lax.scan (jax.jit, gpu, input projection hoisted)``."""
    import jax

    platform = jax.default_backend()
    where = "input projection hoisted" if _hoist_input_projection(platform) else "input projection per step"
    return f"jax.lax.scan (jax.jit, {platform}, {where})"


class JaxNative:
    """A jax.lax.scan bidirectional LSTM, its loss, gradient and Adam update in one jax.jit'ed step.

    ``hoist`` picks where the LSTM's input projection is computed; ``None`` picks what suits the device.
    """

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
        forward, train, loss = _jax_functions(adam, clip_eps, hoist)
        self._forward = jax.jit(forward)
        self._phases = {"forward": jax.jit(loss), "forward_backward": jax.jit(jax.value_and_grad(loss)),
                        "update": jax.jit(train)}  # not donating: phase_steps calls it again on the same state
        # Donating the state lets XLA update weights and moments in place, as Keras's JAX trainer does.
        self._train = jax.jit(train, donate_argnums=0)

    def stage(self, x: Any, y: Any) -> tuple[Any, Any]:
        import jax
        import jax.numpy as jnp

        staged = (jnp.asarray(x, dtype=jnp.int32), jnp.asarray(y, dtype=jnp.float32).reshape(-1, 1))
        return jax.block_until_ready(staged)

    def train_on_batch(self, x: Any, y: Any, return_dict: bool = False) -> dict[str, float] | float:
        """One jitted step, with Keras's signature; the loss comes back to the host as Keras's logs do."""
        import jax

        self._state, loss = self._train(self._state, x, y)
        # float(loss) waits for the loss; waiting for the new state too ends the step with the update done.
        jax.block_until_ready(self._state)
        value = float(loss)
        return {"loss": value} if return_dict else value

    def phase_steps(self, x: Any, y: Any) -> dict[str, Any]:
        """The train step cut after each phase (bench/phases.py); none keeps what it computed."""
        x, y = self.stage(x, y)
        forward, forward_backward, update = (self._phases[k] for k in ("forward", "forward_backward", "update"))
        return {"forward": lambda: forward(self._state[0], x, y),
                "forward_backward": lambda: forward_backward(self._state[0], x, y),
                "update": lambda: update(self._state, x, y)}

    def predict_on_batch(self, x: Any) -> np.ndarray:
        return np.asarray(self._forward(self._state[0], x))  # np.asarray waits for the device

    def get_weights(self) -> list[np.ndarray]:
        """The current weights in Keras's layout and order (the JAX copy keeps Keras's layout)."""
        p = self._state[0]
        lstm = [np.asarray(w) for w in itertools.chain(*p["lstm1"], *p["lstm2"])]
        return [np.asarray(p["embeddings"]), *lstm, *(np.asarray(w) for w in p["dense"])]


Native = JaxNative  # the name bench.native looks up in each framework module


def _hoist_input_projection(platform: str) -> bool:
    """Whether the JAX LSTM computes ``x @ kernel`` for all steps before the scan, or inside each step.

    Hoisting turns 2 * maxlen small matmuls into one large one, as cuDNN does, which suits GPUs.
    On XLA:CPU it measured ~1.8x slower (13 vs 7 ms per direction at batch 32, maxlen 200, 64 units):
    the small in-loop matmul fuses with the cell, the hoisted (time, batch, 4 * units) tensor does not.
    """
    return platform != "cpu"


def _jax_functions(adam: AdamSettings, clip_eps: float, hoist: bool) -> tuple[Callable, Callable, Callable]:
    """The pure functions the JAX reference jits: forward(params, x), train(state, x, y), loss(params, x, y)."""
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

    return forward, train, loss_fn
