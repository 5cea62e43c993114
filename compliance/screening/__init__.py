"""Sanctions name matching: screen a name (with date of birth, countries, identifiers) against lists.

    screener = Screener.build(entities)          # ListedEntity values from compliance.lists
    matches = screener.search(ScreeningQuery(name="Vladimir Putin", entity_type="individual"))

A match's ``score`` is in [0, 1]; a match is returned when it reaches the threshold configured for
the entry's list and entity type (``SCREENING_THRESHOLDS``), or the ``threshold`` given. Its
``explanation`` shows how the score was made. Everything runs in-process; see docs/screening.md.
"""

from __future__ import annotations

import datetime
import multiprocessing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from compliance.lists.entities import EntityType, ListedEntity, NameKind

from .index import IndexedName, NameIndex, cached_similarity
from .normalise import EmptyNameError, NormalisedName, normalise
from .scoring import (
    COUNTRY_MATCH,
    DOB_EXACT,
    FORMER_NAME_FACTOR,
    SCORE_TOLERANCE,
    WEAK_ALIAS_CAP,
    Factor,
    NameComparison,
    compare_names,
    country_factor,
    dob_factor_parsed,
    kind_cap,
    name_script,
    normalise_identifier,
    same_script_factor,
    type_factor,
)
from .weights import TokenWeights

__all__ = [
    "DEFAULT_THRESHOLDS",
    "EmptyNameError",
    "Screener",
    "ScreeningMatch",
    "ScreeningQuery",
    "compare",
    "threshold_for",
]

# Chosen from the evaluation (docs/screening.md): every UN positive found, few false alerts.
DEFAULT_THRESHOLDS: dict[str, Any] = {"default": 0.7}
MIN_IDENTIFIER_LENGTH = 5  # shorter values ("123") are not identifying
ENTITY_TYPES = frozenset(str(member) for member in EntityType)


@dataclass(frozen=True)
class ScreeningQuery:
    name: str
    entity_type: str | None = None  # "individual" | "entity" | "vessel" | "aircraft" | None
    date_of_birth: datetime.date | None = None
    year_of_birth: int | None = None
    countries: tuple[str, ...] = ()  # ISO alpha-2 (nationality, residence, counterparty country)
    identifiers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.entity_type is not None and self.entity_type not in ENTITY_TYPES:
            raise ValueError(f"entity_type must be one of {sorted(ENTITY_TYPES)} or None, not {self.entity_type!r}")


@dataclass(frozen=True)
class ScreeningMatch:
    source: str
    key: str
    score: float  # 0..1
    matched_name: str
    matched_name_kind: str
    explanation: dict


def _configured_thresholds() -> dict[str, Any]:
    from django.conf import settings

    try:
        return getattr(settings, "SCREENING_THRESHOLDS", None) or DEFAULT_THRESHOLDS
    except Exception:  # settings not configured (a script outside Django)
        return DEFAULT_THRESHOLDS


def threshold_for(source: str, entity_type: str, thresholds: dict[str, Any] | None = None) -> float:
    """The threshold of a list and entity type: ``{source: {type: x}}``, else ``{source: {"default": x}}``
    or ``{source: x}``, else ``{"default": x}``."""
    table = thresholds if thresholds is not None else _configured_thresholds()
    default = float(table.get("default", DEFAULT_THRESHOLDS["default"]))
    per_source = table.get(source)
    if isinstance(per_source, dict):
        value: Any = per_source.get(str(entity_type), per_source.get("default", default))
        return float(value)
    if per_source is not None:
        return float(per_source)
    return default


def _summary(
    query: ScreeningQuery, indexed: IndexedName, comparison: NameComparison, factors: dict[str, float], score: float
) -> str:
    aligned = len(comparison.pairs)
    parts = [
        f"'{query.name.strip()[:80]}' matches the {indexed.kind.replace('_', ' ')} '{indexed.name}' "
        f"with name score {comparison.score:.2f} ({aligned} name part{'s' if aligned != 1 else ''} paired"
    ]
    if comparison.unmatched_query:
        parts.append(f"; not on the list: {', '.join(comparison.unmatched_query)}")
    if comparison.unmatched_list:
        parts.append(f"; not in the query: {', '.join(comparison.unmatched_list)}")
    parts.append(")")
    adjustments = [f"{label} {value:+.2f}" for label, value in factors.items() if label != "name" and value]
    if adjustments:
        parts.append(f"; {', '.join(adjustments)}")
    parts.append(f"; score {score:.2f}.")
    return "".join(parts).replace("_", " ")


class Screener:
    def __init__(self, index: NameIndex) -> None:
        self.index = index
        self.identifiers: dict[str, list[int]] = {}
        for number, entity in enumerate(index.entities):
            for identifier in entity.identifiers:
                value = normalise_identifier(identifier.value)
                if len(value) >= MIN_IDENTIFIER_LENGTH:
                    self.identifiers.setdefault(value, []).append(number)
        self.last_candidates = 0  # names scored in full by the last search (for tests and tuning)

    @classmethod
    def build(cls, entities: Iterable[ListedEntity]) -> Screener:
        return cls(NameIndex(entities))

    def __len__(self) -> int:
        return len(self.index)

    @property
    def name_count(self) -> int:
        return len(self.index.names)

    def _threshold(self, entity: ListedEntity, threshold: float | None, table: dict[str, Any]) -> float:
        if threshold is not None:
            return threshold
        return threshold_for(entity.source, str(entity.entity_type), table)

    def search(self, query: ScreeningQuery, *, threshold: float | None = None, limit: int = 10) -> list[ScreeningMatch]:
        """Matches at or above the threshold, best first. Raises ``EmptyNameError`` for a name with no
        letters or digits."""
        normalised = normalise(query.name)
        table = _configured_thresholds()
        lowest = threshold if threshold is not None else _lowest_threshold(table)
        index = self.index
        query_year = query.date_of_birth.year if query.date_of_birth else query.year_of_birth
        country_bonus = COUNTRY_MATCH if query.countries else 0.0
        bonus = (DOB_EXACT if query_year else 0.0) + country_bonus
        # Only entries born within a year of the query can gain from the date of birth: they alone
        # are looked at with the lowest floor.
        born_near = index.names_born_near(query_year) if query_year else frozenset()
        names, entities = index.names, index.entities
        adjustments: dict[int, float] = {}
        thresholds: dict[tuple[str, str], float] = {}

        def needed(name_id: int) -> float:
            """The name score this name must reach: the entry's threshold less what the entry's date
            of birth, countries and type add (or plus what they take away)."""
            indexed = names[name_id]
            adjustment = adjustments.get(indexed.entity)
            if adjustment is None:
                adjustment = sum(factor.value for factor in _entity_factors(query, index, indexed.entity))
                adjustments[indexed.entity] = adjustment
            entity = entities[indexed.entity]
            group = (entity.source, str(entity.entity_type))
            limit_score = thresholds.get(group)
            if limit_score is None:
                limit_score = thresholds[group] = self._threshold(entity, threshold, table)
            floor = limit_score - adjustment
            if indexed.kind == NameKind.WEAK_ALIAS and floor > WEAK_ALIAS_CAP:
                return 2.0  # out of reach
            if indexed.kind == NameKind.FORMER_NAME:
                floor /= FORMER_NAME_FACTOR
            return floor - SCORE_TOLERANCE

        candidate_names = index.candidates(
            normalised,
            max(0.0, lowest - country_bonus),
            needed,
            boosted=born_near,
            boosted_floor=max(0.0, lowest - bonus),
        )
        self.last_candidates = len(candidate_names)

        similarity = self.index.similarity_function(normalised)
        query_weights = [self.index.weights(token) for token in normalised.tokens]
        # Names written in a syllabic script are also compared in it (scoring.same_script_factor).
        query_script = name_script(query.name)
        best: dict[int, tuple[float, IndexedName, NameComparison, float, str, Factor | None]] = {}
        for name_id in candidate_names:
            indexed = self.index.names[name_id]
            entity = self.index.entities[indexed.entity]
            comparison = compare_names(
                normalised,
                indexed.normalised,
                self.index.weights,
                similarity,
                organisation=entity.entity_type != EntityType.INDIVIDUAL,
                company=entity.entity_type == EntityType.ENTITY,
                detailed=False,
                query_weights=query_weights,
                list_weights=indexed.weights,
            )
            name_score = comparison.score
            script = same_script_factor(query.name, indexed.name, query_script)
            if script is not None and script.value < name_score:
                script = Factor(script.value - name_score, script.note)
                name_score += script.value
            capped, cap_note = kind_cap(indexed.kind, name_score)
            current = best.get(indexed.entity)
            if current is None or capped > current[0]:
                best[indexed.entity] = (capped, indexed, comparison, capped - name_score, cap_note, script)

        identifier_hits = self._identifier_hits(query)
        for entity_number in identifier_hits:
            if entity_number not in best:
                entity = self.index.entities[entity_number]
                indexed = next(name for name in self.index.names if name.entity == entity_number)
                comparison = compare_names(normalised, indexed.normalised, self.index.weights, similarity)
                best[entity_number] = (comparison.score, indexed, comparison, 0.0, "", None)

        matches = []
        for entity_number, (name_score, indexed, comparison, cap, cap_note, script) in best.items():
            entity = self.index.entities[entity_number]
            limit_score = self._threshold(entity, threshold, table)
            hit = entity_number in identifier_hits
            if not hit and name_score + bonus < limit_score:
                continue
            comparison = compare_names(
                normalised,
                indexed.normalised,
                self.index.weights,
                similarity,
                organisation=entity.entity_type != EntityType.INDIVIDUAL,
                company=entity.entity_type == EntityType.ENTITY,
            )
            match = self._match(query, entity_number, indexed, comparison, name_score, cap, cap_note, hit, script)
            if match.score >= limit_score:
                matches.append(match)
        matches.sort(key=lambda match: (-match.score, match.source, match.key))
        return matches[: max(0, limit)]

    def _identifier_hits(self, query: ScreeningQuery) -> set[int]:
        hits: set[int] = set()
        for identifier in query.identifiers:
            value = normalise_identifier(identifier)
            if len(value) >= MIN_IDENTIFIER_LENGTH:
                hits.update(self.identifiers.get(value, ()))
        return hits

    def _match(
        self,
        query: ScreeningQuery,
        entity_number: int,
        indexed: IndexedName,
        comparison: NameComparison,
        name_score: float,
        cap: float,
        cap_note: str,
        identifier_hit: bool,
        script: Factor | None = None,
    ) -> ScreeningMatch:
        entity = self.index.entities[entity_number]
        dob, country, kind = _entity_factors(query, self.index, entity_number)
        score = name_score + dob.value + country.value + kind.value
        score = min(1.0, max(0.0, score))
        identifier = Factor(0.0, "no identifier in common")
        if identifier_hit:
            identifier = Factor(round(1.0 - score, 4), "same identifier on the list entry: decisive")
            score = 1.0
        factors = {
            "name": round(comparison.score, 4),
            "same_script": round(script.value if script is not None and script.value < 0 else 0.0, 4),
            "alias_cap": round(cap, 4),
            "date_of_birth": dob.value,
            "country": country.value,
            "entity_type": kind.value,
            "identifier": identifier.value,
        }
        explanation = {
            "matched_name": indexed.name,
            "matched_name_kind": str(indexed.kind),
            "query_tokens": list(normalise(query.name).tokens),
            "list_tokens": list(indexed.normalised.tokens),
            "alignment": [
                {
                    "query_token": pair.query,
                    "list_token": pair.listed,
                    "similarity": pair.similarity,
                    "weight": round(max(pair.query_weight, pair.list_weight), 3),
                }
                for pair in comparison.pairs
            ],
            "unmatched_query_tokens": comparison.unmatched_query,
            "unmatched_list_tokens": comparison.unmatched_list,
            "query_coverage": round(comparison.query_coverage, 4),
            "list_coverage": round(comparison.list_coverage, 4),
            "conflict_penalty": round(-comparison.conflict, 4),
            "factors": factors,
            "notes": [
                note
                for note in (
                    *comparison.notes,
                    script.note if script else "",
                    cap_note,
                    dob.note,
                    country.note,
                    kind.note,
                    identifier.note,
                )
                if note
            ],
            "score": round(score, 4),
        }
        explanation["summary"] = _summary(query, indexed, comparison, factors, score)
        return ScreeningMatch(
            source=entity.source,
            key=entity.key,
            score=round(score, 4),
            matched_name=indexed.name,
            matched_name_kind=str(indexed.kind),
            explanation=explanation,
        )

    def search_many(
        self, queries: Sequence[ScreeningQuery], *, processes: int = 1, **kwargs: Any
    ) -> list[list[ScreeningMatch]]:
        """``search`` for each query, in order. ``processes`` > 1 forks workers that share the index
        (copy-on-write); a query whose name is empty gets no matches rather than an error."""
        if processes <= 1 or len(queries) < 2000:
            return [_safe_search(self, query, kwargs) for query in queries]
        global _FORKED
        _FORKED = (self, kwargs)
        chunk = max(1, len(queries) // (processes * 8))
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            return pool.map(_forked_search, queries, chunksize=chunk)


_FORKED: tuple[Screener, dict[str, Any]] | None = None


def _entity_factors(query: ScreeningQuery, index: NameIndex, number: int) -> tuple[Factor, Factor, Factor]:
    """Date of birth, country and entity type: they depend on the entry, not on which of its names matched."""
    dob = dob_factor_parsed(query.date_of_birth, query.year_of_birth, index.entity_dates[number])
    country = country_factor(query.countries, index.entity_countries[number])
    kind = type_factor(query.entity_type, str(index.entities[number].entity_type))
    return dob, country, kind


def _safe_search(screener: Screener, query: ScreeningQuery, kwargs: dict[str, Any]) -> list[ScreeningMatch]:
    try:
        return screener.search(query, **kwargs)
    except EmptyNameError:
        return []


def _forked_search(query: ScreeningQuery) -> list[ScreeningMatch]:
    assert _FORKED is not None  # noqa: S101 — set by search_many before the fork
    screener, kwargs = _FORKED
    return _safe_search(screener, query, kwargs)


def _lowest_threshold(table: dict[str, Any]) -> float:
    values = [float(table.get("default", DEFAULT_THRESHOLDS["default"]))]
    for key, value in table.items():
        if key == "default":
            continue
        if isinstance(value, dict):
            values.extend(float(item) for item in value.values())
        else:
            values.append(float(value))
    return min(values)


_default_weights: TokenWeights | None = None


def compare(name1: str, name2: str, *, entity_type: str | None = None) -> NameComparison:
    """Name score of two names on their own (no list), with the reference token weights; two names in
    the same syllabic script are also compared character by character (``same_script_factor``)."""
    global _default_weights
    if _default_weights is None:
        _default_weights = TokenWeights()
    first: NormalisedName = normalise(name1)
    second: NormalisedName = normalise(name2)
    organisation = entity_type is not None and entity_type != EntityType.INDIVIDUAL
    comparison = compare_names(
        first,
        second,
        _default_weights,
        cached_similarity,
        organisation=organisation,
        company=entity_type == EntityType.ENTITY,
    )
    script = same_script_factor(name1, name2)
    if script is not None and script.value < comparison.score:
        comparison.score = script.value
    return comparison
