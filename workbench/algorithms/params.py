"""Typed, validated algorithm parameters: what a form shows and what a configuration may hold."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ValidationError

KINDS = ("int", "float", "bool", "str", "choices")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of an algorithm: its type, default, bounds, and a help line for forms."""

    name: str
    kind: str  # one of KINDS
    default: Any
    low: float | None = None  # inclusive validation bounds
    high: float | None = None
    choices: tuple | None = None
    nullable: bool = False
    help: str = ""

    def schema(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind, "default": self.default}
        if self.choices is not None:
            d["choices"] = list(self.choices)
        if self.low is not None:
            d["min"] = self.low
        if self.high is not None:
            d["max"] = self.high
        if self.nullable:
            d["nullable"] = True
        if self.help:
            d["help"] = self.help
        return d

    def coerce(self, value: Any, algorithm: str) -> Any:
        where = f"{algorithm} parameter {self.name!r}"
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null") and self.nullable):
            if self.nullable:
                return None
            raise ValidationError(f"{where} cannot be empty (default: {self.default!r})")
        if self.kind == "bool":
            if isinstance(value, (bool, np.bool_)):
                return bool(value)
            if isinstance(value, (int, np.integer)) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.strip().lower() in ("true", "yes", "1")
            raise ValidationError(f"{where} must be true or false, got {value!r}")
        if self.kind == "int":
            v: Any
            if isinstance(value, (bool, np.bool_)):
                raise ValidationError(f"{where} must be an integer, got {value!r}")
            if isinstance(value, (int, np.integer)):
                v = int(value)
            elif isinstance(value, (float, np.floating)) and float(value).is_integer():
                v = int(value)
            elif isinstance(value, str):
                try:
                    f = float(value.strip())
                except ValueError:
                    raise ValidationError(f"{where} must be an integer, got {value!r}") from None
                if not f.is_integer():
                    raise ValidationError(f"{where} must be an integer, got {value!r}")
                v = int(f)
            else:
                raise ValidationError(f"{where} must be an integer, got {value!r}")
            self._check_range(v, where)
            return v
        if self.kind == "float":
            if isinstance(value, (bool, np.bool_)):
                raise ValidationError(f"{where} must be a number, got {value!r}")
            try:
                v = float(value.strip() if isinstance(value, str) else value)
            except (TypeError, ValueError):
                raise ValidationError(f"{where} must be a number, got {value!r}") from None
            if not math.isfinite(v):
                raise ValidationError(f"{where} must be a finite number, got {value!r}")
            self._check_range(v, where)
            return v
        if self.kind == "choices":
            assert self.choices is not None
            for c in self.choices:
                if value == c and type(value) is type(c):
                    return c
            if isinstance(value, str):
                for c in self.choices:
                    if isinstance(c, str) and c.lower() == value.strip().lower():
                        return c
            raise ValidationError(
                f"{where} must be one of {', '.join(map(repr, self.choices))}; got {value!r}"
            )
        # str
        if not isinstance(value, str):
            raise ValidationError(f"{where} must be a string, got {value!r}")
        return value

    def _check_range(self, v: float, where: str) -> None:
        if self.low is not None and v < self.low or self.high is not None and v > self.high:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            raise ValidationError(f"{where} must be in [{lo}, {hi}], got {v!r}")



def int_param(name: str, default: Any, low: float | None = None, high: float | None = None, nullable: bool = False,
              help: str = "") -> ParamSpec:
    return ParamSpec(name, "int", default, low, high, None, nullable, help)


def float_param(name: str, default: Any, low: float | None = None, high: float | None = None, nullable: bool = False,
                help: str = "") -> ParamSpec:
    return ParamSpec(name, "float", default, low, high, None, nullable, help)


def bool_param(name: str, default: bool, help: str = "") -> ParamSpec:
    return ParamSpec(name, "bool", default, help=help)


def choice_param(name: str, default: Any, choices: tuple, nullable: bool = False, help: str = "") -> ParamSpec:
    return ParamSpec(name, "choices", default, choices=choices, nullable=nullable, help=help)
