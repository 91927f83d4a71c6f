"""pytest loads kerasbench's plugin (bench/plugin.py) from here, for ``pytest bench/`` and ``pytest tests``."""

pytest_plugins = ["bench.plugin"]
