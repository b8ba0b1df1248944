"""Errors that flexplan raises on purpose.

Every problem with user input is an :class:`InstanceError` that names the file, the row
and the field, so that a person can go straight to the cell to fix.  Several problems
found in one file are collected and reported together.
"""
from __future__ import annotations

from dataclasses import dataclass


class FlexplanError(Exception):
    """Base class of every error flexplan raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem in one place of the input.

    ``file`` is the file (or ``pandapower:NAME`` for a built-in network), ``row`` the
    line number in a CSV file, the header being line 1 (``None`` when the problem is not
    in one line), ``field`` the column or TOML key, ``message`` what is wrong and what is
    allowed.
    """

    file: str
    message: str
    row: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class InstanceError(FlexplanError):
    """Invalid instance data: one or more :class:`Problem` records (the message shows the
    first ``SHOWN``; ``problems`` has them all)."""

    SHOWN = 25

    def __init__(self, problems: list[Problem] | Problem):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        lines = [str(p) for p in self.problems[:self.SHOWN]]
        if len(self.problems) > self.SHOWN:
            lines.append(f"... and {len(self.problems) - self.SHOWN} more (all of them in .problems)")
        n = len(self.problems)
        head = "invalid instance" if n == 1 else f"invalid instance ({n} problems)"
        super().__init__(head + ":\n  " + "\n  ".join(lines))


class RecipeError(FlexplanError):
    """A recipe (model definition) that cannot be assembled."""


class SolverError(FlexplanError):
    """The solver could not be run or returned no usable answer."""



class OutputError(FlexplanError):
    """An output path flexplan refuses to write: writing would replace or delete something
    that is not a flexplan result (the message says what and how to proceed)."""


class OptionError(FlexplanError, ValueError):
    """A solver option out of its range (``time_limit`` nan, ``threads`` -3, ...)."""
