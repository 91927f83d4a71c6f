"""Build small aclImdb-layout archives and folders for the tests."""

import io
import tarfile
from pathlib import Path

REVIEWS = {
    ("train", "pos"): ["Great movie. Great acting!<br /><br />Loved it.", "A great, great film; don't miss it.",
                       "Great fun."],
    ("train", "neg"): ["Bad movie.<br />Bad acting, bad plot.", "Awful. Bad, bad, bad!", "Not great: bad."],
    ("test", "pos"): ["Great great movie!", "Unseen wonderful words."],
    ("test", "neg"): ["Bad bad movie.", "Bad."],
}


def files(reviews: dict = REVIEWS) -> dict[str, str]:
    out = {}
    for (split, polarity), texts in reviews.items():
        for i, text in enumerate(texts):
            rating = 9 if polarity == "pos" else 2
            out[f"aclImdb/{split}/{polarity}/{i}_{rating}.txt"] = text
    return out


def write_archive(path: Path, members: dict[str, str] | None = None) -> Path:
    members = files() if members is None else members
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_folder(root: Path, members: dict[str, str] | None = None) -> Path:
    for name, text in (files() if members is None else members).items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root / "aclImdb"
