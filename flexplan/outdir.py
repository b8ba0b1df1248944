"""Where results may be written: a result folder is replaced only if it is empty, absent or
a flexplan result (it holds :data:`MARKER`); anything else needs ``force``.

Every result folder flexplan writes (``Results.write``, ``flexplan frameworks``) gets the
marker file, so that re-running into the same folder replaces it without asking while a
folder of other files (``--out .``, ``--out ~/Documents``) is never deleted by mistake.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import OutputError

#: the file that marks a folder as a flexplan result (written into every result folder)
MARKER = ".flexplan-result"


def mark_result(folder: Path) -> None:
    """Write the marker into a (temporary) result folder."""
    (Path(folder) / MARKER).write_text("written by flexplan: this folder is replaced when a run writes here again\n")


def is_result(folder: Path) -> bool:
    """Whether ``folder`` is a folder written by flexplan (it holds the marker)."""
    return (Path(folder) / MARKER).is_file()


def check_output_folder(folder: str | Path, force: bool = False) -> Path:
    """The resolved folder to write a result to, or :class:`OutputError` when writing there
    would replace something that is not a flexplan result.

    Refused always: a symbolic link (what it points to would be replaced), a file, the
    current folder or a folder that contains it.  Refused unless ``force``: an existing
    folder that is neither empty nor a flexplan result."""
    given = Path(folder)
    if given.is_symlink():
        raise OutputError(f"output folder {given} is a symbolic link (to {os.readlink(given)}): flexplan does not "
                          "replace what a link points to; give the real folder or a new name")
    target = given.resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise OutputError(f"output folder {given} is the current folder or contains it ({target}): writing a result "
                          "there would replace it; give a new folder, e.g. out/NAME")
    if not target.exists():
        return target
    if not target.is_dir():
        raise OutputError(f"output folder {target} exists and is a file, not a folder: remove it or choose another "
                          "output folder")
    if is_result(target) or not any(target.iterdir()):
        return target
    if force:
        return target
    raise OutputError(f"output folder {target} is not empty and not a flexplan result (no {MARKER} file): writing "
                      "there would delete its contents; choose another output folder, or pass --force "
                      "(force=True) to replace it")


def safe_name(name: str, limit: int = 80) -> str:
    """``name`` as one harmless file-name part: every character other than letters, digits,
    ``.``, ``_`` and ``-`` becomes ``_`` (so ``/``, ``..`` and absolute paths cannot leave
    the output folder), no leading dot, at most ``limit`` characters, never empty."""
    import re

    text = re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).lstrip(".")
    text = re.sub(r"\.{2,}", "_", text)[:limit]
    return text or "unnamed"


def default_output(*parts: str, suffix: str = "") -> Path:
    """``out/PART1-PART2...SUFFIX`` from names taken from the input (sanitised: :func:`safe_name`)."""
    return Path("out") / ("-".join(safe_name(p) for p in parts) + suffix)


#: a temporary file or folder of a write whose process is gone is removed when older than
#: this (s); one whose process is unknown (no pid in its name) only after a day
STALE_AFTER_S = 600.0
STALE_UNKNOWN_S = 86400.0


def temp_prefix(name: str) -> str:
    """The prefix of a temporary sibling of ``name`` being written by this process
    (``.NAME.tmp-PID-``): :func:`clean_stale` can tell whether its writer still runs."""
    return f".{name}.tmp-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OverflowError:
        return False
    return True


def clean_stale(target: str | Path, now: float | None = None) -> list[Path]:
    """Remove the temporary siblings (``.NAME.tmp-*``, ``.NAME.old-*``) that a killed write
    of ``target`` left behind, when that is safe: their process is not running (the pid in
    the name) and they are older than :data:`STALE_AFTER_S` (no pid in the name: older than
    :data:`STALE_UNKNOWN_S`).  Returns what was removed; errors are ignored (best effort)."""
    import re
    import shutil
    import time

    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        return []
    now = time.time() if now is None else now
    pattern = re.compile(r"^\." + re.escape(target.name) + r"\.(tmp|old)-(?:(\d+)(?:-|$))?")
    removed = []
    try:
        siblings = list(parent.iterdir())
    except OSError:
        return []
    for p in siblings:
        m = pattern.match(p.name)
        if not m:
            continue
        pid = int(m.group(2)) if m.group(2) else None
        if pid is not None and (pid == os.getpid() or _alive(pid)):
            continue
        try:
            age = now - p.lstat().st_mtime
        except OSError:
            continue
        if age < (STALE_AFTER_S if pid is not None else STALE_UNKNOWN_S):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed
