"""``python -m bench cuda-libs``: does each backend load its own CUDA major's cuDNN and NCCL? No GPU needed.

Each backend is started in its own process (with its ``--python`` interpreter, else this one), made to load its
CUDA libraries as far as it does without a GPU, and its /proc/self/maps read (``bench.cuda_libs``). Exit 1, with
one paragraph saying what is wrong and how to install the GPU set, where a backend is a CPU build or loaded the
other CUDA major's library; `make venv-gpu` runs it after installing each GPU environment, `make gpu-check` first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

from bench import cuda_libs
from bench.backends import GPU_INSTALL
from bench.commands.options import add_backends_option, add_python_option, pythons_of
from bench.settings import CHECKOUT


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cuda-libs", help="check that each backend loads its own CUDA major's cuDNN and NCCL",
                       description="Start each backend in its own process, let it load its CUDA libraries as far as "
                                   "it does without a GPU, and show which cuDNN, NCCL, cudart and cuBLAS files it "
                                   "loaded and for which CUDA major each was built. Exit 1 where a backend is a CPU "
                                   "build or loaded another CUDA major's library than it was built for.")
    add_backends_option(p)
    add_python_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    reports = check(args.backends, pythons_of(args))
    print(cuda_libs.render(reports))
    refused = cuda_libs.refusal(reports, GPU_INSTALL)
    if refused:
        print(refused)
        return 1
    return 0


_CHILD = """
import json, sys
from bench import backends, cuda_libs
backends.prepare_environment("auto")  # as a benchmark process: another framework kept out of it
adapter = backends.current()
how = adapter.load_cuda_libraries()
report = cuda_libs.Report(adapter.name, adapter.gpu_support()["detail"], adapter.cuda_major(), how,
                          tuple(cuda_libs.loaded()), cuda_libs.shared_files(), sys.executable)
print(json.dumps(report.as_dict()))
"""


def check(backends: Sequence[str], pythons: Mapping[str, str] | None = None,
          timeout: float = 300) -> list[cuda_libs.Report]:
    """Each backend's report, from a process of its own (``pythons``: a backend's interpreter, else this one)."""
    return [backend_report(name, (pythons or {}).get(name, sys.executable), timeout) for name in backends]


def backend_report(backend: str, python: str, timeout: float = 300) -> cuda_libs.Report:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        done = subprocess.run([python, "-c", _CHILD], cwd=CHECKOUT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines:
            return cuda_libs.Report.from_dict(json.loads(lines[-1]))
        why = "\n".join(done.stderr.strip().splitlines()[-5:]) or f"exit {done.returncode}, no output"
    except subprocess.TimeoutExpired:
        why = f"did not answer within {timeout:.0f} s"
    except OSError as exc:  # no interpreter there
        why = f"cannot start {python}: {exc.strerror or exc}"
    except (ValueError, KeyError, TypeError) as exc:
        why = f"answered something unreadable ({exc})"
    return cuda_libs.Report(backend, "", None, "", (), {}, python, error=why)
