"""Which authentication factors an account needs (seed E5): a small boolean language over the
factor names, e.g. ``password and id-card``, ``fingerprint or password``,
``password and (id-card or fingerprint)``. ``and`` binds tighter than ``or``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Factor(StrEnum):
    PASSWORD = "password"
    ID_CARD = "id-card"
    FINGERPRINT = "fingerprint"


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class Need:
    factor: Factor


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Policy, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Policy, ...]


Policy = Need | AllOf | AnyOf
DEFAULT = "password"
_TOKEN = re.compile(r"\s*(\(|\)|[a-z-]+)")
MAX_DEPTH = 8
"""Parentheses nest this deep at most: three factors never need more, and the parser recurses
once per level (200 '(' once ended in a RecursionError, a 500)."""


def parse(text: str) -> Policy:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth > MAX_DEPTH:
            raise PolicyError(f"the policy nests parentheses deeper than {MAX_DEPTH}")
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m:
            raise PolicyError(f"cannot read the policy at {text[pos:]!r}")
        tokens.append(m.group(1))
        pos = m.end()
    policy, rest = _or(tokens)
    if rest:
        raise PolicyError(f"unexpected {' '.join(rest)!r} in the policy")
    return policy


def _or(tokens: list[str]) -> tuple[Policy, list[str]]:
    return _chain(tokens, "or", _and, AnyOf)


def _and(tokens: list[str]) -> tuple[Policy, list[str]]:
    return _chain(tokens, "and", _atom, AllOf)


def _chain(tokens: list[str], word: str, part: Callable[[list[str]], tuple[Policy, list[str]]],
           node: Callable[[tuple[Policy, ...]], Policy]) -> tuple[Policy, list[str]]:
    """``part (word part)*``: one part alone, or the node of them all."""
    first, tokens = part(tokens)
    parts = [first]
    while tokens and tokens[0] == word:
        nxt, tokens = part(tokens[1:])
        parts.append(nxt)
    return (parts[0] if len(parts) == 1 else node(tuple(parts))), tokens


def _atom(tokens: list[str]) -> tuple[Policy, list[str]]:
    if not tokens:
        raise PolicyError("the policy ends too early")
    if tokens[0] == "(":
        inner, rest = _or(tokens[1:])
        if not rest or rest[0] != ")":
            raise PolicyError("a '(' is not closed")
        return inner, rest[1:]
    try:
        return Need(Factor(tokens[0])), tokens[1:]
    except ValueError as exc:
        raise PolicyError(f"unknown factor {tokens[0]!r} (password, id-card, fingerprint)") from exc


def satisfied(policy: Policy, proven: set[Factor]) -> bool:
    if isinstance(policy, Need):
        return policy.factor in proven
    if isinstance(policy, AllOf):
        return all(satisfied(p, proven) for p in policy.parts)
    return any(satisfied(p, proven) for p in policy.parts)


def factors(policy: Policy) -> set[Factor]:
    if isinstance(policy, Need):
        return {policy.factor}
    return set().union(*(factors(p) for p in policy.parts))


def text(policy: Policy) -> str:
    """The canonical form, as stored and shown."""
    if isinstance(policy, Need):
        return policy.factor.value
    joined = (" and " if isinstance(policy, AllOf) else " or ").join(
        f"({text(p)})" if isinstance(p, (AllOf, AnyOf)) else text(p) for p in policy.parts)
    return joined
