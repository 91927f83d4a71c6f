"""The native PyTorch reference: what a PyTorch user writes by hand for this model.

``torch.nn.LSTM`` and ``torch.optim.Adam`` rather than a hand-written cell: they are what PyTorch
users run, and ``nn.LSTM`` is the fast path (cuDNN on CUDA, oneDNN's fused kernel on CPU). Two
adjustments make the math Keras's exactly: the second LSTM bias is held at zero, and Adam's eps
is rescaled each step (see ``train_on_batch``). torch is imported inside the methods so that
importing this module starts no backend.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.native.weights import AdamSettings, KerasWeights

JIT_COMPILE = False  # torch runs eagerly, as Keras's torch backend does


def kernel_name() -> str:
    """What runs the LSTMs here, e.g. ``torch.nn.LSTM (cuDNN)``."""
    import torch

    if torch.cuda.is_available():
        # is_available: cuDNN is in this build and loads; enabled: nobody switched it off. nn.LSTM needs both.
        usable = torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled
        return "torch.nn.LSTM (cuDNN)" if usable else "torch.nn.LSTM (CUDA without cuDNN)"
    # ATen runs CPU LSTMs through oneDNN (aten::mkldnn_rnn_layer) when it is built in and enabled.
    if torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled:
        return "torch.nn.LSTM (CPU oneDNN)"
    return "torch.nn.LSTM (CPU ATen)"


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

    def train_on_batch(self, x: Any, y: Any, return_dict: bool = False) -> dict[str, float] | float:
        """One Adam step, with Keras's signature; the loss comes back to the host as Keras's logs do."""
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
        # item() is queued after the optimizer's kernels on the same stream, so it waits for them too.
        value = float(loss.item())
        return {"loss": value} if return_dict else value

    def phase_steps(self, x: Any, y: Any) -> dict[str, Any]:
        """The train step cut after each phase (bench/phases.py); "update" steps a copy of the optimizer on copies."""
        import torch
        import torch.nn.functional as F

        x, y = self.stage(x, y)
        weights = [p for p in self.modules.parameters() if p.requires_grad]
        copies = [w.detach().clone().requires_grad_(True) for w in weights]
        scratch = torch.optim.Adam(copies, lr=self.adam.learning_rate, betas=(self.adam.beta_1, self.adam.beta_2),
                                   eps=self.adam.epsilon)

        def forward() -> Any:
            return F.binary_cross_entropy(self.forward(x).clamp(self.clip_eps, 1.0 - self.clip_eps), y)

        def forward_backward() -> Any:
            return torch.autograd.grad(forward(), weights)

        def update() -> Any:
            for copy, grad in zip(copies, forward_backward(), strict=True):
                copy.grad = grad
            scratch.step()
            return copies[0]

        return {"forward": forward, "forward_backward": forward_backward, "update": update}

    def predict_on_batch(self, x: Any) -> np.ndarray:
        import torch

        with torch.no_grad():  # as Keras's torch predict_step
            out = self.forward(x)
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


Native = TorchNative  # the name bench.native looks up in each framework module
