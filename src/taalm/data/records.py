"""Documents, probes and pairs: reading them with precise errors, and locating answers in text.

Input formats
  * documents: ``.txt`` (blocks separated by a blank line) or JSONL with ``text`` (optional
    ``answer``, ``id``), or LAMA-ckl units (``evidence`` is the document, ``object`` the answer);
  * probes: JSONL with ``prompt`` + ``answer`` (the answer may already stand in the prompt, e.g.
    "The capital of X is Y ." — its last occurrence is scored — otherwise it is appended after a
    space), or LAMA-ckl units (``task_descriptive`` or ``task_schematic`` + ``object``).

Every problem stops with an :class:`~taalm.core.errors.InputError` naming file, line and field:
also a path that is no regular file (a FIFO or a device, refused before a byte is read) and a
string holding a lone surrogate escape (``\\ud800``: JSON lets it through, but it is no text).
Text and JSON Lines files are read as they go: with a ``limit``, reading stops after it.

Tokenising and windows: :mod:`taalm.data.windows`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..core.errors import InputError

LAMA_PROBE_FIELDS = ("task_descriptive", "task_schematic")


@dataclass
class Document:
    text: str
    answer: str | None = None  # needed only by the oracle method
    id: str = ""
    source: str = ""  # "file:line" for messages
    answer_start: int | None = None  # char offset of the answer's last occurrence


@dataclass
class Probe:
    text: str  # full text, answer included
    answer: str
    answer_start: int  # char offset of the scored (last) occurrence of the answer
    id: str = ""
    source: str = ""


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------
def check_regular_file(path: Path, what: str = "a file") -> None:
    """Refuse, before reading a byte, a path that is missing, a folder, or no regular file (a
    FIFO, a device, a socket: reading one may never end)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except OSError as e:
        raise InputError(f"cannot read ({e.strerror})", path) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"is a folder, expected {what}", path)
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"not a regular file (a FIFO, device or socket), expected {what}", path)


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 file, read as it goes (a caller that stops early reads
    no further); non-UTF-8 bytes are errors naming the line."""
    check_regular_file(path)
    with open(path, "rb") as f:
        for i, raw in enumerate(f, start=1):
            chunk = raw[:-1] if raw.endswith(b"\n") else raw
            try:
                line = chunk.decode("utf-8").rstrip("\r")
            except UnicodeDecodeError as e:
                raise InputError(f"not valid UTF-8 (byte 0x{chunk[e.start]:02x} at column {e.start + 1})",
                                 path, i) from None
            yield i, (line[1:] if i == 1 and line.startswith("\ufeff") else line)


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file; non-UTF-8 bytes and empty files are errors naming the line."""
    lines = [line for _, line in iter_lines(path)]
    if not any(line.strip() for line in lines):
        raise InputError("file is empty", path)
    return lines


#: a JSON escape of a UTF-16 surrogate (``\\ud800``): alone, it decodes to no character
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def check_text(row: dict, path: Path, line: int) -> None:
    """Refuse a string of ``row`` (at any depth; keys too) that holds a lone surrogate: JSON lets
    ``\\ud800`` through, but it is no text (it cannot be written as UTF-8) and would crash later."""
    def bad(x) -> bool:
        try:
            x.encode("utf-8")
            return False
        except UnicodeEncodeError:
            return True

    def walk(x, field: str) -> None:
        if isinstance(x, str):
            if bad(x):
                i = next(k for k, c in enumerate(x) if "\ud800" <= c <= "\udfff")
                raise InputError(f"holds a lone surrogate escape (\\u{ord(x[i]):04x} at character {i + 1}), "
                                 f"which is no text; fix the file's escapes", path, line, field)
        elif isinstance(x, dict):
            for k, v in x.items():
                name = field or str(k).encode("utf-8", "backslashreplace").decode("utf-8")
                walk(k, name)
                walk(v, name)
        elif isinstance(x, list):
            for v in x:
                walk(v, field)

    walk(row, "")


def iter_jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line, object)`` of a JSON Lines file, read as it goes, or of a ``.json`` file that holds
    a JSON array of objects (read whole; each element's line is where it starts)."""
    lines = iter_lines(path)
    seen = False
    for i, line in lines:
        if not line.strip():
            continue
        if not seen and line.lstrip().startswith("["):
            if path.suffix.lower() != ".json":
                raise InputError("expected JSON Lines (one object per line); this file holds a JSON array "
                                 "(name it .json to read it as one)", path, i)
            lines.close()
            yield from json_array_rows(path, "\n".join(read_lines(path)))
            return
        seen = True
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON ({e.msg}, column {e.colno})", path, i) from None
        if not isinstance(row, dict):
            raise InputError(f"each line must be a JSON object, got {type(row).__name__}", path, i)
        if _SURROGATE_ESCAPE.search(line):
            check_text(row, path, i)
        yield i, row
    if not seen:
        raise InputError("file is empty", path)


def jsonl_rows(path: Path) -> list[tuple[int, dict]]:
    """``(line, object)`` of a JSON Lines file, or of a ``.json`` file that holds a JSON array of
    objects (each element's line is where it starts)."""
    return list(iter_jsonl_rows(path))


def json_array_rows(path: Path, text: str) -> list[tuple[int, dict]]:
    """The objects of a JSON array, element by element, each with the line it starts on (so an
    error names the line, as for JSON Lines)."""
    dec = json.JSONDecoder()
    pos, rows = text.index("[") + 1, []

    def line_of(i: int) -> int:
        return text.count("\n", 0, i) + 1

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    pos = skip(pos)
    if pos < len(text) and text[pos] == "]":
        return rows
    while True:
        try:
            row, end = dec.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON ({e.msg})", path, line_of(e.pos)) from None
        if not isinstance(row, dict):
            raise InputError(f"each element of the array must be a JSON object, got {type(row).__name__}",
                             path, line_of(pos))
        if _SURROGATE_ESCAPE.search(text, pos, end):
            check_text(row, path, line_of(pos))
        rows.append((line_of(pos), row))
        pos = skip(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip(pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            if skip(pos + 1) != len(text):
                raise InputError("text after the end of the JSON array", path, line_of(skip(pos + 1)))
            return rows
        raise InputError("invalid JSON (expected ',' or ']' between the array's elements)", path, line_of(pos))


def table_rows(path: Path) -> list[tuple[int, dict]]:
    """``(row, record)`` of a Parquet file or of a Hugging Face dataset folder (``save_to_disk``;
    a DatasetDict folder with one split, or pass the split's folder). Row numbers are 1-based and
    stand where a text file's line numbers would in errors. Needs the ``datasets`` extra."""
    try:
        import datasets
    except ImportError:
        raise InputError("reading Parquet files and dataset folders needs the `datasets` package: "
                         "pip install 'taalm[datasets]'", path) from None
    if path.is_dir():
        try:
            ds = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as e:
            raise InputError(f"not a dataset folder written by save_to_disk ({e})", path) from None
        if isinstance(ds, datasets.DatasetDict):
            if len(ds) != 1:
                raise InputError(f"holds the splits {', '.join(ds)}: pass one split's folder, e.g. {path / next(iter(ds))}",
                                 path)
            ds = next(iter(ds.values()))
    else:
        try:
            ds = datasets.Dataset.from_parquet(str(path))
        except Exception as e:  # noqa: BLE001 - pyarrow's errors for a broken file
            raise InputError(f"cannot read as Parquet ({str(e).splitlines()[0][:200]})", path) from None
    return [(i, dict(row)) for i, row in enumerate(ds, start=1)]


def record_rows(path: Path, limit: int = 0) -> Iterable[tuple[int, dict]]:
    """Records of any tabular input: JSON Lines, a JSON array (``.json``), Parquet, or a
    ``datasets`` folder; each with its line (row) number for errors. ``limit`` > 0: the first
    ``limit`` records only (JSON Lines is then read no further)."""
    if path.is_dir() or path.suffix.lower() == ".parquet":
        if not path.exists():
            raise InputError("file not found", path)
        if not path.is_dir():
            check_regular_file(path)
        rows: Iterable[tuple[int, dict]] = table_rows(path)
    else:
        rows = iter_jsonl_rows(path)
    return itertools.islice(rows, limit) if limit and limit > 0 else rows


def string_field(row: dict, name: str, path: Path, line: int, required: bool = True) -> str | None:
    if row.get(name, "") is None and required:
        raise InputError("is null (expected a string)", path, line, name)
    if name not in row or row[name] is None:
        if required:
            raise InputError(f"missing field (fields present: {', '.join(sorted(row)) or 'none'})",
                             path, line, name)
        return None
    value = row[name]
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {type(value).__name__}", path, line, name)
    if required and not value.strip():
        raise InputError("is empty", path, line, name)
    return value


TABULAR = (".jsonl", ".json", ".ndjson", ".parquet")


def _is_records(path: Path) -> bool:
    """A tabular input: JSON Lines, a JSON array, Parquet, or a ``datasets`` folder."""
    return path.suffix.lower() in TABULAR or (
        path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()))


def read_documents(path: str | Path, limit: int = 0, text_field: str = "text") -> list[Document]:
    """Documents from ``.txt`` blocks, records with a ``text_field`` (JSON Lines, a JSON array,
    Parquet, a ``datasets`` folder; optional ``answer`` and ``id``), or LAMA-ckl units."""
    path = Path(path)
    docs: list[Document] = []
    if _is_records(path):
        for line, row in record_rows(path, limit):
            if text_field not in row and "evidence" in row:  # LAMA-ckl unit
                text = string_field(row, "evidence", path, line)
                answer = string_field(row, "object", path, line)
                answer_field = "object"
                doc_id = str(row.get("uuid", line))
            else:
                text = string_field(row, text_field, path, line)
                answer = string_field(row, "answer", path, line, required=False)
                answer_field = "answer"
                doc_id = str(row.get("id", line))
            start = None
            if answer is not None:
                if not answer.strip():
                    raise InputError("is empty", path, line, answer_field)
                start = find_answer(text, answer)
                if start < 0:
                    raise InputError(f"answer {answer!r} does not occur in the document text",
                                     path, line, answer_field)
            docs.append(Document(text, answer, doc_id, f"{path}:{line}", start))
    elif path.suffix.lower() in (".txt", ".md", ""):
        docs = _text_blocks(path, limit)
    else:
        raise InputError(f"unknown document format '{path.suffix}' (use .txt, .jsonl, .json, .parquet or a "
                         f"datasets folder)", path)
    if not docs:
        raise InputError("no documents found", path)
    return docs[:limit] if limit and limit > 0 else docs


def _text_blocks(path: Path, limit: int = 0) -> list[Document]:
    """The documents of a text file: blocks of lines separated by a blank line (the first
    ``limit`` only, when > 0: the file is read no further)."""
    docs: list[Document] = []
    block: list[str] = []
    first = 0
    for i, line in itertools.chain(iter_lines(path), [(0, "")]):
        if line.strip():
            if not block:
                first = i
            block.append(line)
        elif block:
            docs.append(Document("\n".join(block).strip(), None, str(len(docs)), f"{path}:{first}"))
            block = []
            if limit and len(docs) >= limit:
                break
    if not docs:
        raise InputError("file is empty", path)
    return docs


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def find_answer(text: str, answer: str) -> int:
    """Character offset of the answer's last occurrence in ``text`` that stands on word
    boundaries ("Paris" in "Parisian" does not count; "Paris" in "(Paris)." does), or of its last
    occurrence at all when none does (scripts without spaces); -1 when it does not occur.
    Boundaries are checked only where the answer itself starts or ends with a word character."""
    last = text.rfind(answer)
    if last < 0 or not answer:
        return last
    start = last
    while start >= 0:
        end = start + len(answer)
        left_ok = not _is_word_char(answer[0]) or start == 0 or not _is_word_char(text[start - 1])
        right_ok = not _is_word_char(answer[-1]) or end == len(text) or not _is_word_char(text[end])
        if left_ok and right_ok:
            return start
        start = text.rfind(answer, 0, start + len(answer) - 1)
    return last


def make_probe(prompt: str, answer: str, id: str = "", source: str = "") -> Probe:
    """A probe from a prompt and its answer: the answer's last occurrence in the prompt (on word
    boundaries where possible, :func:`find_answer`) is scored; if it does not occur, it is
    appended after a space."""
    if answer in prompt:
        text = prompt
    else:
        text = prompt.rstrip() + " " + answer
    return Probe(text, answer, find_answer(text, answer), id, source)


def read_probes(path: str | Path, probe_field: str = "task_descriptive", limit: int = 0) -> list[Probe]:
    """Probes from JSONL ``prompt``/``answer`` rows or LAMA-ckl units (``probe_field`` + ``object``)."""
    path = Path(path)
    if not _is_records(path):
        raise InputError(f"probes must be records (.jsonl, .json, .parquet or a datasets folder), got "
                         f"'{path.suffix or 'no extension'}'", path)
    if probe_field not in LAMA_PROBE_FIELDS:
        raise InputError(f"unknown probe field '{probe_field}' (use {' or '.join(LAMA_PROBE_FIELDS)})")
    probes: list[Probe] = []
    for line, row in record_rows(path, limit):
        if "prompt" not in row and ("evidence" in row or probe_field in row):  # LAMA-ckl unit
            prompt = string_field(row, probe_field, path, line)
            answer = string_field(row, "object", path, line)
            if answer not in prompt:
                raise InputError(f"answer {answer!r} (field 'object') does not occur in the probe",
                                 path, line, probe_field)
            probes.append(make_probe(prompt, answer, str(row.get("uuid", line)), f"{path}:{line}"))
        else:
            prompt = string_field(row, "prompt", path, line)
            answer = string_field(row, "answer", path, line)
            probes.append(make_probe(prompt, answer, str(row.get("id", line)), f"{path}:{line}"))
    if not probes:
        raise InputError("no probes found", path)
    return probes[:limit] if limit and limit > 0 else probes


@dataclass
class Pair:
    """A meta-training pair (SPEC 2.3): a document and a task about it with its answer span."""

    document: Document
    task: Probe


def read_pairs(path: str | Path, task_field: str = "task_schematic", limit: int = 0) -> list[Pair]:
    """Pairs from JSONL: ``document`` + ``task`` + ``answer`` rows (the answer's last occurrence
    in the task is its span; appended after a space if absent), or LAMA-ckl units (``evidence``,
    ``task_field``, ``object``)."""
    path = Path(path)
    if not _is_records(path):
        raise InputError(f"pairs must be records (.jsonl, .json, .parquet or a datasets folder), got "
                         f"'{path.suffix or 'no extension'}'", path)
    if task_field not in LAMA_PROBE_FIELDS:
        raise InputError(f"unknown task field '{task_field}' (use {' or '.join(LAMA_PROBE_FIELDS)})")
    pairs: list[Pair] = []
    for line, row in record_rows(path, limit):
        src = f"{path}:{line}"
        if "document" not in row and "evidence" in row:  # LAMA-ckl unit
            text = string_field(row, "evidence", path, line)
            task = string_field(row, task_field, path, line)
            answer = string_field(row, "object", path, line)
            if answer not in task:
                raise InputError(f"answer {answer!r} (field 'object') does not occur in the task",
                                 path, line, task_field)
            pid = str(row.get("uuid", line))
        else:
            text = string_field(row, "document", path, line)
            task = string_field(row, "task", path, line)
            answer = string_field(row, "answer", path, line)
            pid = str(row.get("id", line))
        start = find_answer(text, answer)
        doc = Document(text, answer, pid, src, start if start >= 0 else None)
        if start < 0:
            doc.answer = None  # the answer need not appear in the document; only the task's span matters
        pairs.append(Pair(doc, make_probe(task, answer, pid, src)))
    if not pairs:
        raise InputError("no pairs found", path)
    return pairs[:limit] if limit and limit > 0 else pairs
