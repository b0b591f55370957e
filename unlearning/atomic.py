"""Whole files only: every file the studio writes appears complete or not at all, as standard JSON.

A file is written under a temporary name beside its target and renamed (os.replace is atomic), so a reader sees the
old file or the new one; the temporary is removed on any failure, a full disk included. NaN and infinities, which
json.dumps would write as bare NaN/Infinity, are stored as null.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def to_json(data: Any) -> str:
    """Standard JSON (RFC 8259): NaN and infinities, which json.dumps would write as bare NaN/Infinity, become null."""
    return json.dumps(_finite(data), indent=1, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _write(path: Path, text: str, mode: str) -> None:
    """Every byte the studio writes to a run or a cache goes through here ("w" new file, "a" append, "r+" overwrite
    in place)."""
    with open(path, mode, encoding="utf-8") as f:
        f.write(text)
        if mode == "r+":
            f.truncate()


@contextmanager
def atomic_path(target: Path, shared: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `target` for the caller to make a file or folder at; once the block ends
    without error it is renamed to `target`, else removed. So a file, a run folder or saved weights appear whole or
    not at all (a model folder with a config and no weights would load as a broken model), and a failure (a full
    disk) leaves no leftovers.

    `shared`: a cache folder that other processes may be making at the same time (two studio sessions, parallel test
    workers), each under its own temporary name: the first one renamed wins, and a later one, the same content, is
    dropped (a folder cannot replace a folder that has files)."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError:
            if not (shared and target.is_dir()):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one."""
    with atomic_path(path) as tmp:
        _write(tmp, text, "w")


def append_line(path: Path, data: Any) -> None:
    """One JSON line added to a log: a crash loses at most this line, never the lines before it."""
    _write(path, json.dumps(_finite(data), allow_nan=False) + "\n", "a")


def overwrite_in_place(path: Path, text: str) -> None:
    """Rewrite an existing file within its own blocks: possible on a full disk, where a new file is not (a crash
    mid-write leaves it cut off, which its reader says)."""
    _write(path, text, "r+")
