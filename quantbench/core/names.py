"""Closed sets of names (target, optimize, compute, status) as enums that stay strings: equal to their value,
written to JSON as it, printed and repr'd as it, so results.json, messages and a user's own prints are unchanged."""
from __future__ import annotations

from enum import StrEnum


class Name(StrEnum):
    def __repr__(self) -> str:
        return repr(self.value)
