"""The work a step does, counted from the model's shape: FLOPs and the bytes that must move.

An analytic count for model.py's network (Embedding -> BiLSTM(seq) -> BiLSTM -> Dense) at any batch,
maxlen and dtype, split into forward, backward and optimizer. It is the yardstick for the bounds
(bench/roofline.py) and is cross-checked against each backend's own counter where one exists
(``Adapter.count_flops``).

Conventions (the same as the backends' counters, so that the two can be compared):
- a multiply-add in a matrix product is 2 FLOPs; every other arithmetic element op is 1 FLOP, and a
  sigmoid or tanh is counted apart as a transcendental, not as FLOPs (XLA's cost analysis does the same);
- backward does two matrix products per forward one (the input's gradient and the weight's);
- the embedding is a gather: no FLOPs, only bytes;
- Adam (Keras's update: m, v, bias-corrected step) is 11 element ops per parameter.

Bytes are a lower bound (each tensor that must be read or written, once): the weights, the rows of
the embedding a batch gathers, each layer's output, the LSTM gates saved for backward, the gradients,
and Adam reading parameter, gradient and both moments and writing three of them. Caches, re-reads
and temporaries only add to it, so the memory bound built on it is a floor on the step's time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from model import ModelConfig

ADAM_OPS_PER_PARAMETER = 11  # m, v: 2 mul + 1 add each, v's square; the step: sqrt, add eps, div, mul, sub
ADAM_BYTES_PER_PARAMETER = 7 * 4  # float32: read parameter, gradient, m, v; write parameter, m, v


@dataclass(frozen=True)
class Phase:
    """One phase of a step: FLOPs (matrix products and the rest), transcendentals, bytes."""

    matmul_flops: float
    other_flops: float
    transcendentals: float
    bytes: float

    @property
    def flops(self) -> float:
        return self.matmul_flops + self.other_flops

    def __add__(self, other: Phase) -> Phase:
        return Phase(self.matmul_flops + other.matmul_flops, self.other_flops + other.other_flops,
                     self.transcendentals + other.transcendentals, self.bytes + other.bytes)


@dataclass(frozen=True)
class StepWork:
    """What one step of ``kind`` ("train" or "predict") does at (batch, maxlen)."""

    kind: str
    batch_size: int
    maxlen: int
    forward: Phase
    backward: Phase | None  # None for predict
    optimizer: Phase | None
    dependent_steps: int  # LSTM timesteps that must run one after another (forward, and backward for train)

    @property
    def total(self) -> Phase:
        total = self.forward
        for phase in (self.backward, self.optimizer):
            if phase is not None:
                total = total + phase
        return total

    @property
    def flops(self) -> float:
        return self.total.flops

    @property
    def bytes(self) -> float:
        return self.total.bytes

    def as_dict(self) -> dict:
        return asdict(self)


def parameters(config: ModelConfig) -> dict[str, int]:
    """Parameter count per layer (what ``model.count_params()`` says for model.py's network)."""
    e, h = config.embed_dim, config.lstm_units

    def lstm(n_in: int) -> int:  # one direction: kernel, recurrent kernel, bias
        return 4 * h * (n_in + h) + 4 * h

    return {"embedding": config.max_features * e, "lstm_1": 2 * lstm(e), "lstm_2": 2 * lstm(2 * h),
            "dense": 2 * h + 1}


def step_work(config: ModelConfig, kind: str, batch_size: int | None = None, maxlen: int | None = None) -> StepWork:
    """The analytic work of one train or predict step (``kind``) of model.py's network."""
    if kind not in ("train", "predict"):
        raise ValueError(f"kind is 'train' or 'predict', not {kind!r}")
    b = config.batch_size if batch_size is None else batch_size
    t = config.maxlen if maxlen is None else maxlen
    if b < 1 or t < 1:
        raise ValueError(f"batch size and maxlen must be at least 1, not {b} and {t}")
    e, h = config.embed_dim, config.lstm_units
    act = 2 if config.dtype_policy.startswith("mixed") else 4  # activations' bytes; weights stay float32
    params = parameters(config)
    dense_weights = sum(params.values()) - params["embedding"]

    # Per direction and timestep of an LSTM layer with n_in inputs: [x, h] @ W (4h gates), the bias and
    # the sum of the two products (2 * 4h), the cell c = f*c + i*g (3h), h = o * tanh(c) (h); sigmoid of
    # three gates, tanh of g and of c (5h transcendentals).
    def lstm(n_in: int) -> Phase:
        cells = 2 * b * t  # two directions
        gates = cells * 4 * h * act  # saved for backward
        return Phase(matmul_flops=cells * 2 * (n_in + h) * 4 * h, other_flops=cells * (8 * h + 4 * h),
                     transcendentals=cells * 5 * h,
                     bytes=gates + cells * 2 * h * act)  # plus c and h of each step

    embedding = Phase(0, 0, 0, b * t * e * act + b * t * 4)  # gathered rows, and the token ids
    layer_1, layer_2 = lstm(e), lstm(2 * h)
    dense = Phase(2 * b * 2 * h, 2 * b, b, b * act)  # one logit per review, its bias, the sigmoid
    weights_read = Phase(0, 0, 0, dense_weights * 4)
    forward = embedding + layer_1 + layer_2 + dense + weights_read
    dependent = 2 * t  # two stacked layers; each direction's recurrence runs t steps in order
    if kind == "predict":
        return StepWork("predict", b, t, forward, None, None, dependent)

    # Backward: two products per forward product; the element ops' derivatives about twice the forward's;
    # reads what forward saved and writes every weight's gradient (the embedding's as dense rows).
    backward_matmul = 2 * (forward.matmul_flops)
    saved = layer_1.bytes + layer_2.bytes + embedding.bytes
    backward = Phase(backward_matmul, 2 * forward.other_flops, 0, saved + sum(params.values()) * 4)
    n_params = sum(params.values())
    optimizer = Phase(0, ADAM_OPS_PER_PARAMETER * n_params, 0, ADAM_BYTES_PER_PARAMETER * n_params)
    return StepWork("train", b, t, forward, backward, optimizer, 2 * dependent)
