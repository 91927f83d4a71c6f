"""Read the original aclImdb reviews and turn them into word ranks, like Keras's IMDB.

Keras's ``imdb.npz`` is pre-tokenized with a word index that is not available offline, so this
module rebuilds the equivalent from the raw texts: lower-case, ``<br />`` removed, punctuation
stripped, words ranked by frequency in the training split (1 = most frequent). The ranks are
cached on disk, keyed by the archive's content and the tokenizer version; ``bench.data`` turns
them into padded arrays exactly as ``keras.datasets.imdb.load_data`` does.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

UNSEEN = np.iinfo(np.int32).max - 1024  # rank of test words absent from training: always oov
TOKENIZER_VERSION = 1  # bump when tokenize() or the ranking changes: it invalidates every cache

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")  # keeps "don't" whole, drops other punctuation
_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


class ArchiveError(Exception):
    """The aclImdb archive or folder cannot be read; the message says why and what to do."""


@dataclass(frozen=True)
class RankedSplits:
    """Reviews as word ranks (1 = most frequent training word), in a fixed, sorted order."""

    train: list[np.ndarray]
    train_labels: np.ndarray
    test: list[np.ndarray]
    test_labels: np.ndarray
    vocabulary_size: int
    from_cache: bool


def tokenize(text: str) -> list[str]:
    return _WORD.findall(_BREAK.sub(" ", text).lower())


def load_ranked(path: Path, cache_dir: Path) -> RankedSplits:
    """Ranked reviews from ``path`` (``.tar.gz`` or extracted folder), through the cache."""
    path = Path(path)
    key = _content_key(path)
    cache_file = cache_dir / f"aclimdb-{key}-tok{TOKENIZER_VERSION}.npz"
    if cache_file.exists():
        try:
            return _read_cache(cache_file)
        except (OSError, ValueError, KeyError, zlib.error):
            pass  # a damaged cache is rebuilt, never trusted
    splits = _rank(_read_reviews(path))
    _write_cache(cache_file, splits)
    return splits


def _content_key(path: Path) -> str:
    if not path.exists():
        raise ArchiveError(f"the aclImdb data at {path} does not exist.")
    digest = hashlib.sha256()
    try:
        if path.is_dir():
            # Hashing every review would cost as much as reading them: size and mtime stand in.
            for file in sorted(path.rglob("*.txt")):
                stat = file.stat()
                digest.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        else:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    except PermissionError as exc:
        raise ArchiveError(f"the aclImdb data at {path} cannot be read: {exc.strerror}.") from None
    return digest.hexdigest()[:16]


def _read_reviews(path: Path) -> dict[str, list[tuple[int, int, str]]]:
    """{split: [(label, id, text)]} sorted by (label, id), so the order never depends on the archive."""
    reviews: dict[str, list[tuple[int, int, str]]] = {"train": [], "test": []}
    try:
        for name, read in _members(path):
            match = _MEMBER.search(name)
            if match:
                split, polarity, review_id, _rating = match.groups()
                text = read().decode("utf-8", errors="replace")
                reviews[split].append((int(polarity == "pos"), int(review_id), text))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        reason = " ".join(str(exc).split())  # tarfile's reasons span several lines
        raise ArchiveError(f"the aclImdb archive at {path} is damaged or not a tar archive ({reason}).") from None
    for split, items in reviews.items():
        if not items:
            raise ArchiveError(
                f"{path} holds no {split} reviews in the aclImdb layout "
                f"(aclImdb/{{train,test}}/{{pos,neg}}/<id>_<rating>.txt)."
            )
        items.sort()
    return reviews


def _members(path: Path):
    if path.is_dir():
        for file in sorted(path.rglob("*.txt")):
            yield file.relative_to(path).as_posix(), file.read_bytes
        return
    if path.stat().st_size == 0:
        raise ArchiveError(f"the aclImdb archive at {path} is empty (0 bytes).")
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            if member.isfile():
                yield member.name, tar.extractfile(member).read


def _rank(reviews: dict[str, list[tuple[int, int, str]]]) -> RankedSplits:
    tokens = {split: [tokenize(text) for _, _, text in items] for split, items in reviews.items()}
    counts = Counter(word for review in tokens["train"] for word in review)
    # Ties broken alphabetically so the index never depends on the reading order.
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    index = {word: rank for rank, (word, _) in enumerate(ordered, start=1)}

    def encode(split: str) -> list[np.ndarray]:
        return [np.array([index.get(w, UNSEEN) for w in review], dtype=np.int32) for review in tokens[split]]

    def labels(split: str) -> np.ndarray:
        return np.array([label for label, _, _ in reviews[split]], dtype=np.int32)

    return RankedSplits(encode("train"), labels("train"), encode("test"), labels("test"), len(index), False)


def _write_cache(cache_file: Path, splits: RankedSplits) -> None:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"vocabulary_size": np.array(splits.vocabulary_size)}
    for split in ("train", "test"):
        seqs = getattr(splits, split)
        arrays[f"{split}_flat"] = np.concatenate(seqs) if seqs else np.zeros(0, np.int32)
        arrays[f"{split}_lengths"] = np.array([len(s) for s in seqs], dtype=np.int64)
        arrays[f"{split}_labels"] = getattr(splits, f"{split}_labels")
    tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, cache_file)  # atomic: a reader sees the old cache or the whole new one


def _read_cache(cache_file: Path) -> RankedSplits:
    with np.load(cache_file) as data:
        parts = {}
        for split in ("train", "test"):
            ends = np.cumsum(data[f"{split}_lengths"])[:-1]
            parts[split] = np.split(data[f"{split}_flat"], ends)
            parts[f"{split}_labels"] = data[f"{split}_labels"]
        return RankedSplits(
            parts["train"], parts["train_labels"], parts["test"], parts["test_labels"],
            int(data["vocabulary_size"]), True,
        )
