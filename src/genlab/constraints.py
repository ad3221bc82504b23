"""Rules for recipe fields, declared next to the fields they constrain.

A field annotated `Annotated[T, rule, ...]` is converted to T by `genlab.config` and then every rule is
checked, so a bad value is a one-line `GenlabError` naming the file and the key before any work starts:

    Range(ge, le, *, gt, lt)   a number x with ge <= x <= le (gt < x < lt for open ends); None bounds are open
    OneOf(names, extra=())     a string among a registry's names (dict keys or a tuple) or `extra`
    NonEmpty()                 a string with at least one non-blank character
    Pattern(regex, hint)       a string that fully matches `regex` (`hint` says what that means)

Independently of any rule, every float field must be finite (NaN and ±inf are rejected).
Rules that tie several fields together live in the dataclass's `__post_init__` and raise
`FieldError(key, rule)`; the loader prefixes the file and section ("recipes/x.yaml: train.batch_size=...").
The aliases below (`PositiveInt`, `Probability`, ...) spell the common cases.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from genlab.errors import GenlabError


class FieldError(GenlabError):
    """A rule on one field (named relative to its section) failed; `str` is "key rule"."""

    def __init__(self, key: str, rule: str):
        super().__init__(f"{key} {rule}")
        self.key, self.rule = key, rule


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Range:
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        lo = f"[{_fmt(self.ge)}" if self.ge is not None else f"({_fmt(self.gt)}" if self.gt is not None else ""
        hi = f"{_fmt(self.le)}]" if self.le is not None else f"{_fmt(self.lt)})" if self.lt is not None else ""
        if lo and hi:
            return f"in {lo}, {hi}"
        if lo:
            return (">= " if lo[0] == "[" else "> ") + lo[1:]
        return ("<= " if hi[-1] == "]" else "< ") + hi[:-1] if hi else "a number"

    def ok(self, x: float) -> bool:
        return (
            (self.ge is None or x >= self.ge)
            and (self.le is None or x <= self.le)
            and (self.gt is None or x > self.gt)
            and (self.lt is None or x < self.lt)
        )

    def check(self, value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return  # types are checked by the converter; None (an unset optional) passes
        if not (math.isfinite(value) and self.ok(value)):
            what = "an integer" if isinstance(value, int) else "a finite number"
            raise GenlabError(f"{where} must be {what} {self.describe()}, got {value!r}")


@dataclass(frozen=True)
class OneOf:
    names: Iterable[str]
    extra: tuple[str, ...] = ()

    def choices(self) -> list[str]:
        return [*self.names, *self.extra]

    def check(self, value: Any, where: str) -> None:
        if isinstance(value, str) and value not in self.choices():
            raise GenlabError(f"{where} must be one of {', '.join(map(repr, self.choices()))}, got {value!r}")


@dataclass(frozen=True)
class NonEmpty:
    def check(self, value: Any, where: str) -> None:
        if isinstance(value, str) and not value.strip():
            raise GenlabError(f"{where} must be set (a non-empty string), got {value!r}")


@dataclass(frozen=True)
class Pattern:
    regex: str
    hint: str

    def check(self, value: Any, where: str) -> None:
        if isinstance(value, str) and not re.fullmatch(self.regex, value):
            raise GenlabError(f"{where} must be {self.hint}, got {value!r}")


RULES = (Range, OneOf, NonEmpty, Pattern)


def check_finite(value: Any, where: str) -> None:
    """Every float in a recipe is finite."""
    if isinstance(value, float) and not math.isfinite(value):
        raise GenlabError(f"{where} must be a finite number, got {value!r}")


def require(ok: bool, key: str, rule: str) -> None:
    """For `__post_init__`: raise FieldError(key, rule) unless `ok`."""
    if not ok:
        raise FieldError(key, rule)


PositiveInt = Annotated[int, Range(1)]  # a size or a count: >= 1
Count = Annotated[int, Range(0)]  # >= 0 (steps, seeds, 0 = off)
Seed = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegFloat = Annotated[float, Range(0)]
Probability = Annotated[float, Range(0, 1)]
Fraction = Annotated[float, Range(0, lt=1)]  # [0, 1)
OptPositiveInt = Annotated[int | None, Range(1)]  # filled from the data when None
OptCount = Annotated[int | None, Range(0)]
TopP = Annotated[float, Range(gt=0, le=1)]  # nucleus sampling mass; 1: off
Name = Annotated[str, Pattern(r"[A-Za-z0-9][A-Za-z0-9._-]*", "a name of letters, digits, '.', '_' and '-'")]

__all__ = [
    "Count",
    "FieldError",
    "Fraction",
    "Name",
    "NonEmpty",
    "NonNegFloat",
    "OneOf",
    "OptCount",
    "OptPositiveInt",
    "Pattern",
    "PositiveFloat",
    "PositiveInt",
    "Probability",
    "Range",
    "Seed",
    "TopP",
    "check_finite",
    "require",
]
