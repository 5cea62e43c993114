"""Getting a list's files from where the operator says they are: a local path or an http(s) URL.

Downloads go through ``urllib.request`` with a timeout and a size cap; every failure is a
``FetchError`` with a one-line reason. Origins are shown (stored on the version, audited, logged)
without user info or query string, which may carry credentials.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from django.conf import settings


class FetchError(Exception):
    """The files could not be read or downloaded."""


@dataclass(frozen=True)
class ListFile:
    name: str  # the name the parser knows the file by ("sdn.csv")
    required: bool


def is_url(origin: str) -> bool:
    return urlsplit(origin).scheme.lower() in {"http", "https"}


def display_origin(origin: str) -> str:
    """The origin without credentials: user info and query string removed from URLs."""
    if not is_url(origin):
        return origin
    parts = urlsplit(origin)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _download(url: str, *, required: bool) -> bytes | None:
    limit = settings.SANCTIONS_MAX_DOWNLOAD_BYTES
    shown = display_origin(url)
    headers = {"User-Agent": "fintech-sanctions-loader"}
    parts = urlsplit(url)
    if parts.username is not None:
        # user:password@ in the URL becomes HTTP Basic authentication (urllib does not do it).
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        url = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, parts.fragment))
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=settings.SANCTIONS_DOWNLOAD_TIMEOUT_SECONDS) as response:  # noqa: S310
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise FetchError(f"{shown}: {int(declared)} bytes is more than the {limit}-byte limit")
            data = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and not required:
            return None
        raise FetchError(f"{shown}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise FetchError(f"{shown}: cannot be reached ({exc.reason})") from exc
    except TimeoutError as exc:
        raise FetchError(f"{shown}: no answer within {settings.SANCTIONS_DOWNLOAD_TIMEOUT_SECONDS} s") from exc
    except OSError as exc:
        raise FetchError(f"{shown}: download failed ({exc})") from exc
    if len(data) > limit:
        raise FetchError(f"{shown}: larger than the {limit}-byte limit")
    return data


def _local(path: Path, *, required: bool) -> bytes | None:
    candidates = [path, path.with_name(path.name.upper())]
    for candidate in candidates:
        if candidate.is_file():
            try:
                return candidate.read_bytes()
            except OSError as exc:
                raise FetchError(f"{candidate}: cannot be read ({exc.strerror or exc})") from exc
    if required:
        raise FetchError(f"{path}: no such file")
    return None


def fetch_files(origin: str, files: tuple[ListFile, ...]) -> dict[str, bytes | None]:
    """The bytes of each file (None for an optional file that is absent).

    A list of one file takes the file itself (path or URL) or a directory holding it; a list of
    several files takes their directory or base URL, or the path/URL of the first one.
    """
    origin = origin.strip()
    if not origin:
        raise FetchError("no origin given")
    first = files[0].name
    if is_url(origin):
        if len(files) == 1 and not origin.endswith("/"):
            return {first: _download(origin, required=True)}
        if origin.endswith("/"):
            base = origin
        elif urlsplit(origin).path.lower().endswith("/" + first):
            base = origin.rsplit("/", 1)[0] + "/"
        else:
            base = origin + "/"
        return {f.name: _download(urljoin(base, f.name), required=f.required) for f in files}
    if "://" in origin:
        raise FetchError(f"{display_origin(origin)}: only local paths and http(s) URLs are supported")
    path = Path(origin).expanduser()
    if path.is_dir():
        return {f.name: _local(path / f.name, required=f.required) for f in files}
    if not path.exists():
        raise FetchError(f"{origin}: no such file or directory")
    if len(files) == 1:
        return {first: _local(path, required=True)}
    return {f.name: _local(path if i == 0 else path.parent / f.name, required=f.required) for i, f in enumerate(files)}
