"""A process's exact package set: what it imports, its id, and what differs between two sets."""

import subprocess
import sys

from bench import packages
from bench.results import PackageSet
from tests.conftest import ROOT


def dist_info(folder, name, version):
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_the_first_copy_on_the_path_wins_as_it_does_for_import(tmp_path):
    front, back = tmp_path / "front", tmp_path / "back"
    dist_info(front, "Keras", "3.12.0")
    dist_info(back, "keras", "3.15.1")
    dist_info(back, "Absl_Py", "2.5.1")
    assert packages.installed([str(front), str(back)]) == ["absl-py==2.5.1", "keras==3.12.0"]


def test_a_process_records_the_set_it_runs_on_and_an_overlay_changes_it(tmp_path):
    dist_info(tmp_path, "keras", "0.0.1")
    code = "from bench import packages; s = packages.current('overlay x'); print(s.id, s.source, *s.installed)"
    outputs = []
    for extra in ([], [str(tmp_path)]):
        path = ":".join([*extra, str(ROOT)])
        done = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": path}, capture_output=True, text=True)
        outputs.append(done.stdout.split())
    plain, overlaid = outputs
    assert "keras==0.0.1" in overlaid and "keras==0.0.1" not in plain and plain[1:3] == ["overlay", "x"]
    assert plain[0] != overlaid[0] and plain[0] == packages.set_id(plain[3:])


def test_differences_name_changed_added_and_removed_packages():
    before = ["keras==3.12.0", "dm-tree==0.1.8", "numpy==2.4.6"]
    after = ["keras==3.15.1", "numpy==2.4.6", "rich==15.0.0"]
    assert packages.differences(before, after) == ["keras 3.12.0 → 3.15.1", "+rich 15.0.0", "-dm-tree 0.1.8"]
    assert packages.differences(after, after) == []
    assert packages.set_id(after) == packages.set_id(list(reversed(after)))


def test_current_is_this_process_set():
    found = packages.current()
    assert isinstance(found, PackageSet) and found.source == packages.PROJECT_SOURCE
    assert any(spec.startswith("pytest==") for spec in found.installed) and found.id == packages.set_id(found.installed)
