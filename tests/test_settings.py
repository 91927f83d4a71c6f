"""Option parsing: every value either parses to what was meant or fails with a clear message."""

import argparse
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import backends
from bench.commands.options import backend_list, fraction
from bench.settings import CHECKOUT, MAX_BATCH_SIZE, OPTIONS, bounded_int, positive_int, results_dir, seed_int


@given(st.integers(min_value=1, max_value=10**9))
def test_positive_int_accepts_every_positive_number(value):
    assert positive_int(str(value)) == value


@given(st.integers(max_value=0))
def test_positive_int_rejects_zero_and_negatives(value):
    with pytest.raises(argparse.ArgumentTypeError, match="must be at least 1"):
        positive_int(str(value))


@given(st.text().filter(lambda t: not re.fullmatch(r"\s*[+-]?[0-9]+\s*", t)))
def test_positive_int_rejects_text(text):
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int(text)


@pytest.mark.parametrize("text", ["1_0", "\u0661", "1e3", "2.0", "0x10", ""])
def test_what_int_would_take_is_still_not_a_whole_number(text):
    with pytest.raises(argparse.ArgumentTypeError, match="not a whole number"):
        positive_int(text)


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("1337", 1337), (str(2**32 - 1), 2**32 - 1)])
def test_seeds_are_32_bit(text, value):
    assert seed_int(text) == value


@pytest.mark.parametrize("text", ["-1", str(2**32)])
def test_seeds_outside_32_bit_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="is not a seed"):
        seed_int(text)


def test_results_folder_is_one_absolute_place(tmp_path, monkeypatch):
    monkeypatch.delenv("KERASBENCH_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert results_dir() == CHECKOUT / "results"  # not relative to where it was started
    monkeypatch.setenv("KERASBENCH_RESULTS", "rel")
    assert results_dir() == tmp_path / "rel"
    assert results_dir(tmp_path / "opt") == tmp_path / "opt"


@given(st.integers(min_value=MAX_BATCH_SIZE + 1, max_value=10**12))
def test_absurd_batch_sizes_are_refused(value):
    with pytest.raises(argparse.ArgumentTypeError, match="supported maximum"):
        bounded_int(MAX_BATCH_SIZE)(str(value))


@given(st.floats(min_value=0, max_value=99.99, allow_nan=False))
def test_percent_and_fraction_agree(value):
    assert fraction(f"{value}%") == pytest.approx(fraction(str(value / 100)))


@given(st.lists(st.sampled_from(backends.BACKENDS), min_size=1))
def test_backend_lists_round_trip(names):
    assert backend_list(",".join(names)) == names


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz,", min_size=1).filter(
    lambda t: any(n and n not in backends.BACKENDS for n in t.split(",")) or not t.strip(",")))
def test_unknown_backends_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="unknown backend"):
        backend_list(text)


@pytest.mark.parametrize("device", ["tpu", "", "GPU"])
def test_unknown_device_is_refused(device):
    with pytest.raises(backends.BackendError, match="unknown device"):
        backends.prepare_environment(device)


def test_unknown_backend_and_missing_package_are_explained(monkeypatch):
    with pytest.raises(backends.BackendError, match="unknown Keras backend 'mxnet'"):
        backends.check_backend("mxnet")
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(backends.BackendError, match="package is not installed"):
        backends.check_backend("jax")


@pytest.mark.parametrize(
    "exc",
    [MemoryError(), type("ResourceExhaustedError", (Exception,), {})("OOM when allocating tensor"),
     RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.2GiB"),
     RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")],
)
def test_out_of_memory_is_recognised(exc):
    assert backends.is_out_of_memory(exc)


def test_other_errors_are_not_out_of_memory():
    assert not backends.is_out_of_memory(ValueError("shapes (32, 200) and (64,) do not match"))


def test_profiles_without_a_sweep_run_one_point():
    from bench.profiles import PROFILES

    assert PROFILES["quick"].points(32, 200) == [(32, 200)]
    assert PROFILES["quick"].points(8, 50) == [(8, 50)]


def test_sweep_points_vary_one_axis_at_a_time():
    from bench.profiles import PROFILES

    points = PROFILES["sweep"].points(32, 200)
    assert [(b, n) for b, n in points if n == 200] == [(1, 200), (8, 200), (32, 200), (128, 200), (512, 200)]
    assert [(b, n) for b, n in points if b == 32] == [(32, 200), (32, 50), (32, 100), (32, 400)]
    assert len(points) == len(set(points))


def test_the_sweep_is_decided_by_the_profile_table():
    from bench.profiles import PROFILES, is_sweep

    assert [name for name, p in PROFILES.items() if p.sweep] == ["sweep"]
    assert all(p.accuracy is not p.sweep for p in PROFILES.values())  # a sweep times steps only
    assert is_sweep("sweep") and not is_sweep("quick") and not is_sweep("a profile since removed")


def test_variants_are_model_overrides():
    from bench.variants import VARIANTS
    from model import DEFAULT_CONFIG

    for name, overrides in VARIANTS.items():
        DEFAULT_CONFIG.replace(**overrides)  # every key is a ModelConfig field
        assert name == name.lower() and " " not in name


@pytest.mark.parametrize(("args", "strict"), [([], False), (["--strict-gpu"], True), (["--strict-gpu", "yes"], True),
                                              (["--strict-gpu", "no"], False)])
def test_strict_gpu_option(args, strict):
    from bench import settings

    parser = argparse.ArgumentParser()
    for flag, kwargs in settings.OPTIONS:
        parser.add_argument(flag, **kwargs)
    parsed = parser.parse_args(args)
    assert settings.from_options(lambda dest: getattr(parsed, dest)).strict_gpu is strict


# ------------------------------------------------------------------------------------ the command line

def test_every_command_has_its_module_and_the_parser_lists_them_all():
    from bench.commands import COMMANDS, build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == ["run", "explain", "report", "compare", "parity", "ab", "matrix", "bisect", "calibrate",
                                 "history", "gpu-check", "cuda-libs"]
    assert all(callable(command.add) and callable(command.run) for command in COMMANDS)


def test_a_usage_error_is_one_line_and_exit_2(tmp_path, capsys):
    from bench.commands import main

    assert main(["report", str(tmp_path)]) == 2
    warning, error = capsys.readouterr().err.splitlines()
    assert warning.startswith("warning: ")
    assert error == f"python -m bench report: error: no readable results in {tmp_path}"
    with pytest.raises(SystemExit) as refused:
        main(["report", str(tmp_path), "--", "-k", "x"])
    assert refused.value.code == 2 and "report takes no pytest options after --" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["report"], ["parity"], ["history"], ["compare", "{path}"]])
def test_every_command_reads_result_files_through_one_loader(tmp_path, capsys, command):
    # A damaged file is a usage error naming it, in every command that reads result files.
    from bench.commands import main
    from tests.resultfiles import make_result

    broken = make_result("jax")
    del broken["benchmarks"][0]["name"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    argv = [command[0], str(tmp_path), *(part.format(path=tmp_path) for part in command[1:])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m bench {command[0]}: error: damaged result file: ") and "broken.json" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "must be at least 1"),
        (["--batch-size", "-3"], "must be at least 1"),
        (["--batch-size", "10000000"], "larger than the supported maximum"),
        (["--maxlen", "0"], "must be at least 1"),
        (["--epochs", "0"], "must be at least 1"),
        (["--profile", "huge"], "invalid choice"),
        (["--device", "tpu"], "invalid choice"),
        (["--dataset", "imdb"], "invalid choice"),
        (["--variant", "fp8"], "invalid choice"),
        (["--seed", "-1"], "is not a seed"),
        (["--seed", "1_0"], "is not a whole number"),
        (["--threads", "two"], "is not a whole number"),
    ],
)
def test_the_option_table_refuses_bad_values_with_a_clear_message(args, message, capsys):
    # The table pytest's parser and `python -m bench run` both declare: each refusal's message, in-process
    # (tests/test_plugin.py checks one of each kind end to end through pytest).
    parser = argparse.ArgumentParser()
    for flag, kwargs in OPTIONS:
        parser.add_argument(flag, **kwargs)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
