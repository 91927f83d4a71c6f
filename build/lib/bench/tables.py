"""Text shared by every output that prints a table: the markdown/plain table, number formats, the data label.

``report``, ``compare``, ``calibrate``, ``history`` and ``parity`` each render their own table; the
formats live here so that a millisecond or a missing value reads the same in all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

MISSING = "—"
# len(keras.datasets.imdb.get_word_index()): the vocabulary of Keras's imdb.npz. Not observable
# offline (the index is a download), so stated here, beside the archive's own count that is recorded.
KERAS_IMDB_VOCABULARY = 88_584


def data_description(info: dict) -> str:
    """Where accuracy numbers came from (``Context.dataset``): source, tokenizer, vocabulary.

    Accuracy is comparable only on the same data, e.g. "aclimdb archive, kerasbench tokenizer v1,
    81,098-word vocabulary (Keras's imdb.npz: 88,584)".
    """
    source = str(info.get("source"))
    if source == "aclimdb":
        version = info.get("tokenizer_version")
        tokenizer = f"kerasbench tokenizer v{version}" if version is not None else "tokenizer version not recorded"
        vocabulary = info.get("vocabulary_size")
        words = f"{vocabulary:,}-word vocabulary" if isinstance(vocabulary, int) else "vocabulary not recorded"
        return f"aclimdb archive, {tokenizer}, {words} (Keras's imdb.npz: {KERAS_IMDB_VOCABULARY:,})"
    if source == "keras":
        return "Keras's imdb.npz (keras.datasets.imdb, Keras's own tokenizer)"
    if source == "synthetic":
        return "synthetic reviews (not comparable with keras.io)"
    return source


def fmt_ms(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def fmt(value: float | None, spec: str) -> str:
    return MISSING if value is None else format(value, spec)


def table(headers: Sequence[str], cells: Sequence[Sequence[str]], style: str = "md") -> str:
    """A markdown table, or ("plain") columns padded with spaces."""
    if style == "md":
        escape = lambda text: str(text).replace("|", "\\|")
        lines = ["| " + " | ".join(map(escape, headers)) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(map(escape, row)) + " |" for row in cells]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *cells, strict=False)]
    pad = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
    return "\n".join([pad(headers), pad(["-" * w for w in widths]), *map(pad, cells)])


def speed_text(ratio: float | None) -> str:
    """'1.00x' for the fastest, '2.31x slower' for the others."""
    if ratio is None:
        return MISSING
    text = f"{ratio:.2f}x"
    return text if text == "1.00x" else f"{text} slower"
