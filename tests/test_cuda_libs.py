"""``bench.cuda_libs`` and ``python -m bench cuda-libs``: which CUDA major each loaded library is, and the refusals.

Built from made-up /proc/self/maps texts, files and distributions, so that it runs on any machine; the last test
asks this venv's own backend (a CPU build in the pinned set), in its own process, as `make venv-gpu` does.
"""

import sys
from importlib.metadata import PathDistribution
from pathlib import Path

import pytest

from bench import cuda_libs
from bench.backends import GPU_INSTALL
from bench.commands import cuda_libs as command

SITE = "/venv/lib/python3.11/site-packages"
MAPS = f"""\
7f0000000000-7f0000001000 r--p 00000000 fd:01 11 {SITE}/nvidia/cudnn/lib/libcudnn.so.9
7f0000001000-7f0000002000 r-xp 00001000 fd:01 11 {SITE}/nvidia/cudnn/lib/libcudnn.so.9
7f0000002000-7f0000003000 r--p 00000000 fd:01 12 {SITE}/nvidia/cu13/lib/libcudart.so.13
7f0000003000-7f0000004000 r--p 00000000 fd:01 13 {SITE}/nvidia/cublas/lib/libcublas.so.12 (deleted)
7f0000004000-7f0000005000 rw-p 00000000 00:00 0 [heap]
7f0000005000-7f0000006000 rw-p 00000000 00:00 0
7f0000006000-7f0000007000 r--p 00000000 fd:01 14 {SITE}/torch/lib/libtorch_cuda.so
"""


def test_mapped_files_are_listed_once_in_order_and_sorted_into_kinds():
    files = cuda_libs.mapped_files(MAPS)
    assert files == [f"{SITE}/nvidia/cudnn/lib/libcudnn.so.9", f"{SITE}/nvidia/cu13/lib/libcudart.so.13",
                     f"{SITE}/nvidia/cublas/lib/libcublas.so.12", f"{SITE}/torch/lib/libtorch_cuda.so"]
    assert [cuda_libs.kind_of(f) for f in files] == ["cudnn", "cudart", "cublas", None]
    assert cuda_libs.kind_of(f"{SITE}/nvidia/cudnn/lib/libcudnn_graph.so.9") is None  # the shim is the one asked


def test_the_major_is_read_from_the_library_not_its_shared_file_name(tmp_path):
    assert cuda_libs.cuda_major_of("cudart", "/x/libcudart.so.12") == (12, "soname libcudart.so.12")
    assert cuda_libs.cuda_major_of("cublas", "/x/libcublas.so.13") == (13, "soname libcublas.so.13")
    nccl = tmp_path / "libnccl.so.2"  # both majors' wheels name it so: the build string says which
    nccl.write_bytes(b"\x7fELF" + b"\0" * 64 + b"NCCL version 2.29.7+cuda13.2\0" + b"\0" * 64)
    assert cuda_libs.cuda_major_of("nccl", str(nccl)) == (13, "build string 'NCCL version 2.29.7+cuda13.2'")
    nccl.write_bytes(b"\x7fELF no version here")
    assert cuda_libs.cuda_major_of("nccl", str(nccl))[0] is None
    not_a_library = tmp_path / "libcudnn.so.9"
    not_a_library.write_bytes(b"not an ELF file")
    major, how = cuda_libs.cuda_major_of("cudnn", str(not_a_library))
    assert major is None and "cudnnGetCudartVersion() not callable" in how


def _dist(root: Path, name: str, version: str, files: list[str]) -> PathDistribution:
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in [*files, f"{info.name}/RECORD"]))
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).touch()
    return PathDistribution(info)


def test_files_two_distributions_wrote_are_found_with_their_owners(tmp_path):
    shared = "nvidia/cudnn/lib/libcudnn.so.9"
    dists = [_dist(tmp_path, "nvidia-cudnn-cu12", "9.28.0.42", [shared, "nvidia/cudnn/include/cudnn.h"]),
             _dist(tmp_path, "nvidia-cudnn-cu13", "9.20.0.48", [shared]),
             _dist(tmp_path, "nvidia-ml-py", "13.615.71", ["pynvml.py"]),
             _dist(tmp_path, "numpy", "2.4.6", [shared])]  # not a CUDA distribution: not looked at
    assert cuda_libs.shared_files(dists) == {shared: ["nvidia-cudnn-cu12", "nvidia-cudnn-cu13"]}
    path = str(tmp_path / shared)
    assert cuda_libs.owners([path], dists) == {path: ("nvidia-cudnn-cu12 9.28.0.42", "nvidia-cudnn-cu13 9.20.0.48")}


def _lib(kind: str, major: int | None, path: str = "", owners: tuple[str, ...] = ()) -> cuda_libs.Library:
    return cuda_libs.Library(kind, path or f"{SITE}/nvidia/{kind}/lib/lib{kind}.so", major, "test", owners)


def _report(major: int | None, *libraries: cuda_libs.Library, shared=None, error="") -> cuda_libs.Report:
    return cuda_libs.Report("torch", "torch 2.13.0+cu130 built with CUDA 13.0", major, "import torch", libraries,
                            shared or {}, "/venv/bin/python", error)


def test_a_backend_on_its_own_majors_libraries_passes():
    report = _report(13, _lib("cudnn", 13), _lib("nccl", 13), _lib("cudart", 13))
    assert report.problems == [] and cuda_libs.refusal([report], GPU_INSTALL) is None
    assert "ok: cuDNN and NCCL of CUDA 13, as torch is built for" in cuda_libs.render([report])
    assert cuda_libs.Report.from_dict(report.as_dict()) == report  # what the backend's process sends back


def test_the_other_majors_cudnn_is_refused_naming_the_file_and_who_wrote_it():
    path = f"{SITE}/nvidia/cudnn/lib/libcudnn.so.9"
    owners = ("nvidia-cudnn-cu12 9.28.0.42", "nvidia-cudnn-cu13 9.20.0.48")
    report = _report(13, _lib("cudnn", 12, path, owners), _lib("nccl", 13),
                     shared={"nvidia/cudnn/lib/libcudnn.so.9": ["nvidia-cudnn-cu12", "nvidia-cudnn-cu13"]})
    first, second = report.problems
    assert first.startswith(f"torch is built for CUDA 13 but loaded {path}, a CUDA 12 cudnn")
    assert "nvidia-cudnn-cu12 9.28.0.42, nvidia-cudnn-cu13 9.20.0.48" in first
    assert second == ("nvidia/cudnn/lib/libcudnn.so.9 was written by nvidia-cudnn-cu12 and nvidia-cudnn-cu13: "
                      "the last install won")
    paragraph = cuda_libs.refusal([report], GPU_INSTALL)
    assert paragraph.startswith("kerasbench cuda-libs: torch is built for CUDA 13") and "make venv-gpu" in paragraph
    assert "REFUSED: torch is built for CUDA 13" in cuda_libs.render([report])


def test_a_cpu_build_a_missing_library_and_an_unchecked_backend_are_refused():
    assert _report(None).problems == ["torch is not a CUDA build (torch 2.13.0+cu130 built with CUDA 13.0): it "
                                      "would run on the CPU only"]
    assert _report(13, _lib("cudnn", 13)).problems == ["torch loaded no nccl library (import torch)"]
    unchecked = _report(None, error="ImportError: libcudnn.so.9: cannot open shared object file")
    assert unchecked.problems == ["torch could not be checked: ImportError: libcudnn.so.9: cannot open shared "
                                  "object file"]
    assert "could not be checked" in cuda_libs.render([unchecked])


def test_a_backend_whose_process_fails_is_reported_with_its_error():
    report = command.backend_report("torch", str(Path(sys.executable).parent / "no-such-python"))
    assert report.error and report.problems[0].startswith("torch could not be checked")


@pytest.mark.per_backend
def test_this_venvs_cpu_build_is_refused_by_the_library_check(backend_name, capsys):
    # The pinned set is CPU-only (tensorflow-cpu, jax without a CUDA plugin, torch +cpu): what a GPU install
    # that took a CPU build looks like to `make venv-gpu`.
    (report,) = command.check([backend_name])
    assert report.error == "" and report.backend == backend_name and report.python == sys.executable
    assert report.cuda_major is None and report.problems[0].startswith(f"{backend_name} is not a CUDA build")
