"""IMDB loading: the aclImdb tokenizer and cache, the Keras path, synthetic data, and errors."""

import warnings

import numpy as np
import pytest

from bench import aclimdb, data
from bench.data import DataSourceError, load_imdb, synthetic
from tests.imdb_archive import files, write_archive, write_folder


@pytest.fixture
def archive(tmp_path):
    return write_archive(tmp_path / "aclImdb_v1.tar.gz")


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def load(path, cache, **kwargs):
    kwargs.setdefault("max_features", 20000)
    kwargs.setdefault("maxlen", 12)
    return load_imdb("aclimdb", path=path, cache_dir=cache, **kwargs)


def test_tokenize_lowercases_drops_breaks_and_punctuation():
    words = aclimdb.tokenize("Great movie!<br /><br />Don't MISS it, ok?")
    assert words == ["great", "movie", "don't", "miss", "it", "ok"]


def test_words_ranked_by_training_frequency(archive, cache):
    ranked = aclimdb.load_ranked(archive, cache)
    # "bad" (9 times in train) outranks "great" (7), which outranks "movie" (2).
    vocab = {}
    for seq, text in zip(ranked.train, ["Bad movie.<br />Bad acting, bad plot."]):
        vocab.update(zip(aclimdb.tokenize(text), seq.tolist()))
    assert vocab["bad"] == 1 and vocab["movie"] > 2
    assert len(ranked.train) == 6 and len(ranked.test) == 4
    assert ranked.train_labels.tolist() == [0, 0, 0, 1, 1, 1]  # sorted by (label, id) before shuffling


def test_encoding_matches_keras_imdb_conventions(archive, cache):
    ds = load(archive, cache, maxlen=8)
    assert ds.x_train.dtype == np.int32 and ds.x_train.shape == (6, 8)
    for row in ds.x_train:
        words = row[row > 0]
        assert words[0] == data.START_CHAR  # start_char first
        assert (words[1:] >= data.INDEX_FROM + 1).all()  # ranks shifted by index_from
    assert ds.y_train.dtype == np.int32 and set(ds.y_train.tolist()) == {0, 1}


def test_rare_and_unseen_words_become_oov(archive, cache):
    tiny = load(archive, cache, max_features=6)  # only ranks 1-2 survive (+3 < 6)
    words = tiny.x_train[tiny.x_train > 0]
    assert set(words.tolist()) <= {data.START_CHAR, data.OOV_CHAR, 4, 5}
    full = load(archive, cache)
    # "Unseen wonderful words." has no training word: start_char then oov only.
    rows = [row[row > 0].tolist() for row in full.x_test]
    assert [1, 2, 2, 2] in rows


def test_pre_padding_and_pre_truncation(archive, cache):
    short = load(archive, cache, maxlen=3)
    long = load(archive, cache, maxlen=40)
    assert short.x_train.shape[1] == 3 and (long.x_train[:, 0] == 0).all()  # padded at the front
    # Truncation keeps the end of each review, as keras.utils.pad_sequences(truncating="pre") does.
    for cut, whole in zip(short.x_train, long.x_train):
        np.testing.assert_array_equal(cut, whole[whole > 0][-3:])


def test_shuffle_is_seeded_and_reproducible(archive, cache):
    first, second = load(archive, cache), load(archive, cache)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)
    assert first.y_train.tolist() != [0, 0, 0, 1, 1, 1]  # shuffled with seed 113, not sorted


def test_sample_limits_and_info(archive, cache):
    ds = load(archive, cache, train_samples=4, test_samples=2)
    info = ds.info()
    assert (info["train_samples"], info["test_samples"], info["source"]) == (4, 2, "aclimdb")
    assert info["origin"] == str(archive) and "load_seconds" in info


def test_folder_and_archive_give_the_same_arrays(tmp_path, archive, cache):
    folder = write_folder(tmp_path / "extracted")
    a, b = load(archive, cache), load(folder, cache)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)


def test_second_load_comes_from_cache(archive, cache):
    cold, warm = load(archive, cache), load(archive, cache)
    assert cold.details["cached"] is False and warm.details["cached"] is True
    np.testing.assert_array_equal(cold.x_train, warm.x_train)


def test_cache_invalidated_when_archive_changes(tmp_path, archive, cache):
    load(archive, cache)
    changed = files()
    changed["aclImdb/train/pos/9_10.txt"] = "brand new review"
    write_archive(archive, changed)
    again = load(archive, cache)
    assert again.details["cached"] is False and again.info()["train_samples"] == 7


def test_cache_invalidated_when_tokenizer_changes(archive, cache, monkeypatch):
    load(archive, cache)
    monkeypatch.setattr(aclimdb, "TOKENIZER_VERSION", aclimdb.TOKENIZER_VERSION + 1)
    assert load(archive, cache).details["cached"] is False


def test_damaged_cache_is_rebuilt(archive, cache):
    load(archive, cache)
    for file in cache.iterdir():
        file.write_bytes(b"not an npz")
    ds = load(archive, cache)
    assert ds.details["cached"] is False and ds.info()["train_samples"] == 6


def test_synthetic_is_deterministic_and_imdb_shaped():
    a, b, c = synthetic(100, 50, seed=1), synthetic(100, 50, seed=1), synthetic(100, 50, seed=2)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.x_train.shape == (100, 200) and a.x_test.shape == (50, 200) and a.x_train.dtype == np.int32
    assert a.x_train.max() < 20000 and a.x_train.min() == 0  # padded, inside the vocabulary
    assert 0.3 < a.y_train.mean() < 0.7


def test_synthetic_is_learnable_in_one_epoch():
    import keras

    from model import build_model, initialize_weights

    ds = synthetic(1024, 256, maxlen=60)
    model = build_model(embed_dim=16, lstm_units=8)
    initialize_weights(model, 0)
    # A small model at a larger learning rate: 32 steps must be enough for a fast test. Measured
    # after this epoch: 0.92-0.93 on all three backends at 0.005; at 0.01 JAX and torch stayed at 0.52.
    model.compile(optimizer=keras.optimizers.Adam(0.005), loss="binary_crossentropy", metrics=["accuracy"])
    # shuffle=False: fit's own shuffle is unseeded under TensorFlow (it once left this test at 0.547).
    model.fit(ds.x_train, ds.y_train, batch_size=32, epochs=1, verbose=0, shuffle=False)
    _, accuracy = model.evaluate(ds.x_test, ds.y_test, batch_size=32, verbose=0)
    assert accuracy > 0.75


def test_keras_source_pads_what_keras_returns(monkeypatch):
    import keras

    fake = ((np.array([[1, 5, 6], [1, 7]], dtype=object), np.array([1, 0])),
            (np.array([[1, 8]], dtype=object), np.array([1])))
    monkeypatch.setattr(keras.datasets.imdb, "load_data", lambda num_words: fake)
    ds = load_imdb("keras", maxlen=4)
    assert ds.source == "keras"
    np.testing.assert_array_equal(ds.x_train, [[0, 1, 5, 6], [0, 0, 1, 7]])


def fail_download(num_words):
    raise Exception("URL fetch failure on https://example.invalid/imdb.npz: None -- [Errno -2] Name unknown")


def test_keras_source_failure_is_one_clear_paragraph(monkeypatch):
    import keras

    monkeypatch.setattr(keras.datasets.imdb, "load_data", fail_download)
    with pytest.raises(DataSourceError) as info:
        load_imdb("keras")
    message = str(info.value)
    assert "download failed" in message and "KERASBENCH_IMDB" in message and "\n" not in message


def test_auto_falls_back_to_synthetic_loudly(monkeypatch):
    import keras

    monkeypatch.delenv(data.IMDB_ENV, raising=False)
    monkeypatch.setattr(keras.datasets.imdb, "load_data", fail_download)
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        ds = load_imdb("auto", train_samples=10, test_samples=10)
    assert ds.source == "synthetic"


def test_auto_prefers_the_archive_from_the_environment(archive, cache, monkeypatch):
    monkeypatch.setenv(data.IMDB_ENV, str(archive))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_imdb("auto", cache_dir=cache).source == "aclimdb"


def write_bytes(path, content):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p / "missing.tar.gz", "does not exist"),
        (lambda p: write_bytes(p / "empty.tar.gz", b""), "empty"),
        (lambda p: write_bytes(p / "junk.tar.gz", b"\x1f\x8b garbage" * 50), "damaged"),
        (lambda p: write_archive(p / "other.tar.gz", {"README": "hello"}), "no train reviews"),
        (lambda p: write_archive(p / "half.tar.gz", {"aclImdb/train/pos/1_9.txt": "ok"}), "no test reviews"),
    ],
    ids=["missing", "empty", "corrupt", "wrong-layout", "no-test-split"],
)
def test_bad_archives_get_clear_errors(tmp_path, cache, make, expected):
    with pytest.raises(DataSourceError, match=expected) as info:
        load(make(tmp_path), cache)
    assert "KERASBENCH_IMDB" in str(info.value) and "\n" not in str(info.value)


def test_aclimdb_without_a_path_says_how_to_fix(monkeypatch):
    monkeypatch.delenv(data.IMDB_ENV, raising=False)
    with pytest.raises(DataSourceError, match="KERASBENCH_IMDB"):
        load_imdb("aclimdb")


def test_unknown_source_is_rejected():
    with pytest.raises(DataSourceError, match="unknown dataset source"):
        load_imdb("imdb2")
