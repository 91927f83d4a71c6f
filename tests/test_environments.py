"""A side's package set: planning, the cache (reuse, rebuild, lock), errors; fake installers, no network.

The tests that install for real use uv offline, from a local folder of wheels (tests/wheels.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from bench import environments as envs
from bench import index, results
from bench.installer import InstallFailed, UvInstaller
from bench.packages import installed
from tests.conftest import ROOT
from tests.wheels import make_wheel

BASE = ["keras==3.15.1", "jax==0.10.2", "jaxlib==0.10.2", "numpy==2.4.6", "rich==15.0.0", "absl-py==2.5.1"]
OFFLINE_INDEX = index.IndexConfig(index_url="http://127.0.0.1:9/simple")


class FakeInstaller:
    """Writes dist-info folders as uv would; records every call. ``requires`` and ``compiled`` shape the wheels."""

    def __init__(self, *, requires: dict | None = None, compiled: tuple = (), delay: float = 0.0,
                 fail: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.requires = requires or {}
        self.compiled = compiled
        self.delay = delay
        self.fail = fail

    def overlay(self, target, packages, python, index):
        self.calls.append(("overlay", Path(target), tuple(packages), python))
        time.sleep(self.delay)
        if self.fail:
            raise InstallFailed(["uv", "pip", "install"], self.fail)
        for spec in packages:
            name, _, version = spec.partition("==")
            name = name.split(">")[0].split("<")[0]
            version = version or "9.9.9"
            info = Path(target) / f"{name.replace('-', '_')}-{version}.dist-info"
            info.mkdir(parents=True)
            requires = "".join(f"Requires-Dist: {r}\n" for r in self.requires.get(name, ()))
            (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires}")
            pure = name not in self.compiled
            (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: {str(pure).lower()}\n"
                                        f"Tag: {'py3-none-any' if pure else 'cp311-cp311-manylinux_2_28_x86_64'}\n")

    def create_venv(self, folder, python):
        self.calls.append(("venv", Path(folder), python))
        (Path(folder) / "bin").mkdir(parents=True)
        (Path(folder) / "bin" / "python").symlink_to(sys.executable)

    def install(self, python, requirements, constraints, overrides, index):
        self.calls.append(("install", Path(python), tuple(requirements), Path(constraints).read_text(),
                           Path(overrides).read_text()))
        if self.fail:
            raise InstallFailed(["uv", "pip", "install"], self.fail)

    def freeze(self, python):
        return ["jax==0.9.2", "jaxlib==0.9.2", "keras==3.15.1"]


def prepare(request, tmp_path, installer, **kwargs):
    kwargs = {"root": ROOT, "installer": installer, "index": index.IndexConfig(), "cache": tmp_path / "cache",
              "base": BASE, "log": False, **kwargs}
    return envs.prepare(request, **kwargs)


# ---------------------------------------------------------------------------------------- planning

def test_a_pure_python_pin_is_an_overlay_and_a_compiled_one_a_full_environment():
    assert envs.plan(envs.Request.parse("keras==3.12.0"), BASE).kind == "overlay"
    assert envs.plan(envs.Request.parse("keras==3.15.1"), BASE).kind == "project"  # the venv has it already
    assert envs.plan(envs.Request.parse("keras>=3.10"), BASE).kind == "project"
    full = envs.plan(envs.Request.parse("keras==3.12.0 jax==0.9.2"), BASE, "jax==0.10.2\n", "constraints.txt")
    assert full.kind == "full" and full.packages == ("keras==3.12.0", "jax==0.9.2") and "jax" in full.why
    assert full.constraints == "jax==0.10.2\n" and full.constraints_from == "constraints.txt"


def test_a_constraints_file_differs_only_where_its_pins_differ_from_the_venv():
    text = "\n".join(BASE).replace("keras==3.15.1", "keras==3.14.1") + "\n# a comment\ntorch==2.13.0\n"
    planned = envs.plan(envs.Request(constraints=text), BASE)
    assert planned.kind == "overlay" and planned.packages == ("keras==3.14.1",)  # torch: not in the venv, skipped
    assert envs.plan(envs.Request(constraints="\n".join(BASE)), BASE).kind == "project"
    bumped = envs.plan(envs.Request(constraints=text.replace("jax==0.10.2", "jax==0.10.1"), constraints_from="c.txt"),
                       BASE)
    assert bumped.kind == "full" and bumped.constraints_from == "c.txt" and bumped.packages == ()


def test_bad_requirements_and_unreadable_constraints_are_refused(tmp_path):
    with pytest.raises(envs.EnvironmentFailed, match="not a package requirement"):
        envs.Request.parse("keras===")
    with pytest.raises(envs.EnvironmentFailed, match="cannot read constraints file"):
        envs.Request.parse(constraints=tmp_path / "nope.txt")


def test_the_project_venv_needs_nothing_built(tmp_path):
    installer = FakeInstaller()
    env = prepare(envs.Request(), tmp_path, installer)
    assert env is envs.PROJECT and installer.calls == [] and not (tmp_path / "cache").exists()
    assert env.variables({"PYTHONPATH": "x"}) == {"PYTHONPATH": "x", envs.ENVIRONMENT_ENV: ""}


# ----------------------------------------------------------------------------------------- caching

def test_an_overlay_is_built_once_then_reused(tmp_path):
    installer = FakeInstaller()
    first = prepare(envs.Request.parse("keras==3.12.0"), tmp_path, installer)
    again = prepare(envs.Request.parse("keras==3.12.0"), tmp_path, installer)
    assert [c[0] for c in installer.calls] == ["overlay"]
    assert first.kind == "overlay" and first.built_s is not None and again.built_s is None
    assert first.id == again.id and first.paths == again.paths and first.resolved == ("keras==3.12.0",)
    assert (first.folder / envs.MARKER).exists() and first.folder.parent == tmp_path / "cache"
    assert first.python == sys.executable
    other = prepare(envs.Request.parse("keras==3.13.2"), tmp_path, installer)
    assert other.id != first.id
    env = first.variables({"PYTHONPATH": "/code"})
    assert env["PYTHONPATH"] == f"{first.paths[0]}:/code" and env[envs.ENVIRONMENT_ENV] == first.label
    assert first.label == f"overlay {first.id}: keras==3.12.0"


def test_nothing_is_installed_into_the_project_venv(tmp_path):
    installer = FakeInstaller()
    prepare(envs.Request.parse("keras==3.12.0"), tmp_path, installer)
    prepare(envs.Request.parse("jax==0.9.2"), tmp_path, installer)
    cache = tmp_path / "cache"
    for call in installer.calls:
        assert call[1].is_relative_to(cache), call  # every target and every interpreter lies in the cache
    assert not any(c[0] == "install" and c[1] == Path(sys.executable) for c in installer.calls)


def test_a_folder_without_its_marker_or_with_files_missing_is_rebuilt(tmp_path, capsys):
    installer = FakeInstaller()
    env = prepare(envs.Request.parse("keras==3.12.0"), tmp_path, installer, log=True)
    (env.folder / envs.MARKER).unlink()  # as a build killed before its end leaves it
    assert envs.broken(env.folder, "overlay") == "no completion marker: a build was interrupted"
    rebuilt = prepare(envs.Request.parse("keras==3.12.0"), tmp_path, installer, log=True)
    assert rebuilt.built_s is not None and "broken cache entry (no completion marker" in capsys.readouterr().err
    for info in Path(rebuilt.paths[0]).glob("keras-*.dist-info"):
        (info / "METADATA").unlink()
    assert "keras==3.12.0 missing from the overlay" in envs.broken(rebuilt.folder, "overlay")
    assert prepare(envs.Request.parse("keras==3.12.0"), tmp_path, installer).built_s is not None
    assert [c[0] for c in installer.calls] == ["overlay"] * 3


def test_a_failed_build_leaves_no_folder_behind(tmp_path):
    with pytest.raises(envs.EnvironmentFailed):
        prepare(envs.Request.parse("keras==3.12.0"), tmp_path, FakeInstaller(fail="error: something broke"))
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []
    assert prepare(envs.Request.parse("keras==3.12.0"), tmp_path, FakeInstaller()).built_s is not None


def test_two_commands_building_the_same_environment_build_it_once(tmp_path):
    # Two threads hold separate open files, so flock excludes them as it does two processes.
    installer = FakeInstaller(delay=0.5)
    found: list = []
    threads = [threading.Thread(target=lambda: found.append(prepare(envs.Request.parse("keras==3.12.0"), tmp_path,
                                                                    installer)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(installer.calls) == 1
    assert sorted(env.built_s is None for env in found) == [False, True]  # one built it, the other waited, reused
    assert envs.broken(found[0].folder, "overlay") is None


# ------------------------------------------------------------------------------------ what goes where

def test_dependencies_the_venv_lacks_are_added_to_the_overlay(tmp_path):
    installer = FakeInstaller(requires={"keras": ("dm-tree", "rich>=13", "numpy")})
    env = prepare(envs.Request.parse("keras==3.0.0"), tmp_path, installer)
    assert [c[2] for c in installer.calls] == [("keras==3.0.0",), ("dm-tree",)]
    assert env.kind == "overlay" and env.resolved == ("dm-tree==9.9.9", "keras==3.0.0")


def test_an_overlay_that_would_shadow_compiled_code_becomes_a_full_environment(tmp_path):
    installer = FakeInstaller(requires={"keras": ("numpy<2",)})
    env = prepare(envs.Request.parse("keras==3.0.0"), tmp_path, installer)
    assert env.kind == "full" and [c[0] for c in installer.calls] == ["overlay", "venv", "install"]
    *_, constraints, overrides = installer.calls[-1]
    assert overrides == "keras==3.0.0\n" and "keras==" not in constraints and "jax==0.10.2" in constraints
    wheel = FakeInstaller(compiled=("rich",))  # a "pure" package whose wheel holds compiled code
    assert prepare(envs.Request.parse("rich==14.0.0"), tmp_path, wheel).kind == "full"


def test_a_full_environment_overrides_the_constraints_and_frees_the_companion(tmp_path):
    installer = FakeInstaller()
    env = prepare(envs.Request.parse("jax==0.9.2", backends=["jax"]), tmp_path, installer)
    venv, install = installer.calls
    assert venv[0] == "venv" and venv[2] == sys.executable
    _, python, requirements, constraints, overrides = install
    assert overrides == "jax==0.9.2\n"
    assert "jax==" not in constraints and "jaxlib==" not in constraints and "keras==3.15.1" in constraints
    assert "jax>=0.4.30" in requirements and not any(r.startswith(("torch", "tensorflow")) for r in requirements)
    assert "kerasbench" not in " ".join(requirements) and any(r.startswith("keras>=") for r in requirements)
    assert env.python == str(python) and env.paths == () and env.resolved[0] == "jax==0.9.2"
    assert env.variables({"PYTHONHOME": "/x"}) == {envs.ENVIRONMENT_ENV: env.label}
    assert envs.broken(env.folder, "full") is None
    (env.folder / "venv" / "bin" / "python").unlink()
    assert "interpreter" in envs.broken(env.folder, "full")


def test_the_cache_folder_follows_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(envs.CACHE_ENV, str(tmp_path / "here"))
    assert envs.cache_dir() == tmp_path / "here"
    monkeypatch.delenv(envs.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert envs.cache_dir() == tmp_path / "xdg" / "kerasbench" / "environments"


# ------------------------------------------------------------------------------------------- errors

def test_a_version_that_does_not_exist_names_the_nearest_releases(tmp_path):
    wheels = tmp_path / "wheels"
    for version in ("3.10.0", "3.11.3", "3.12.0", "3.13.0", "3.14.0rc1", "3.15.0"):
        make_wheel(wheels, "keras", version)
    said = ("  \u00d7 No solution found when resolving dependencies:\n  ╰─▶ Because there is no version of "
            "keras==3.12.9 and you require keras==3.12.9, we can conclude that your requirements are unsatisfiable.")
    with pytest.raises(envs.EnvironmentFailed) as caught:
        prepare(envs.Request.parse("keras==3.12.9"), tmp_path, FakeInstaller(fail=said),
                index=index.find_links_only(wheels))
    assert str(caught.value) == (f"keras 3.12.9 is not a release on find-links {wheels}; nearest releases: "
                                 "3.11.3, 3.12.0, 3.13.0, 3.15.0")


def test_an_unreachable_index_names_what_was_tried(tmp_path):
    said = "error: Failed to fetch: `http://127.0.0.1:9/simple/keras/`\n  Caused by: tcp connect error"
    config = index.IndexConfig(index_url="http://127.0.0.1:9/simple", find_links=("/nowhere",))
    with pytest.raises(envs.EnvironmentFailed) as caught:
        prepare(envs.Request.parse("keras==3.12.0"), tmp_path, FakeInstaller(fail=said), index=config)
    message = str(caught.value)
    assert message.startswith("cannot reach the package index to install keras==3.12.0: tried "
                              "http://127.0.0.1:9/simple, find-links /nowhere (uv: error: Failed to fetch")
    assert "Offline?" in message


def test_uv_itself_offline_is_explained(tmp_path, monkeypatch):
    # The real uv against an index nobody listens on: no network leaves this machine.
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    installer = UvInstaller()
    with pytest.raises(envs.EnvironmentFailed, match=r"cannot reach the package index .* tried http://127.0.0.1:9"):
        prepare(envs.Request.parse("keras==3.12.0"), tmp_path, installer,
                index=index.IndexConfig(index_url="http://127.0.0.1:9/simple", no_index=False))


def test_a_real_overlay_from_a_folder_of_wheels_goes_in_front_of_the_venv(tmp_path):
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "kb-planted", "1.0.0")
    make_wheel(wheels, "kb-planted", "2.0.0", requires=("kb-helper>=1",))
    make_wheel(wheels, "kb-helper", "1.5.0")
    env = prepare(envs.Request.parse("kb-planted==2.0.0"), tmp_path, UvInstaller(),
                  index=index.find_links_only(wheels), base=None)
    assert env.kind == "overlay" and env.resolved == ("kb-helper==1.5.0", "kb-planted==2.0.0")
    code = "import kb_planted, kb_helper; print(kb_planted.VERSION, kb_helper.VERSION)"
    done = subprocess.run([env.python, "-c", code], env=env.variables({}), capture_output=True, text=True)
    assert done.stdout.split() == ["2.0.0", "1.5.0"], done.stderr
    assert "kb-planted==2.0.0" not in installed()  # this venv itself is untouched
    assert prepare(envs.Request.parse("kb-planted==2.0.0"), tmp_path, UvInstaller(),
                   index=index.find_links_only(wheels), base=None).built_s is None


# -------------------------------------------------------------------------------------------- index

def test_pip_configuration_is_read_as_pip_orders_it(tmp_path):
    first, second = tmp_path / "global.conf", tmp_path / "user.conf"
    first.write_text("[global]\nindex-url = https://mirror.example/simple\nfind-links = /opt/wheels\n")
    second.write_text("[global]\nextra-index-url = file:///opt/a/simple file:///opt/b/simple\n"
                      "[install]\nfind-links = /srv/wheels /opt/more\n")
    config = index.from_pip_config([first, second], environ={"PIP_INDEX_URL": "https://env.example/simple"})
    assert config == index.IndexConfig("https://env.example/simple", ("file:///opt/a/simple", "file:///opt/b/simple"),
                                       ("/srv/wheels", "/opt/more"))
    assert config.uv_args() == ["--index-url", "https://env.example/simple", "--extra-index-url",
                                "file:///opt/a/simple", "--extra-index-url", "file:///opt/b/simple", "--find-links",
                                "/srv/wheels", "--find-links", "/opt/more", "--index-strategy", "unsafe-best-match"]
    assert index.IndexConfig().uv_args() == []
    assert index.find_links_only(tmp_path).uv_args() == ["--no-index", "--find-links", str(tmp_path)]


def test_releases_come_from_simple_pages_and_find_links(tmp_path):
    simple = tmp_path / "simple" / "kb-planted"
    simple.mkdir(parents=True)
    (simple / "index.html").write_text(
        '<a href="../../files/kb_planted-1.0.0-py3-none-any.whl#sha256=00">kb_planted-1.0.0-py3-none-any.whl</a>'
        '<a href="../../files/kb_planted-1.1.0.tar.gz" data-yanked="">kb_planted-1.1.0.tar.gz</a>'
        '<a href="../../files/kb_planted-1.2.0.tar.gz">kb_planted-1.2.0.tar.gz</a>')
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "kb-planted", "1.3.0")
    make_wheel(wheels, "kb-other", "9.0.0")
    config = index.IndexConfig(index_url=(tmp_path / "simple").as_uri(), find_links=(str(wheels),))
    assert list(map(str, index.releases("KB_Planted", config))) == ["1.0.0", "1.2.0", "1.3.0"]  # 1.1.0 was yanked
    with pytest.raises(index.IndexUnreachable, match=r"tried http://127.0.0.1:9/simple: .*refused"):
        index.releases("keras", OFFLINE_INDEX)


# ---------------------------------------------------------------------------------------- the floor

def keras_floor() -> Version:
    """The oldest Keras pyproject.toml accepts (its ``keras>=X`` dependency)."""
    [keras] = [Requirement(r) for r in envs.project_requirements(ROOT, ()) if Requirement(r).name == "keras"]
    [floor] = [Version(spec.version) for spec in keras.specifier if spec.operator == ">="]
    return floor


def test_the_smoke_train_step_runs_under_the_oldest_keras_pyproject_accepts(tmp_path):
    # The floor release through the overlay, under JAX; the overlay is kept in the user's cache, so this
    # downloads once. Skipped only when the package index cannot be reached.
    config = index.from_pip_config()
    try:
        available = index.releases("keras", config)
    except index.IndexUnreachable as exc:
        pytest.skip(f"the package index cannot be reached: {exc}")
    release = min(v for v in available if v >= keras_floor() and not v.is_prerelease)
    try:
        env = envs.prepare(envs.Request.parse(f"keras=={release}"), root=ROOT, index=config)
    except envs.EnvironmentFailed as exc:
        if str(exc).startswith("cannot reach the package index"):
            pytest.skip(str(exc))
        raise
    assert env.kind == "overlay" and f"keras=={release}" in env.resolved
    out = tmp_path / "results"
    done = subprocess.run([env.python, "-m", "pytest", "bench/", "-q", "--profile", "smoke", "--dataset", "synthetic",
                           "--train-samples", "64", "--test-samples", "64", "--maxlen", "20", "--device", "cpu",
                           "-k", "train_step and not native", "--results-dir", str(out)],
                          cwd=ROOT, env=env.variables({**os.environ, "KERAS_BACKEND": "jax"}), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [run] = results.load([out])[0]
    [train] = run.results
    assert train.kind == "train_step" and train.context.keras == str(release) and train.stats.rounds == 5
    assert f"keras=={release}" in run.info.packages.installed and run.info.packages.source == env.label
