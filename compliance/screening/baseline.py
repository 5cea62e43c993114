"""A plain matcher to measure ours against: the best token-sorted Jaro-Winkler over every list name.

This is how watchman-style matchers score: fold to lower-case ASCII, sort the tokens, and take
the best Jaro-Winkler similarity over all names. No token weights, no legal-form handling, no
secondary attributes. It scans every name (``rapidfuzz.process.extractOne``, about 3 ms per query
over OFAC and UN), which is fine for an evaluation and is the reason it is not the product.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import JaroWinkler

from compliance.lists.entities import ListedEntity

from .normalise import fold

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def token_sorted(name: str) -> str:
    return " ".join(sorted(_NON_ALNUM.sub(" ", fold(name)).split()))


def pair_score(name1: str, name2: str) -> float:
    return float(JaroWinkler.similarity(token_sorted(name1), token_sorted(name2)))


@dataclass(frozen=True, slots=True)
class BaselineHit:
    source: str
    key: str
    score: float
    matched_name: str


class BaselineScreener:
    def __init__(self, entities: Iterable[ListedEntity]) -> None:
        self.entities = list(entities)
        self.choices: list[str] = []
        self.owners: list[tuple[int, str]] = []
        for number, entity in enumerate(self.entities):
            for listed in entity.names:
                prepared = token_sorted(listed.name)
                if prepared:
                    self.choices.append(prepared)
                    self.owners.append((number, listed.name))
        self.by_source: dict[str, tuple[list[str], list[int]]] = {}
        for position, (number, _) in enumerate(self.owners):
            choices, positions = self.by_source.setdefault(self.entities[number].source, ([], []))
            choices.append(self.choices[position])
            positions.append(position)

    def best(self, name: str, *, source: str | None = None) -> BaselineHit | None:
        """The best-scoring list name (of one list when ``source`` is given)."""
        query = token_sorted(name)
        if not query:
            return None
        if source is None:
            found = process.extractOne(query, self.choices, scorer=JaroWinkler.similarity)
            if found is None:
                return None
            _, score, position = found
        else:
            choices, positions = self.by_source.get(source, ([], []))
            found = process.extractOne(query, choices, scorer=JaroWinkler.similarity)
            if found is None:
                return None
            _, score, offset = found
            position = positions[offset]
        number, listed_name = self.owners[position]
        entity = self.entities[number]
        return BaselineHit(entity.source, entity.key, float(score), listed_name)
