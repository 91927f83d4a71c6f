"""A folder of real Keras wheels with a known slowdown planted from one release on, for ``bench bisect --find-links``.

When a version matrix finds no change beyond the gate, bisect is shown on a planted one instead:

    .venv/bin/python -m experiments.plant_keras_wheels DIR 3.12.0 3.12.4 3.13.0 3.13.2 3.14.0 3.14.1 3.15.0 \
        --plant 3.14.0 --sleep-ms 20
    .venv/bin/python -m bench bisect keras 3.12.0 3.15.0 -k "train_step and not native" --backends torch \
        --find-links DIR --repeat 3 --profile quick --device cpu --threads 1

Each release is downloaded as it is on the index (``pip download --no-deps``); from ``--plant`` on,
PyTorch's ``train_step`` (``keras/src/backend/torch/trainer.py``, which runs eagerly on every step)
first sleeps ``--sleep-ms``, and the wheel's RECORD is rewritten to match. The wheels keep their
names and versions: only a cache entry built from this folder (bisect's --find-links) holds them.
Leave out the release this venv holds (3.15.1 here): a side asking for it runs on the venv itself.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

TRAINER = "keras/src/backend/torch/trainer.py"
STEP = "    def train_step(self, data):\n"


def plant(wheel: Path, sleep_ms: float) -> None:
    """Rewrite ``wheel`` in place with a sleep at the top of the torch trainer's train_step."""
    with zipfile.ZipFile(wheel) as archive:
        files = {info.filename: archive.read(info) for info in archive.infolist()}
    source = files[TRAINER].decode()
    if STEP not in source:
        raise SystemExit(f"{wheel.name}: no `{STEP.strip()}` in {TRAINER}")
    files[TRAINER] = source.replace(STEP, f"{STEP}        __import__('time').sleep({sleep_ms / 1e3!r})\n", 1).encode()
    [record] = [name for name in files if name.endswith(".dist-info/RECORD")]
    lines = []
    for line in files[record].decode().splitlines():
        path = line.split(",", 1)[0]
        if path == TRAINER:
            digest = base64.urlsafe_b64encode(hashlib.sha256(files[TRAINER]).digest()).rstrip(b"=").decode()
            line = f"{path},sha256={digest},{len(files[TRAINER])}"
        lines.append(line)
    files[record] = ("\n".join(lines) + "\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.plant_keras_wheels",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("versions", nargs="+", help="the Keras releases to put in the folder")
    parser.add_argument("--plant", required=True, help="the first release that gets the slowdown")
    parser.add_argument("--sleep-ms", type=float, default=20.0, help="added to every PyTorch train step")
    args = parser.parse_args(argv)
    from packaging.version import Version

    args.folder.mkdir(parents=True, exist_ok=True)
    for version in args.versions:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                        "--dest", str(args.folder), f"keras=={version}"], check=True)
        [wheel] = args.folder.glob(f"keras-{version}-*.whl")
        if Version(version) >= Version(args.plant):
            plant(wheel, args.sleep_ms)
            print(f"{wheel.name}: planted {args.sleep_ms:g} ms per torch train step")
        else:
            print(f"{wheel.name}: as released")
    return 0


if __name__ == "__main__":
    sys.exit(main())
