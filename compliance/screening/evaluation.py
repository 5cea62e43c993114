"""Quality of the matcher on labelled data, beside the plain baseline; used by ``screening_eval``
and by the tests.

- name pairs (``name-pairs.csv``): the name score of name1 against name2, labelled match or not;
  precision, recall and F1 per threshold.
- positives (``positives-un.csv``): people on the UN list as a customer record would hold them
  (name, date of birth, nationality); each must produce a hit on a UN entry of OFAC + UN.
- negatives (``negatives-us.csv``): people on no list; every hit is a false alert.
- OFAC portal scores (``ofac-portal-scores.csv``): our name score beside OFAC's own search score.
"""

from __future__ import annotations

import csv
import datetime
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from compliance.lists.countries import country_code
from compliance.lists.entities import EntityType, ListedEntity

from . import Screener, ScreeningQuery, compare
from .baseline import BaselineScreener, pair_score
from .normalise import EmptyNameError, normalise

SCHEMA_TYPES = {
    "Person": EntityType.INDIVIDUAL,
    "Company": EntityType.ENTITY,
    "Organization": EntityType.ENTITY,
    "LegalEntity": EntityType.ENTITY,
    "Vessel": EntityType.VESSEL,
    "Airplane": EntityType.AIRCRAFT,
}
OFAC_PUBLICATION = "ofac/2023-12-28"


def default_data_dir(project_dir: Path) -> Path:
    return project_dir.parent / "shared" / "data" / "sanctions"


def load_lists(sanctions_dir: Path) -> list[ListedEntity]:
    from compliance.lists.ofac import parse_ofac_sdn
    from compliance.lists.un import parse_un_consolidated

    ofac_dir = sanctions_dir / OFAC_PUBLICATION
    ofac = parse_ofac_sdn(ofac_dir / "sdn.csv", ofac_dir / "alt.csv", ofac_dir / "add.csv")
    un = parse_un_consolidated(sanctions_dir / "un" / "consolidated.xml")
    return [*ofac.entities, *un.entities]


@dataclass(frozen=True, slots=True)
class NamePair:
    name1: str
    name2: str
    entity_type: str
    is_match: bool
    schema: str = ""

    @property
    def half(self) -> int:
        """0 or 1, fixed by a hash of the row: rules were tuned on half 0, half 1 checks them."""
        return zlib.crc32(f"{self.name1}|{self.name2}|{self.schema}".encode()) % 2


def load_name_pairs(path: Path) -> list[NamePair]:
    with path.open(newline="", encoding="utf-8") as file:
        return [
            NamePair(
                row["name1"],
                row["name2"],
                str(SCHEMA_TYPES.get(row["schema"], EntityType.ENTITY)),
                row["is_match"].strip().lower() == "true",
                row["schema"],
            )
            for row in csv.DictReader(file)
        ]


def person_query(row: dict[str, str]) -> ScreeningQuery:
    """A benchmark person as a customer record: name, date (or year) of birth, nationality."""
    born = (row.get("date_of_birth") or "").strip()
    date_of_birth = None
    year_of_birth = None
    if len(born) == 10:
        date_of_birth = datetime.date.fromisoformat(born)
    elif born[:4].isdigit():
        year_of_birth = int(born[:4])
    nationality = (row.get("nationality") or "").strip()
    code = nationality.upper() if len(nationality) == 2 else country_code(nationality)
    return ScreeningQuery(
        name=row["full_name"],
        entity_type=EntityType.INDIVIDUAL,
        date_of_birth=date_of_birth,
        year_of_birth=year_of_birth,
        countries=(code,) if code else (),
    )


def load_people(path: Path, limit: int | None = None) -> list[ScreeningQuery]:
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    return [person_query(row) for row in rows[:limit]]


@dataclass(frozen=True, slots=True)
class Quality:
    threshold: float
    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    false_negatives: int


def quality(scored: Sequence[tuple[float, bool]], threshold: float) -> Quality:
    tp = sum(1 for score, match in scored if score >= threshold and match)
    fp = sum(1 for score, match in scored if score >= threshold and not match)
    fn = sum(1 for score, match in scored if score < threshold and match)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Quality(threshold, precision, recall, f1, tp, fp, fn)


def score_pairs(pairs: Iterable[NamePair]) -> list[tuple[float, bool]]:
    scored = []
    for pair in pairs:
        try:
            score = compare(pair.name1, pair.name2, entity_type=pair.entity_type).score
        except EmptyNameError:
            score = 0.0
        scored.append((score, pair.is_match))
    return scored


def score_pairs_baseline(pairs: Iterable[NamePair]) -> list[tuple[float, bool]]:
    return [(pair_score(pair.name1, pair.name2), pair.is_match) for pair in pairs]


def expected_keys(entities: Iterable[ListedEntity], queries: Sequence[ScreeningQuery], source: str) -> list[set[str]]:
    """Per query, the entries of ``source`` that carry every token of its name (across the entry's
    names): the person the row was taken from. Empty when the list no longer has that person."""
    token_sets: list[tuple[str, set[str]]] = []
    for entity in entities:
        if entity.source != source:
            continue
        tokens: set[str] = set()
        for listed in entity.names:
            try:
                tokens.update(normalise(listed.name).tokens)
            except EmptyNameError:
                continue
        token_sets.append((entity.key, tokens))
    expected: list[set[str]] = []
    for query in queries:
        try:
            wanted = set(normalise(query.name).tokens)
        except EmptyNameError:
            expected.append(set())
            continue
        expected.append({key for key, tokens in token_sets if wanted <= tokens})
    return expected


def expected_scores(
    screener: Screener,
    queries: Sequence[ScreeningQuery],
    expected: Sequence[set[str]],
    *,
    floor: float,
    progress: Callable[[Iterable[int]], Iterable[int]] = lambda items: items,
) -> list[float]:
    """Per query, the best score of a hit on one of its expected entries (0 when none is found)."""
    best = []
    for position in progress(range(len(queries))):
        keys = expected[position]
        if not keys:
            best.append(0.0)
            continue
        matches = screener.search(queries[position], threshold=floor, limit=50)
        best.append(max((match.score for match in matches if match.key in keys), default=0.0))
    return best


def best_scores(
    screener: Screener,
    queries: Iterable[ScreeningQuery],
    *,
    floor: float,
    source: str | None = None,
    progress: Callable[[Iterable[ScreeningQuery]], Iterable[ScreeningQuery]] = lambda items: items,
) -> list[float]:
    """Per query, the best score at or above ``floor`` (of one list when ``source`` is given), else 0."""
    best = []
    for query in progress(queries):
        try:
            matches = screener.search(query, threshold=floor, limit=50)
        except EmptyNameError:
            matches = []
        best.append(max((match.score for match in matches if source is None or match.source == source), default=0.0))
    return best


def baseline_best_scores(
    baseline: BaselineScreener,
    queries: Iterable[ScreeningQuery],
    *,
    source: str | None = None,
    progress: Callable[[Iterable[ScreeningQuery]], Iterable[ScreeningQuery]] = lambda items: items,
) -> list[float]:
    scores = []
    for query in progress(queries):
        hit = baseline.best(query.name, source=source)
        scores.append(hit.score if hit else 0.0)
    return scores


def highest_threshold_finding_all(best: Sequence[float], candidates: Sequence[float]) -> float | None:
    """The highest candidate threshold at which every scored positive is found (None: none is)."""
    if not best or min(best) <= 0:
        return None
    fitting = [threshold for threshold in candidates if threshold <= min(best)]
    return max(fitting) if fitting else None


def rate(scores: Sequence[float], threshold: float) -> float:
    return sum(1 for score in scores if score >= threshold) / len(scores) if scores else 0.0
