"""What every list parser returns, the error it raises, and reading of the source files.

A parser reads the complete publication before anything is written: it returns a ``ParsedList``
or raises ``ListFormatError`` naming the file and the line (or XML element) at fault, so a
truncated or foreign file never replaces a good version.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Union

from .entities import ListedEntity

# A path, or a binary file object (an upload, a download held in memory).
Source = Union[str, "os.PathLike[str]", IO[bytes]]


@dataclass
class ParsedList:
    source: str  # "ofac_sdn", "un"
    published_at: datetime | None  # as the publication states it; None when it does not
    entities: list[ListedEntity]
    files_sha256: str  # SHA-256 over the files in a fixed order: equal exactly when the files are
    stats: dict[str, Any] = field(default_factory=dict)


class ListFormatError(ValueError):
    """The file is not the expected list format, or one of its rows is malformed."""

    def __init__(self, file: str, message: str, *, line: int | None = None, element: str = "") -> None:
        self.file = file
        self.line = line
        self.element = element
        where = file
        if line is not None:
            where += f", line {line}"
        if element:
            where += f", {element}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class SourceFile:
    name: str  # the file name shown in errors ("sdn.csv")
    data: bytes


def read_source(source: Source, default_name: str) -> SourceFile:
    """The bytes of a path or binary file object, with a name for error messages."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            return SourceFile(path.name, path.read_bytes())
        except OSError as exc:
            raise ListFormatError(path.name, f"cannot be read ({exc.strerror or exc})") from exc
    data = source.read()
    if not isinstance(data, bytes):
        raise ListFormatError(default_name, "must be opened in binary mode")
    name = Path(str(getattr(source, "name", "") or default_name)).name
    return SourceFile(name, data)


def files_sha256(files: list[tuple[str, bytes | None]]) -> str:
    """One digest over labelled files in the given order; an absent file counts as absent."""
    digest = hashlib.sha256()
    for label, data in files:
        if data is None:
            digest.update(f"{label}:absent\n".encode())
        else:
            digest.update(f"{label}:{len(data)}\n".encode())
            digest.update(data)
    return digest.hexdigest()


def looks_like_markup(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<?xml", b"<!doctype", b"<html", b"<"))
