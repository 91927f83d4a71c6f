"""IMDB as padded int32 arrays, from one of three sources.

- ``keras``: ``keras.datasets.imdb.load_data`` exactly as keras.io calls it (cached file or
  download; the download is bounded in time).
- ``aclimdb``: the original review archive (or its extracted folder), tokenized here like
  Keras's IMDB and cached (see ``bench.aclimdb``).
- ``synthetic``: generated, deterministic, learnable; needs nothing from outside.

``auto`` takes ``aclimdb`` when a path is given (``KERASBENCH_IMDB``), else ``keras``, else
``synthetic`` with a loud warning. The source and its sizes travel with the arrays.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import aclimdb

SOURCES = ("auto", "keras", "aclimdb", "synthetic")
IMDB_ENV = "KERASBENCH_IMDB"
CACHE_ENV = "KERASBENCH_CACHE"
NETWORK_TIMEOUT_S = 20.0

# keras.datasets.imdb.load_data's defaults: reproduced for the aclimdb source.
START_CHAR, OOV_CHAR, INDEX_FROM, SHUFFLE_SEED = 1, 2, 3, 113


class DataSourceError(Exception):
    """A data source asked for cannot be had; the message names what was tried and the fix."""


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # (n, maxlen) int32, pre-padded and pre-truncated
    y_train: np.ndarray  # (n,) int32 in {0, 1}
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    origin: str  # file, folder or generator that produced the data
    details: dict = field(default_factory=dict)  # source-specific facts: cache hit, load time

    def info(self) -> dict:
        """What a result file records about the data."""
        return {
            "source": self.source,
            "origin": self.origin,
            "train_samples": len(self.y_train),
            "test_samples": len(self.y_test),
            "maxlen": int(self.x_train.shape[1]),
            "train_positive_fraction": round(float(self.y_train.mean()), 4) if len(self.y_train) else None,
            "test_positive_fraction": round(float(self.y_test.mean()), 4) if len(self.y_test) else None,
            **self.details,
        }


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "kerasbench")


def load_imdb(
    source: str = "auto",
    *,
    max_features: int = 20000,
    maxlen: int = 200,
    train_samples: int | None = None,
    test_samples: int | None = None,
    path: str | os.PathLike | None = None,
    cache_dir: Path | None = None,
) -> Dataset:
    """Load IMDB from ``source``; ``*_samples`` keep the first n reviews (after shuffling)."""
    if source not in SOURCES:
        raise DataSourceError(f"unknown dataset source {source!r}; choose one of {', '.join(SOURCES)}.")
    path = path or os.environ.get(IMDB_ENV) or None
    start = time.perf_counter()  # host work only (file reads, tokenizing): no device to sync
    if source == "auto":
        dataset = _auto(max_features, maxlen, train_samples, test_samples, path, cache_dir)
    elif source == "keras":
        dataset = _from_keras(max_features, maxlen, train_samples, test_samples)
    elif source == "aclimdb":
        if not path:
            raise DataSourceError(
                "--dataset aclimdb needs the aclImdb reviews: set KERASBENCH_IMDB (or --imdb-path) to "
                "aclImdb_v1.tar.gz or its extracted folder. On this project's machines it is at "
                "../shared/data/aclImdb_v1_labeled.tar.gz."
            )
        dataset = _from_archive(Path(path), max_features, maxlen, train_samples, test_samples, cache_dir)
    else:
        dataset = synthetic(train_samples or 25000, test_samples or 25000, max_features=max_features, maxlen=maxlen)
    dataset.details["load_seconds"] = round(time.perf_counter() - start, 3)
    return dataset


def _auto(max_features, maxlen, train_samples, test_samples, path, cache_dir) -> Dataset:
    if path:
        return _from_archive(Path(path), max_features, maxlen, train_samples, test_samples, cache_dir)
    try:
        return _from_keras(max_features, maxlen, train_samples, test_samples)
    except DataSourceError as exc:
        warnings.warn(
            f"kerasbench: NO REAL IMDB DATA, falling back to SYNTHETIC data ({exc}) "
            f"Accuracy numbers are not comparable with keras.io. Set {IMDB_ENV} to use the real reviews.",
            stacklevel=2,
        )
        return synthetic(train_samples or 25000, test_samples or 25000, max_features=max_features, maxlen=maxlen)


def _from_keras(max_features, maxlen, train_samples, test_samples) -> Dataset:
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(NETWORK_TIMEOUT_S)  # a download that stalls fails instead of hanging
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data(num_words=max_features)
    except Exception as exc:  # Keras wraps network errors in a bare Exception
        raise DataSourceError(
            f"keras.datasets.imdb.load_data() could not get imdb.npz (not cached in ~/.keras/datasets, "
            f"and the download failed: {str(exc).splitlines()[0][:200]}). Connect to the internet, or "
            f"point {IMDB_ENV} at the aclImdb reviews and use --dataset aclimdb, or use --dataset synthetic."
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return _dataset(
        x_train[:train_samples], y_train[:train_samples], x_test[:test_samples], y_test[:test_samples],
        maxlen, source="keras", origin="keras.datasets.imdb",
    )


def _from_archive(path, max_features, maxlen, train_samples, test_samples, cache_dir) -> Dataset:
    try:
        ranked = aclimdb.load_ranked(path, cache_dir or default_cache_dir())
    except aclimdb.ArchiveError as exc:
        raise DataSourceError(
            f"cannot use the aclImdb reviews: {exc} Point {IMDB_ENV} (or --imdb-path) at aclImdb_v1.tar.gz "
            f"or its extracted folder ({{train,test}}/{{pos,neg}}/<id>_<rating>.txt)."
        ) from None
    # The same steps as keras.datasets.imdb.load_data: shuffle both splits with one RNG seeded
    # 113, prepend start_char, shift ranks by index_from, words at or above num_words become oov.
    rng = np.random.RandomState(SHUFFLE_SEED)
    splits = []
    for seqs, labels in ((ranked.train, ranked.train_labels), (ranked.test, ranked.test_labels)):
        order = np.arange(len(seqs))
        rng.shuffle(order)
        encoded = []
        for i in order:
            ids = seqs[i] + INDEX_FROM
            ids = np.where(ids >= max_features, OOV_CHAR, ids)
            encoded.append(np.concatenate([[START_CHAR], ids]))
        splits.append((encoded, labels[order]))
    (x_train, y_train), (x_test, y_test) = splits
    dataset = _dataset(
        x_train[:train_samples], y_train[:train_samples], x_test[:test_samples], y_test[:test_samples],
        maxlen, source="aclimdb", origin=str(path),
    )
    dataset.details.update(cached=ranked.from_cache, vocabulary_size=ranked.vocabulary_size,
                           tokenizer_version=aclimdb.TOKENIZER_VERSION)
    return dataset


def _dataset(x_train, y_train, x_test, y_test, maxlen, *, source: str, origin: str) -> Dataset:
    import keras

    def pad(seqs):
        # Pre-padding and pre-truncation, as keras.io does.
        return keras.utils.pad_sequences(seqs, maxlen=maxlen, dtype="int32", padding="pre", truncating="pre")

    return Dataset(
        pad(x_train), np.asarray(y_train, np.int32), pad(x_test), np.asarray(y_test, np.int32),
        source=source, origin=origin,
    )


def synthetic(
    train_samples: int, test_samples: int, *, max_features: int = 20000, maxlen: int = 200, seed: int = 0
) -> Dataset:
    """IMDB-shaped reviews with a learnable signal, the same on every machine for a given seed.

    Words follow a Zipf law like real text; review lengths vary like IMDB's (median ~180 words),
    so padding matters as it does for the real data. Each review also carries words from a
    small class-specific vocabulary (ids 10-29 for positive, 30-49 for negative) in about 10% of
    its positions, which a model picks up within one epoch.
    """
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 2, n).astype(np.int32)
        words = rng.zipf(1.2, size=(n, maxlen)) + INDEX_FROM
        words = np.where(words >= max_features, OOV_CHAR, words)  # rare words become oov, as in IMDB
        sentiment = np.where(labels[:, None] == 1, 10, 30) + rng.integers(0, 20, size=(n, maxlen))
        words = np.where(rng.random((n, maxlen)) < 0.1, sentiment, words)
        lengths = np.clip(rng.lognormal(np.log(180), 0.6, n).astype(int), 10, maxlen)
        positions = np.arange(maxlen)[None, :]
        first = (maxlen - lengths)[:, None]
        words = np.where(positions == first, START_CHAR, words)
        return np.where(positions < first, 0, words).astype(np.int32), labels

    x_train, y_train = split(train_samples)
    x_test, y_test = split(test_samples)
    return Dataset(x_train, y_train, x_test, y_test, source="synthetic", origin=f"bench.data.synthetic(seed={seed})")
