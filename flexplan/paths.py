"""Where the shipped instances and recipes are: the repository's ``instances/`` and
``models/`` (editable install, checkout) or the copies packaged as
``flexplan._instances`` / ``flexplan._models`` (wheel install)."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_REPO = _PACKAGE.parent


def _find(folder: str, packaged: str) -> Path:
    local = _REPO / folder
    if local.is_dir() and (_REPO / "pyproject.toml").is_file():
        return local
    return _PACKAGE / packaged


def shipped_instances() -> Path:
    return _find("instances", "_instances")


def shipped_models() -> Path:
    return _find("models", "_models")


def resolve_instance_path(name_or_path: str | Path) -> Path:
    """An instance folder from a path or the name of a shipped instance."""
    p = Path(name_or_path)
    if p.exists():
        return p
    cand = shipped_instances() / str(name_or_path)
    return cand if cand.exists() else p


DEFAULT_INSTANCE = "ieee33"
DEFAULT_RECIPE = "reinforce_only"
