"""PyTorch's primitives: ``DistributedDataParallel`` around the Keras model, one process per device.

The step is Keras's torch ``train_step`` with the forward pass through DDP (keras.io's "distributed
training with PyTorch" guide), over torch.distributed: gloo on CPU, NCCL on GPU. Imported only
through the torch adapter's ``distributed_module`` (bench/distributed/engine.py).
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import torch  # absolute import: the real PyTorch, not this module
import torch.distributed as dist

from bench.distributed.engine import DataParallel, own_loop

COLLECTIVE_TIMEOUT_S = 600  # a collective waiting longer than this fails the rank


class TorchDistributedDataParallel(DataParallel):
    """``torch.nn.parallel.DistributedDataParallel`` around the Keras model: one process per device."""

    name = "torch.nn.parallel.DistributedDataParallel"
    step_impl = ("DDP forward, model.compute_loss, backward (DDP all-reduces the gradients), "
                 "model.optimizer.apply: Keras's torch train_step with the DDP wrapper")
    collectives = "torch.distributed gloo"

    def _start(self, adapter: Any) -> None:
        gpu = adapter.device.kind == "gpu"
        if gpu:
            # The launcher shows each process its own GPU; under torchrun, LOCAL_RANK picks it.
            torch.cuda.set_device(self.rank_info.local_rank % max(torch.cuda.device_count(), 1))
        init = "env://" if self.rank_info.source == "torchrun" else f"tcp://{self.rank_info.coordinator}"
        dist.init_process_group("nccl" if gpu else "gloo", init_method=init, rank=self.rank,
                                world_size=self.processes, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
        self.device_names = [f"{'cuda:' + str(torch.cuda.current_device()) if gpu else 'cpu'} (rank {self.rank})"]
        self._wrapped: Any = None

    def finish(self) -> None:
        # DDP's reducer holds the process group and its last work: freed first, while Python still runs, so
        # that no gloo thread is left to the interpreter's teardown (seen once as an abort at exit).
        self._wrapped = None
        gc.collect()
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()

    def _ddp(self, model: Any) -> Any:
        if self._wrapped is None or self._wrapped.module is not model:
            model.optimizer.build(model.trainable_variables)
            gpu = self.adapter.device.kind == "gpu"
            # DDP broadcasts rank 0's weights and hooks every trainable parameter's gradient into an all-reduce.
            self._wrapped = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[torch.cuda.current_device()] if gpu else None)
        return self._wrapped

    def _train_step(self, model: Any, x: Any, y: Any) -> tuple[Any, Any]:
        """Keras's torch train_step (keras/src/backend/torch/trainer.py), with the forward pass through DDP."""
        ddp = self._ddp(model)
        y_pred = ddp(x, training=True)
        model.zero_grad()
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        model.optimizer.scale_loss(loss).backward()
        weights = model.trainable_weights[:]
        with torch.no_grad():
            model.optimizer.apply([v.value.grad for v in weights], weights)
        return loss, y_pred

    def stage(self, x: np.ndarray, y: np.ndarray) -> Any:
        return self.adapter.to_device(x), self.adapter.to_device(y)

    def make_step(self, model: Any, staged: list) -> Callable[[], Any]:
        cycle = itertools.cycle(staged)

        def step() -> float:
            x, y = next(cycle)
            loss, _ = self._train_step(model, x, y)
            return float(loss.detach())  # reading the loss back waits for the device

        return step

    def _mean_over_ranks(self, loss: Any) -> float:
        """The step's loss over the global batch: every rank then sees the same value (and stops at the same NaN)."""
        total = loss.detach().clone()
        dist.all_reduce(total)  # a sum: gloo has no average
        return float(total) / self.processes

    def fit(self, model: Any, train: tuple, val: tuple, local_batch: int, callbacks: list) -> dict:
        model.reset_metrics()
        losses: list[float] = []
        metrics: dict = {}

        def step() -> float:
            rows = slice(len(losses) * local_batch, (len(losses) + 1) * local_batch)
            x, y = (self.adapter.to_device(a[rows]) for a in train)
            loss, y_pred = self._train_step(model, x, y)
            losses.append(self._mean_over_ranks(loss))
            with torch.no_grad():
                metrics.update(model.compute_metrics(x, y, y_pred.detach(), sample_weight=None))
            return losses[-1]

        own_loop(model, callbacks, len(train[0]) // local_batch, step)
        validated = model.evaluate(*val, batch_size=local_batch, verbose=0, return_dict=True)
        # Equal rows on every rank: the mean over ranks is the mean over the global data.
        mean = self.gather(np.array([np.mean(losses), float(metrics["accuracy"]), validated["loss"],
                                     validated["accuracy"]])).mean(axis=0)
        return dict(zip(("loss", "accuracy", "val_loss", "val_accuracy"), map(float, mean)))

    def gather(self, values: np.ndarray) -> np.ndarray:
        out: list[Any] = [None] * self.processes
        dist.all_gather_object(out, np.asarray(values, dtype=float).tolist())
        return np.asarray(out, dtype=float)


DATA_PARALLEL = TorchDistributedDataParallel
