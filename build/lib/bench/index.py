"""The package index as this user's pip is configured: where packages come from, and which releases exist.

uv reads its own configuration (``uv.toml``, ``UV_*`` variables) but not pip's, while on many
machines pip's is the one that names the mirror, the extra indexes and the local wheel folders. So
``from_pip_config`` reads pip's (its files, then ``PIP_*`` variables, as pip orders them) and
``uv_args`` passes it to uv as flags. ``releases`` lists a package's released versions from the
same places (PEP 691 JSON or PEP 503 HTML simple pages, and find-links folders or pages): what
``bisect`` searches over and what an error about a missing version names.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

PYPI = "https://pypi.org/simple"
TIMEOUT_S = 20


class IndexUnreachable(OSError):
    """No source of releases could be read (offline, or every URL failed); names what was tried."""


@dataclass(frozen=True)
class IndexConfig:
    """Where packages come from: pip's index-url, extra-index-url, find-links and no-index."""

    index_url: str | None = None  # None: uv's own default (its configuration, else PyPI)
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    def uv_args(self) -> list[str]:
        """The same configuration as uv flags.

        pip weighs every index alike and takes the best version from any; uv by default stops at
        the first index that has the package at all. A local extra index holding one release would
        then hide every other release on PyPI, so where there are several sources uv is asked to
        behave as pip does (unless the user chose a strategy through UV_INDEX_STRATEGY).
        """
        args: list[str] = []
        if self.no_index:
            args.append("--no-index")
        elif self.index_url:
            args += ["--index-url", self.index_url]
        if not self.no_index:
            for url in self.extra_index_urls:
                args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        several = (not self.no_index and self.extra_index_urls) or (self.find_links and not self.no_index)
        if several and "UV_INDEX_STRATEGY" not in os.environ:
            args += ["--index-strategy", "unsafe-best-match"]
        return args

    @property
    def indexes(self) -> list[str]:
        """The simple-index URLs asked, in order (PyPI where none is configured)."""
        if self.no_index:
            return []
        return [self.index_url or os.environ.get("UV_INDEX_URL") or os.environ.get("UV_DEFAULT_INDEX") or PYPI,
                *self.extra_index_urls]

    def tried(self) -> str:
        """'https://pypi.org/simple, find-links /opt/wheels': what a failure message names."""
        parts = list(self.indexes) + [f"find-links {link}" for link in self.find_links]
        return ", ".join(parts) or "no index and no find-links"

    def key(self) -> dict:
        """What an environment built from this configuration depends on (part of its cache key)."""
        return {"indexes": self.indexes, "find_links": list(self.find_links)}


def pip_config_files() -> list[Path]:
    """pip's configuration files, lowest precedence first (global, user, site), as ``pip config debug`` lists them."""
    if os.environ.get("PIP_CONFIG_FILE") == os.devnull:
        return []
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    files = [Path(d) / "pip" / "pip.conf" for d in reversed(xdg_dirs) if d] + [Path("/etc/pip.conf")]
    files += [Path.home() / ".pip" / "pip.conf", config_home / "pip" / "pip.conf", Path(sys.prefix) / "pip.conf"]
    if os.environ.get("PIP_CONFIG_FILE"):
        files.append(Path(os.environ["PIP_CONFIG_FILE"]))
    return files


def from_pip_config(files: Sequence[Path] | None = None, environ: dict | None = None) -> IndexConfig:
    """The index settings of pip's configuration files and PIP_* variables (later wins, [install] over [global])."""
    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    for path in pip_config_files() if files is None else files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error):
            continue  # pip itself stops on a broken file; here it only loses its index settings
        for section in ("global", "install"):
            if parser.has_section(section):
                values.update({k.replace("_", "-"): v for k, v in parser.items(section)})
    for key in ("index-url", "extra-index-url", "find-links", "no-index"):
        variable = "PIP_" + key.upper().replace("-", "_")
        if environ.get(variable):
            values[key] = environ[variable]
    no_index = values.get("no-index", "").strip().lower() in ("1", "true", "yes", "on")
    return IndexConfig(index_url=values.get("index-url", "").strip() or None,
                       extra_index_urls=tuple(values.get("extra-index-url", "").split()),
                       find_links=tuple(values.get("find-links", "").split()), no_index=no_index)


def find_links_only(folder: str | os.PathLike) -> IndexConfig:
    """Packages from one local folder of wheels and nothing else (bisect's --find-links)."""
    return IndexConfig(find_links=(str(Path(folder).resolve()),), no_index=True)


# ------------------------------------------------------------------------------------- releases

def normalize(name: str) -> str:
    """PEP 503's normalized project name: 'Tensorflow_CPU' -> 'tensorflow-cpu'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def releases(name: str, config: IndexConfig) -> list[Version]:
    """Every version of ``name`` on the configured indexes and find-links, sorted, yanked files left out.

    Raises ``IndexUnreachable`` naming every source tried when none could be read at all.
    """
    found: set[Version] = set()
    failures: list[str] = []
    read = 0
    for url in config.indexes:
        try:
            files = _simple_page(f"{url.rstrip('/')}/{normalize(name)}/")
            read += 1
        except _NotFound:
            read += 1
            continue
        except OSError as exc:
            failures.append(f"{url}: {_reason(exc)}")
            continue
        found |= _versions(name, files)
    for link in config.find_links:
        try:
            files = _find_links(link)
            read += 1
        except OSError as exc:
            failures.append(f"find-links {link}: {_reason(exc)}")
            continue
        found |= _versions(name, files)
    if not read and failures:
        raise IndexUnreachable(f"cannot read any package index for {name}: tried " + "; ".join(failures))
    return sorted(found)


def nearest(version: str, available: Sequence[Version], count: int = 2) -> list[Version]:
    """The ``count`` releases just below and just above ``version`` (an invalid version: the newest)."""
    try:
        wanted = Version(version)
    except InvalidVersion:
        return list(available[-count:])
    below = [v for v in available if v < wanted][-count:]
    above = [v for v in available if v > wanted][:count]
    return below + above


class _NotFound(Exception):
    """The index has no page for this project (HTTP 404, or no such folder)."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return str(exc)


def _versions(name: str, files: Iterable[tuple[str, bool]]) -> set[Version]:
    wanted = normalize(name)
    found = set()
    for filename, yanked in files:
        if yanked:
            continue
        try:
            if filename.endswith(".whl"):
                project, version, *_ = parse_wheel_filename(filename)
            elif filename.endswith((".tar.gz", ".zip")):
                project, version = parse_sdist_filename(filename)
            else:
                continue
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
        if normalize(project) == wanted:
            found.add(version)
    return found


def _simple_page(url: str) -> list[tuple[str, bool]]:
    """(filename, yanked) for each file of one project page of a simple index (JSON or HTML; file:// too)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        folder = Path(urllib.request.url2pathname(parsed.path))
        page = folder / "index.html"
        if not folder.is_dir():
            raise _NotFound(url)
        if not page.exists():
            return [(p.name, False) for p in folder.iterdir()]
        return _anchors(page.read_text(encoding="utf-8", errors="replace"))
    request = urllib.request.Request(url, headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            body = response.read().decode("utf-8", errors="replace")
            kind = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise _NotFound(url) from None
        raise
    if "json" in kind:
        return [(f["filename"], bool(f.get("yanked"))) for f in json.loads(body).get("files", [])]
    return _anchors(body)


def _find_links(link: str) -> list[tuple[str, bool]]:
    """The files a find-links entry offers: a local folder's names, or a page's links."""
    parsed = urllib.parse.urlparse(link)
    if parsed.scheme in ("", "file"):
        folder = Path(urllib.request.url2pathname(parsed.path) if parsed.scheme else link)
        return [(p.name, False) for p in folder.iterdir()]  # OSError when missing: a failed source
    with urllib.request.urlopen(link, timeout=TIMEOUT_S) as response:
        return _anchors(response.read().decode("utf-8", errors="replace"))


class _Anchors(HTMLParser):
    """The file names a simple page or find-links page links to, each with whether it is yanked."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag != "a":
            return
        href = dict(attrs).get("href") or ""
        name = urllib.parse.unquote(urllib.parse.urlparse(href).path.rsplit("/", 1)[-1])
        if name:
            self.files.append((name, any(key == "data-yanked" for key, _ in attrs)))


def _anchors(html: str) -> list[tuple[str, bool]]:
    parser = _Anchors()
    parser.feed(html)
    return parser.files
