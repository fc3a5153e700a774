"""Mozilla Common Voice (https://commonvoice.mozilla.org) in its own layout, as lhotse cuts.

    <path>/clips/<clip>.mp3
    <path>/train.tsv, dev.tsv, test.tsv    tab-separated with a header; `path` and `sentence` are read, and
                                           `client_id` as the speaker when present (validated.tsv etc. are parts too)

`path` is one language's folder of an extracted release (`cv-corpus-<version>/<language>`), or the release folder
with `language` naming the language. Clips are decoded from MP3 by FFmpeg.

Why not lhotse's `prepare_commonvoice`: in lhotse 1.33 it scans in a spawned process pool (seconds a part even
for one clip, and it fails when `__main__` is not a file, e.g. code piped to python), it needs every column of
Common Voice 13+ (`variant`...), and its manifest cache never hits (it writes `cv-en_recordings_train`, reads
`cv_recordings_en_train`). The same lhotse `Recording`/`SupervisionSegment` are built here in threads instead.
"""
from __future__ import annotations

import csv
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

from ._cuts import utterance_cuts
from ._recipe import RecipeConfig, RecipeDataset

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a sentence with a stray quote must not end the file


class CommonVoiceConfig(RecipeConfig):
    """`datasets.commonvoice`: the recipe keys plus the language folder inside a release folder."""

    language: Optional[str] = None  # null: `path` is the language folder itself


def read_tsv(tsv: Path) -> list[dict[str, str]]:
    """The rows of a Common Voice tsv (no quoting: sentences hold unbalanced quotes); needs `path` and `sentence`."""
    with open(tsv, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"path", "sentence"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"commonvoice {tsv}: no column {', '.join(sorted(missing))} in the header "
                             f"({', '.join(reader.fieldnames or []) or 'empty file'})")
        return [row for row in reader if row.get("path")]


def clip_manifests(clips: Path, rows: list[dict[str, str]], language: str, num_jobs: int) -> tuple[Any, Any]:
    """lhotse recordings and supervisions of the rows whose clip exists (each clip's header read in a thread)."""
    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

    rows = [r for r in rows if (clips / r["path"]).is_file()]
    with ThreadPoolExecutor(num_jobs) as pool:
        recordings = list(pool.map(lambda r: Recording.from_file(clips / r["path"], recording_id=Path(r["path"]).stem),
                                   rows))
    segments = [SupervisionSegment(id=rec.id, recording_id=rec.id, start=0.0, duration=rec.duration, channel=0,
                                   text=(row["sentence"] or "").strip(), language=language,
                                   speaker=row.get("client_id") or None)
                for rec, row in zip(recordings, rows)]
    return RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(segments)


class CommonVoiceDataset(RecipeDataset):
    """A split of one Common Voice language; see the module docstring."""

    name = "commonvoice"
    Config = CommonVoiceConfig
    prepare_hint = ("download a language from https://commonvoice.mozilla.org/datasets, extract it and give its "
                    "folder (the one holding clips/ and train.tsv)")

    def _language_folder(self, root: Path) -> Path:
        language = self.config.get("language")
        return root / language if language else root

    def part_folder(self, root: Path, part: str) -> Path:
        return self._language_folder(root) / f"{part}.tsv"

    def prepare_part(self, root: Path, part: str, cfg: Any) -> Any:
        folder = self._language_folder(root)
        if not (folder / "clips").is_dir():
            raise FileNotFoundError(f"{self.name} {folder}: no clips/ folder ({self.prepare_hint})")
        tsv = folder / f"{part}.tsv"
        rows = read_tsv(tsv)
        recordings, supervisions = clip_manifests(folder / "clips", rows, folder.name, cfg.num_jobs)
        if len(recordings) == 0:
            raise ValueError(f"{self.name} {tsv}: none of its {len(rows)} clip(s) is in clips/")
        return utterance_cuts(recordings, supervisions)


DATASET = CommonVoiceDataset
