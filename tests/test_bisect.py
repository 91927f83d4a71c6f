"""bench.bisect: the releases between two ends, and the search, on a change planted in a local folder of wheels."""

import json
import subprocess

import numpy as np
import pytest

from bench import bisect, index, results
from bench import environments as envs
from tests.conftest import run_cli
from tests.resultfiles import make_result, write_result
from tests.test_ab import env_checkout
from tests.wheels import make_wheel

MACHINE = {"cpu_model": "Test CPU 1", "usable_cores": 2, "threads": 2, "gpu": None}
PLANTED = "1.4.0"  # from this release on, kb-planted says its step is slow


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wheels")
    for minor in range(8):
        version = f"1.{minor}.0"
        slow = minor >= int(PLANTED.split(".")[1])
        make_wheel(folder, "kb-planted", version, {"kb_planted/__init__.py": f"VERSION = {version!r}\nSLOW = {slow}\n"})
    make_wheel(folder, "kb-planted", "1.5.0rc1")
    return folder


def test_the_releases_between_the_ends_come_from_the_folder(wheels):
    config = index.find_links_only(wheels)
    assert bisect.releases_between("kb-planted", "1.1.0", "1.6.0", config) == ["1.1.0", "1.2.0", "1.3.0", "1.4.0",
                                                                              "1.5.0", "1.6.0"]
    assert bisect.releases_between("kb-planted", "1.2.0", "1.0.0", config) == ["1.2.0", "1.1.0", "1.0.0"]
    with pytest.raises(bisect.BisectError, match=r"kb-planted 1\.9\.0 is not a release on find-links .*; nearest "
                                                 r"releases: 1\.6\.0, 1\.7\.0"):
        bisect.releases_between("kb-planted", "1.0.0", "1.9.0", config)
    with pytest.raises(bisect.BisectError, match="the same release"):
        bisect.releases_between("kb-planted", "1.0.0", "1.0", config)


def planted_measure(tmp_path, wheels, *, processes=3, factor=1.5, calls=None):
    """Each version in its real overlay (uv, offline, from the folder); its processes' step times follow SLOW."""
    config = index.find_links_only(wheels)
    rng = np.random.default_rng(7)

    def measure(versions):
        if calls is not None:
            calls.append(list(versions))
        found = {}
        for version in versions:
            env = envs.prepare(envs.Request.parse(f"kb-planted=={version}"), root=tmp_path, index=config,
                               cache=tmp_path / "cache", base=[], log=False)
            said = subprocess.run([env.python, "-c", "import kb_planted; print(kb_planted.SLOW)"],
                                  env=env.variables({}), capture_output=True, text=True, check=True).stdout
            median = 0.100 * (factor if said.strip() == "True" else 1.0)
            folder = tmp_path / "runs" / f"{len(calls or [])}-{version}"
            for i in range(processes):
                data = {"train_step": list(median * (1 + 0.01 * rng.standard_normal(30)))}
                write_result(folder, make_result("jax", kinds=("train_step",), data=data, fingerprint=MACHINE,
                                                 run_id=f"{version}-{len(calls or [])}", repeat_index=i,
                                                 started=f"2026-11-01T08:{i:02d}:00+00:00"), name=f"jax-{i}.json")
            found[version] = results.results_of(results.load([folder])[0])
        return found

    return measure


def test_bisect_names_the_release_that_planted_the_change(tmp_path, wheels):
    versions = bisect.releases_between("kb-planted", "1.0.0", "1.7.0", index.find_links_only(wheels))
    calls, said = [], []
    found = bisect.bisect("kb-planted", versions, planted_measure(tmp_path, wheels, calls=calls), say=said.append)
    assert found.found and (found.first_bad, found.last_good) == (PLANTED, "1.3.0")
    assert calls[0] == ["1.0.0", "1.7.0"] and all(call[0] == "1.0.0" for call in calls)  # GOOD beside every probe
    assert [p.version for p in found.probes] == ["1.3.0", "1.5.0", "1.4.0"]
    assert [p.side for p in found.probes] == ["good", "bad", "bad"]
    assert "8 releases, about 3 probe(s) after the ends" in said[0]
    assert said[1].startswith("bisect: the ends differ: test_train_step[jax-cpu] 1.5")
    # The planted 1.3.0 is as fast as 1.0.0: a ratio near 1 (printed to 3 places) and the good side.
    assert said[2].startswith("bisect: probe 1: kb-planted 1.3.0 against 1.0.0: test_train_step[jax-cpu] ")
    assert abs(float(said[2].split("[jax-cpu] ")[1].split()[0]) - 1) < 0.05 and "-> good side" in said[2]
    assert said[-1].startswith("bisect: first kb-planted release on the bad side: 1.4.0 (last on the good side: 1.3.0)")
    text = bisect.render(found)
    assert "First release on the bad side: **kb-planted 1.4.0** (last on the good side: 1.3.0)." in text
    assert "| 1.4.0 | 3 | bad | test_train_step[jax-cpu] 1.5" in text
    assert "## Evidence: kb-planted 1.4.0 against 1.0.0" in text and "REGRESSION (slower)" in text


def test_a_planted_speedup_is_found_the_same_way(tmp_path, wheels):
    versions = [f"1.{minor}.0" for minor in range(8)]
    found = bisect.bisect("kb-planted", versions, planted_measure(tmp_path, wheels, factor=0.6), say=lambda _: None)
    assert found.first_bad == PLANTED and found.changed == {"test_train_step[jax-cpu]": -1}


def test_one_release_between_the_ends_is_one_probe(tmp_path, wheels):
    said = []
    found = bisect.bisect("kb-planted", ["1.3.0", "1.4.0", "1.5.0"], planted_measure(tmp_path, wheels),
                          say=said.append)
    assert "3 releases, about 1 probe(s) after the ends" in said[0]
    assert [p.version for p in found.probes] == ["1.4.0"] and found.first_bad == PLANTED


def test_ends_that_do_not_differ_stop_the_search(tmp_path, wheels):
    found = bisect.bisect("kb-planted", ["1.0.0", "1.1.0", "1.2.0", "1.3.0"], planted_measure(tmp_path, wheels),
                          say=lambda _: None)
    assert not found.found and found.probes == []
    assert "The ends do not differ beyond the gate: nothing to search." in bisect.render(found)
    with pytest.raises(bisect.BisectError, match="the gate cannot judge the ends: cannot gate: 1 vs 1 processes"):
        bisect.bisect("kb-planted", ["1.0.0", "1.7.0"], planted_measure(tmp_path / "one", wheels, processes=1),
                      say=lambda _: None)


def test_the_real_measure_runs_each_release_in_its_own_environment(tmp_path, wheels):
    code = env_checkout(tmp_path / "code")
    measure = bisect.measuring("kb-planted", backends=["jax"], pytest_args=[], repeat=1, run_dir=tmp_path / "run",
                               root=code, config=index.find_links_only(wheels),
                               prepare=lambda request, **kw: envs.prepare(request, cache=tmp_path / "cache", base=[],
                                                                           **kw))
    measure(["1.0.0", "1.7.0"])
    measure(["1.0.0", "1.3.0"])
    labels = set()
    for order in (tmp_path / "run").glob("*/*/order.jsonl"):
        labels |= {json.loads(line)["KERASBENCH_ENVIRONMENT"].split(": ")[1] for line in order.read_text().splitlines()}
    assert labels == {"kb-planted==1.0.0", "kb-planted==1.7.0", "kb-planted==1.3.0"}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["ends", "probe-1-1.3.0"]


def test_the_command_refuses_ends_that_are_not_releases(tmp_path, wheels):
    done = run_cli("bisect", "kb-planted", "1.0.0", "9.9.9", "-k", "train_step", "--find-links", wheels,
                   "--run-dir", tmp_path / "run", timeout=60)
    assert done.returncode == 2 and "kb-planted 9.9.9 is not a release" in done.stderr
    assert "nearest releases: 1.6.0, 1.7.0" in done.stderr and not (tmp_path / "run").exists()
