"""bench.matrix: cells from --vary, interleaved runs with failed cells marked, the table against a reference cell."""

import json
import sys

import numpy as np
import pytest

from bench import environments as envs
from bench import matrix, plots, results, runner
from tests.conftest import run_cli
from tests.resultfiles import make_result, write_result
from tests.test_ab import env_checkout
from tests.wheels import make_wheel

MACHINE = {"cpu_model": "Test CPU 1", "usable_cores": 2, "threads": 2, "gpu": None}


def test_varies_make_the_product_of_their_versions():
    grid = matrix.cells([matrix.parse_vary("keras=3.10.0,3.12.0"), matrix.parse_vary("jax=0.9.2,0.10.2")])
    assert [c.name for c in grid] == ["keras=3.10.0 jax=0.9.2", "keras=3.10.0 jax=0.10.2", "keras=3.12.0 jax=0.9.2",
                                      "keras=3.12.0 jax=0.10.2"]
    assert grid[0].pins == ("keras==3.10.0", "jax==0.9.2") and grid[0].slug == "keras-3.10.0_jax-0.9.2"
    assert matrix.reference_cell(grid, None) == grid[0]
    assert matrix.reference_cell(grid, "keras==3.12.0  jax=0.10.2") == grid[3]
    with pytest.raises(matrix.MatrixError, match=r"is not a cell; the cells are: keras=3\.10\.0 jax=0\.9\.2"):
        matrix.reference_cell(grid, "keras=3.11.0")


@pytest.mark.parametrize("text", ["keras", "keras=", "=3.1", "keras=3.1,3.1", "ker as=3.1"])
def test_bad_varies_are_refused(text):
    with pytest.raises(matrix.MatrixError):
        matrix.parse_vary(text)
    with pytest.raises(matrix.MatrixError, match="varied twice"):
        matrix.cells([("keras", ["3.1"]), ("keras", ["3.2"])])


def cell_results(tmp_path, cell, medians, *, keras, backend="jax", seed=0, accuracy=None):
    """One cell's run: a process per median, train and predict rounds scattered 1% around it."""
    rng = np.random.default_rng(seed)
    folder = tmp_path / cell
    kinds = ("train_step", "predict_step", *(("accuracy",) if accuracy is not None else ()))
    for i, median in enumerate(medians):
        data = {kind: list(median * scale * (1 + 0.01 * rng.standard_normal(30)))
                for kind, scale in (("train_step", 1.0), ("predict_step", 0.2))}
        write_result(folder, make_result(backend, kinds=kinds, data=data, keras=keras, run_id=cell, repeat_index=i,
                                         fingerprint=MACHINE, accuracy=accuracy,
                                         started=f"2026-11-01T08:{i:02d}:00+00:00"),
                     name=f"{backend}-{i}.json")
    return results.results_of(results.load([folder])[0])


def test_rows_hold_each_cell_against_the_reference_and_say_why_a_cell_is_empty(tmp_path):
    grid = matrix.cells([matrix.parse_vary("keras=3.10.0,3.12.0,3.13.2,3.99.0")])
    ref, slow, failing, missing = grid
    found = {ref.name: cell_results(tmp_path, "ref", [0.100, 0.101, 0.099], keras="3.10.0", accuracy=0.8),
             slow.name: cell_results(tmp_path, "slow", [0.150, 0.151, 0.149], keras="3.12.0", seed=1)}
    outcomes = [runner.Outcome("jax", "ok", side=ref.name), runner.Outcome("jax", "ok", side=slow.name),
                runner.Outcome("jax", "failed (exit 1): AttributeError: no keras.ops.foo", side=failing.name)]
    problems = {missing.name: "cannot be installed: keras 3.99.0 is not a release on x; nearest releases: 3.15.1"}
    rows = matrix.build_rows(grid, ref, ["jax"], found, problems, outcomes)
    by_cell = {row.cell: row for row in rows}
    reference = by_cell[ref.name]
    assert reference.reference and reference.train_ratio == 1.0 and reference.train_verdict == "reference"
    assert reference.val_accuracy == pytest.approx(0.8) and reference.kernel.startswith("generic (lax.scan)")
    assert reference.processes == 3 and reference.train_ci_ms[0] < reference.train_ms < reference.train_ci_ms[1]
    row = by_cell[slow.name]
    assert row.status == "ok" and row.keras == "3.12.0" and row.val_accuracy is None
    assert row.train_ratio == pytest.approx(1.5, rel=0.02) and row.train_ratio_ci[0] > 1.4
    assert row.train_verdict == "REGRESSION (slower)" and row.predict_verdict == "REGRESSION (slower)"
    assert by_cell[failing.name].status == ("the harness cannot run it: failed (exit 1): AttributeError: "
                                            "no keras.ops.foo")
    assert by_cell[missing.name].status.startswith("cannot be installed: keras 3.99.0 is not a release")
    done = matrix.MatrixRun(grid, ref, tmp_path, {ref.name: envs.PROJECT}, problems, outcomes, 12.0)
    text = matrix.render(done, rows, found[ref.name], repeat=3)
    assert text.startswith("# matrix: keras=3.10.0, keras=3.12.0, keras=3.13.2, keras=3.99.0\n")
    assert "| keras=3.12.0 | jax | 3.12.0 | 1.0.0 | 3 |" in text and "REGRESSION (slower)" in text
    assert "- keras=3.10.0: project venv" in text and "Measured on Test CPU 1, 2 usable cores" in text
    _, js = matrix.write(done, rows, found[ref.name], repeat=3, threshold=0.1, confidence=0.95)
    document = json.loads(js.read_text())
    assert document["kerasbench_report"] == "matrix" and len(document["rows"]) == 4
    assert results.load([tmp_path])[1] == []  # result readers skip matrix.json without a warning
    for kind in ("train", "predict"):
        path = plots.matrix(rows, [c.name for c in grid], kind, tmp_path / f"{kind}.png")
        assert path.stat().st_size > 1000
    assert plots.matrix(rows[2:], [c.name for c in grid], "train", tmp_path / "none.png") is None


def test_cells_run_interleaved_and_one_that_cannot_be_installed_is_marked(tmp_path):
    code = env_checkout(tmp_path / "code")
    grid = matrix.cells([matrix.parse_vary("keras=3.10.0,3.11.0,3.12.0")])

    def prepare(request, *, root):
        if request.packages == ("keras==3.11.0",):
            raise envs.EnvironmentFailed("keras 3.11.0 is not a release on here; nearest releases: 3.10.0, 3.12.0")
        folder = tmp_path / request.packages[0]
        folder.mkdir()
        return envs.Environment("overlay", request.packages[0], sys.executable, (str(folder),), request.packages)

    done = matrix.run_matrix(grid, reference=grid[0], backends=["jax"], pytest_args=[], repeat=2,
                             run_dir=tmp_path / "run", root=code, prepare=prepare)
    assert [o.label for o in done.outcomes] == ["keras=3.10.0 jax (1/2)", "keras=3.12.0 jax (1/2)",
                                                "keras=3.12.0 jax (2/2)", "keras=3.10.0 jax (2/2)"]
    assert done.problems == {"keras=3.11.0": "cannot be installed: keras 3.11.0 is not a release on here; "
                                             "nearest releases: 3.10.0, 3.12.0"}
    order = [json.loads(line) for line in (done.folder(grid[2]) / "order.jsonl").read_text().splitlines()]
    assert {e["KERASBENCH_ENVIRONMENT"] for e in order} == {"overlay keras==3.12.0: keras==3.12.0"}
    assert sorted(p.name for p in (tmp_path / "run" / "logs").iterdir())[0] == "keras=3.10.0-jax-1.log"


def test_the_command_marks_every_cell_and_writes_its_outputs(tmp_path):
    # Packages from a local folder only (pip's variables): 3.99.0 is not there, 3.15.1 is this venv's own.
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "keras", "3.12.0")
    done = run_cli("matrix", "--vary", "keras=3.15.1,3.99.0", "--backends", "jax", "--repeat", "1",
                   "--run-dir", tmp_path / "run", "--profile", "smoke", "--", "-k", "nomatch",
                   env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "PIP_CONFIG_FILE": "/dev/null",
                        envs.CACHE_ENV: str(tmp_path / "cache")},
                   timeout=300)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]  # no cell measured anything
    text = (tmp_path / "run" / "MATRIX.md").read_text()
    assert (f"cannot be installed: keras 3.99.0 is not a release on find-links {wheels}; nearest releases: "
            "3.12.0") in text
    assert "| keras=3.15.1 (ref) | jax |" in text and "the harness cannot run it: no benchmark matched" in text
    assert json.loads((tmp_path / "run" / "matrix.json").read_text())["reference"] == "keras=3.15.1"
    bad = run_cli("matrix", "--vary", "keras", timeout=60)
    assert bad.returncode == 2 and "is not PACKAGE=VERSION" in bad.stderr
