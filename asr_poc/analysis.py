"""Error analysis of an evaluation: per-utterance details (reference, hypothesis, WER, CER, word alignment), the
worst utterances, the most frequent confusions, and two evaluations compared on the same utterances.

`asr-poc eval CHECKPOINT --details` writes `<run>/details/<checkpoint>-<dataset>-<split>.jsonl` beside the checkpoint
it scored: a first line `{"type": "summary", ...}`, then one `{"type": "utterance", ...}` line per utterance whose
`alignment` lists jiwer's word-alignment chunks as `{"op": equal|substitute|insert|delete, "ref": [...], "hyp": [...]}`.
Nothing here imports torch: the dashboard reads these files in a light page kernel.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import jiwer

from .io import atomic_write_text

DETAILS_FOLDER = "details"
OPS = ("equal", "substitute", "insert", "delete")
SORT_KEYS = ("cer", "wer")


class DetailsError(ValueError):
    """A details file that cannot be read; the message is one line naming the file."""


@dataclass
class Details:
    """One evaluation's details: the summary line and the utterances, in the order they were written."""

    path: Path
    summary: dict
    utterances: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        """`best.pt on synthetic/test` (what the dashboard lists)."""
        s = self.summary
        return f"{Path(str(s.get('checkpoint', self.path.stem))).name} on {s.get('dataset')}/{s.get('split')}"


@dataclass(frozen=True)
class Confusion:
    """A reference token recognised as another (`hyp`), or dropped (`hyp` empty) or added (`ref` empty)."""

    ref: str
    hyp: str
    count: int

    @property
    def kind(self) -> str:
        return "deletion" if not self.hyp else "insertion" if not self.ref else "substitution"


def details_path(checkpoint: str | os.PathLike, dataset: str, split: str) -> Path:
    """Where the details of `checkpoint` scored on `dataset`/`split` go: a `details/` folder beside the checkpoint
    (the run folder for a run's checkpoint)."""
    checkpoint = Path(checkpoint)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{checkpoint.stem}-{dataset}-{split}")
    return checkpoint.parent / DETAILS_FOLDER / f"{safe}.jsonl"


def word_alignment(reference: str, hypothesis: str) -> list[dict]:
    """jiwer's word alignment of one pair as chunks `{"op", "ref": [words], "hyp": [words]}`, in reading order."""
    ref_words, hyp_words = reference.split(), hypothesis.split()
    if not ref_words:  # jiwer cannot align against an empty reference: every hypothesis word is an insertion
        return [{"op": "insert", "ref": [], "hyp": hyp_words}] if hyp_words else []
    out = jiwer.process_words(reference, hypothesis)
    return [{"op": c.type, "ref": ref_words[c.ref_start_idx:c.ref_end_idx],
             "hyp": hyp_words[c.hyp_start_idx:c.hyp_end_idx]} for c in out.alignments[0]]


def utterance_details(utterance_id: str, reference: str, hypothesis: str, audio: Optional[str] = None,
                      duration: Optional[float] = None) -> dict:
    """One utterance's line of a details file: texts, WER, CER, error counts and the word alignment.
    WER and CER are None for an empty reference (no rate can be computed against nothing)."""
    alignment = word_alignment(reference, hypothesis)
    counts = {op: sum(max(len(c["ref"]), len(c["hyp"])) for c in alignment if c["op"] == op) for op in OPS}
    scored = bool(reference.split())
    return {"type": "utterance", "id": str(utterance_id), "audio": audio, "duration": duration,
            "reference": reference, "hypothesis": hypothesis,
            "wer": float(jiwer.wer(reference, hypothesis)) if scored else None,
            "cer": float(jiwer.cer(reference.strip(), hypothesis.strip())) if scored else None,
            "hits": counts["equal"], "substitutions": counts["substitute"], "insertions": counts["insert"],
            "deletions": counts["delete"], "alignment": alignment}


def build_details(summary: dict, ids: Sequence[str], references: Sequence[str], hypotheses: Sequence[str],
                  audio: Optional[dict[str, str]] = None, durations: Optional[dict[str, float]] = None) -> list[dict]:
    """The lines of a details file: the summary (with a `created` time) and one line per utterance."""
    if not len(ids) == len(references) == len(hypotheses):
        raise ValueError(f"{len(ids)} ids, {len(references)} references and {len(hypotheses)} hypotheses: "
                         "they must be as many")
    audio, durations = audio or {}, durations or {}
    head = {"type": "summary", "created": time.time(), **summary, "utterances": len(ids)}
    return [head, *(utterance_details(i, r, h, audio.get(i), durations.get(i))
                    for i, r, h in zip(ids, references, hypotheses))]


def write_details(path: str | os.PathLike, lines: Iterable[dict]) -> Path:
    """Write the lines as JSON lines and the utterances as CSV beside them (`csv_path`), each atomically (a reader
    never sees half a file); returns the JSON lines' path."""
    path = Path(path)
    lines = list(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    atomic_write_text(csv_path(path), details_csv([line for line in lines if line.get("type") == "utterance"]))
    return path


CSV_COLUMNS = ("id", "wer", "cer", "reference", "hypothesis", "hits", "substitutions", "insertions", "deletions",
               "duration", "audio")


def csv_path(details: str | os.PathLike) -> Path:
    """The CSV beside a details file: `<name>.csv` for `<name>.jsonl`."""
    return Path(details).with_suffix(".csv")


def details_csv(utterances: Sequence[dict]) -> str:
    """Utterances of a details file as CSV (one row each, worst first by CER; spreadsheet-ready)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    ranked = sorted(utterances, key=lambda u: -1.0 if u.get("cer") is None else u["cer"], reverse=True)
    writer.writerows({key: "" if u.get(key) is None else u[key] for key in CSV_COLUMNS} for u in ranked)
    return buffer.getvalue()


def read_details(path: str | os.PathLike) -> Details:
    """Read a details file; raises DetailsError (one line) for a missing, empty or malformed file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DetailsError(f"{path}: cannot be read ({err.__class__.__name__}: {err})") from None
    summary, utterances = None, []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DetailsError(f"{path}, line {number}: not JSON ({err.msg})") from None
        kind = record.get("type") if isinstance(record, dict) else None
        if kind == "summary" and summary is None:
            summary = record
        elif kind == "utterance" and isinstance(record.get("alignment"), list):
            utterances.append(record)
        else:
            raise DetailsError(f"{path}, line {number}: neither the summary nor an utterance of a details file")
    if summary is None:
        raise DetailsError(f"{path}: no summary line (is it a details file written by `asr-poc eval --details`?)")
    return Details(path, summary, utterances)


def list_details(run_dir: str | os.PathLike) -> list[Path]:
    """The details files of a run folder, newest first."""
    folder = Path(run_dir) / DETAILS_FOLDER
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob("*.jsonl") if p.is_file()]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def worst(utterances: Iterable[dict], by: str = "cer", limit: Optional[int] = None) -> list[dict]:
    """Scored utterances, worst first: by `by` (cer or wer), then by the other rate, then by id."""
    if by not in SORT_KEYS:
        raise ValueError(f"by={by!r}: must be one of {', '.join(SORT_KEYS)}")
    other = "wer" if by == "cer" else "cer"
    scored = [u for u in utterances if u.get(by) is not None]
    ranked = sorted(scored, key=lambda u: (-u[by], -(u.get(other) or 0.0), str(u["id"])))
    return ranked if limit is None else ranked[:limit]


def _chunk_pairs(ref: Sequence[str], hyp: Sequence[str], op: str) -> Iterable[tuple[str, str]]:
    if op == "substitute":
        return zip(ref, hyp)  # a substitution chunk is as long on both sides
    if op == "delete":
        return ((r, "") for r in ref)
    if op == "insert":
        return (("", h) for h in hyp)
    return ()


def confusions(utterances: Iterable[dict], level: str = "word", limit: Optional[int] = 20,
               include: Sequence[str] = ("substitute", "delete", "insert")) -> list[Confusion]:
    """The most frequent confusions, most frequent first (ties by reference, then hypothesis).

    `level="word"` counts the word pairs of the stored alignments; `level="char"` aligns the characters of each
    reference and hypothesis with jiwer (a space is a character too). Deletions have an empty `hyp`, insertions an
    empty `ref`; `include` picks which kinds count."""
    counts: Counter = Counter()
    for u in utterances:
        if level == "word":
            chunks = [(c["ref"], c["hyp"], c["op"]) for c in u["alignment"]]
        elif level == "char":
            ref, hyp = u["reference"].strip(), u["hypothesis"].strip()
            if not ref:
                chunks = [([], list(hyp), "insert")] if hyp else []
            else:
                out = jiwer.process_characters(ref, hyp)
                chunks = [(list(ref[c.ref_start_idx:c.ref_end_idx]), list(hyp[c.hyp_start_idx:c.hyp_end_idx]), c.type)
                          for c in out.alignments[0]]
        else:
            raise ValueError(f"level={level!r}: must be 'word' or 'char'")
        for ref_tokens, hyp_tokens, op in chunks:
            if op in include:
                counts.update(_chunk_pairs(ref_tokens, hyp_tokens, op))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [Confusion(r, h, n) for (r, h), n in (ranked if limit is None else ranked[:limit])]


def compare(a: Details, b: Details, by: str = "cer", limit: Optional[int] = None) -> list[tuple[dict, dict]]:
    """The utterances both evaluations scored, as (a's line, b's line) pairs, worst in `a` first.

    Raises DetailsError when the two share no utterance (different data sets or splits)."""
    by_id = {str(u["id"]): u for u in b.utterances}
    pairs = [(u, by_id[str(u["id"])]) for u in worst(a.utterances, by) if str(u["id"]) in by_id]
    if not pairs:
        raise DetailsError(f"{a.label} and {b.label} share no utterance: compare evaluations of the same data set "
                           "and split")
    return pairs if limit is None else pairs[:limit]


def totals(utterances: Sequence[dict]) -> dict:
    """Corpus-level WER and CER of some utterances (from their error counts and lengths), and how many there are."""
    scored = [u for u in utterances if u.get("wer") is not None]
    words = sum(u["hits"] + u["substitutions"] + u["deletions"] for u in scored)
    word_errors = sum(u["substitutions"] + u["deletions"] + u["insertions"] for u in scored)
    chars = sum(len(u["reference"].strip()) for u in scored)
    char_errors = sum(u["cer"] * len(u["reference"].strip()) for u in scored)
    return {"utterances": len(utterances), "scored": len(scored),
            "wer": word_errors / words if words else None, "cer": char_errors / chars if chars else None}
