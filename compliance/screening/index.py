"""In-memory index of list names: finds the few names worth scoring for a query.

Every list name is normalised once. Each distinct token has a posting array (the names containing
it); two adjacent tokens written together ("jandaniel") have one too. A query token finds the list
tokens that could be the same name part through three kinds of key, never by scanning the
vocabulary: the token itself, its one-letter deletions (a typo, a dropped or doubled letter, a
swapped pair, as in SymSpell) and its phonetic key (Metaphone: "mohammed" and "muhammad"). The
postings of those tokens give, per name, an upper bound of the score it could reach; only names
whose bound reaches the threshold (less the most the secondary attributes can add) are scored in
full.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

from compliance.lists.entities import ListedEntity, NameKind

from .normalise import LEGAL_FORM_CANONICAL, LEGAL_FORMS, EmptyNameError, NormalisedName, normalise
from .scoring import (
    EVIDENCE,
    INITIAL_SIMILARITY,
    LONE_NUMERALS,
    SCORE_TOLERANCE,
    country_words,
    is_serial,
    normalise_countries,
    parse_dates,
    serial_pair,
    token_similarity,
    variant_keys,
)
from .weights import TokenWeights

MAX_CACHED_REACH = 400_000  # names remembered across cached query tokens (about 40 MB at most)
MIN_DELETION_LENGTH = 4  # shorter tokens differ in too large a share of their letters to be typos
MIN_PHONETIC_KEY = 3
LONG_TOKEN = 6


@lru_cache(maxsize=1_000_000)
def cached_similarity(a: str, b: str) -> float:
    return token_similarity(a, b)


def deletions(token: str) -> set[str]:
    if len(token) < MIN_DELETION_LENGTH:
        return set()
    return {token[:position] + token[position + 1 :] for position in range(len(token))}


def _letter_bit(token: str) -> int:
    code = ord(token[0]) - 97
    return 1 << code if 0 <= code < 26 else 1 << 26


def _letters_mask(tokens: Iterable[str]) -> int:
    mask = 0
    for token in tokens:
        mask |= _letter_bit(token)
    return mask


# (largest evidence in the tier, query weight, name id -> (query share, list share, evidence))
Tier = tuple[float, float, dict[int, tuple[float, float, float]]]
TIER_LEVELS = (0.5, 0.3, 0.0)


@dataclass(frozen=True, slots=True)
class Similar:
    tokens: list[tuple[int, float]]  # (list token id, similarity) of the variants found
    tiers: tuple[Tier, ...]  # the names reached, by evidence (single tokens only)
    reach: dict[int, tuple[float, float]]  # name id -> (best similarity, best similarity * list weight)


@dataclass(frozen=True, slots=True)
class IndexedName:
    entity: int  # position of the entity in the index
    kind: NameKind
    name: str  # as the list writes it
    normalised: NormalisedName
    weights: tuple[float, ...]  # of the normalised tokens


def _direct(token: str) -> bool:
    """A legal form (any written form) or a number: compared directly, not through index keys."""
    return token in LEGAL_FORMS or token in LEGAL_FORM_CANONICAL or is_serial(token) or token in LONE_NUMERALS


class NameIndex:
    def __init__(self, entities: Iterable[ListedEntity]) -> None:
        self.entities: list[ListedEntity] = list(entities)
        self.names: list[IndexedName] = []
        postings: dict[str, list[int]] = defaultdict(list)
        for entity_index, entity in enumerate(self.entities):
            seen: set[str] = set()
            for listed in entity.names:
                try:
                    normalised = normalise(listed.name)
                except EmptyNameError:
                    continue
                if normalised.text in seen:
                    continue  # the same name twice (an alias equal to the primary name once normalised)
                seen.add(normalised.text)
                name_id = len(self.names)
                self.names.append(IndexedName(entity_index, NameKind(listed.kind), listed.name, normalised, ()))
                tokens = normalised.tokens
                for token in set(tokens):
                    postings[token].append(name_id)
                for position in range(len(tokens) - 1):
                    postings[tokens[position] + tokens[position + 1]].append(name_id)

        frequencies: Counter[str] = Counter()
        for indexed in self.names:
            frequencies.update(set(indexed.normalised.tokens))
        self.weights = TokenWeights(len(self.names), frequencies)
        self.names = [
            IndexedName(
                indexed.entity,
                indexed.kind,
                indexed.name,
                indexed.normalised,
                tuple(self.weights(token) for token in indexed.normalised.tokens),
            )
            for indexed in self.names
        ]

        self.vocabulary: list[str] = sorted(postings)
        self.token_ids: dict[str, int] = {token: number for number, token in enumerate(self.vocabulary)}
        self.postings: list[array[int]] = [array("i", postings[token]) for token in self.vocabulary]
        # What a list token can add to a name's list coverage: its weight, or for two adjacent tokens
        # written together the most their two weights make anywhere.
        joined_weight: dict[str, float] = {}
        for indexed in self.names:
            tokens, weights = indexed.normalised.tokens, indexed.weights
            for position in range(len(tokens) - 1):
                key = tokens[position] + tokens[position + 1]
                pair_weight = weights[position] + weights[position + 1]
                if pair_weight > joined_weight.get(key, 0.0):
                    joined_weight[key] = pair_weight
        self.token_weight: list[float] = [
            max(self.weights(token) if token in frequencies else 0.0, joined_weight.get(token, 0.0))
            for token in self.vocabulary
        ]
        # Keys to tokens: one-letter deletions and phonetic keys of single tokens (not joined pairs).
        near: dict[str, list[int]] = defaultdict(list)
        for token in frequencies:
            token_id = self.token_ids[token]
            for key in deletions(token):
                near[key].append(token_id)
            for key in variant_keys(token):
                near[key].append(token_id)
        self.near: dict[str, tuple[int, ...]] = {key: tuple(ids) for key, ids in near.items()}

        self.name_weight: list[float] = [sum(indexed.weights) or 1.0 for indexed in self.names]
        # Secondary attributes read once: listed dates of birth, countries, and the names of the
        # entries born in each year (their date of birth can lift a score; a query's year picks them).
        self.entity_dates = [parse_dates(entity.dates_of_birth) for entity in self.entities]
        self.entity_countries = [
            normalise_countries(
                [*entity.nationalities, *entity.countries, *(address.country for address in entity.addresses)]
            )
            for entity in self.entities
        ]
        names_of_entity: dict[int, list[int]] = defaultdict(list)
        for name_id, indexed in enumerate(self.names):
            names_of_entity[indexed.entity].append(name_id)
        self.names_of_entity: list[tuple[int, ...]] = [
            tuple(names_of_entity.get(number, ())) for number in range(len(self.entities))
        ]
        by_year: dict[int, set[int]] = defaultdict(set)
        for number, dates in enumerate(self.entity_dates):
            for year, _, _ in dates:
                by_year[year].update(self.names_of_entity[number])
        self.names_born_in: dict[int, frozenset[int]] = {year: frozenset(ids) for year, ids in by_year.items()}
        self.names_with_repeats = frozenset(
            name_id
            for name_id, indexed in enumerate(self.names)
            if len(set(indexed.normalised.tokens)) < len(indexed.normalised.tokens)
        )
        self.name_max_weight: list[float] = [max(indexed.weights, default=0.0) for indexed in self.names]
        # Weight of each name's legal forms and numbers: what a query's own can pair with directly.
        self.name_direct_weight: list[float] = [
            sum(
                weight
                for token, weight in zip(indexed.normalised.tokens, indexed.weights, strict=True)
                if _direct(token)
            )
            for indexed in self.names
        ]
        # First letters of each name's tokens, one bit per letter: which initials a name can pair.
        self.name_initials: list[int] = [_letters_mask(indexed.normalised.tokens) for indexed in self.names]
        country_words()  # read once here rather than during the first company query
        self._similar_cache: dict[tuple[str, bool], Similar] = {}
        self._cached_entries = 0
        self._born_near_cache: dict[int, frozenset[int]] = {}
        self._initial_cache: dict[str, Tier | None] = {}
        self._two_cache: dict[tuple[str, ...], frozenset[int]] = {}

    def __len__(self) -> int:
        return len(self.entities)

    def similar_tokens(self, token: str, *, joined: bool = False) -> Similar:
        """List tokens that could be this name part, and per name containing one of them what it
        can add at most: (similarity to the query token, similarity times the list token's weight).
        Two query tokens written together (``joined``) are looked up as written and with one letter
        less only."""
        cached = self._similar_cache.get((token, joined))
        if cached is not None:
            return cached
        found: set[int] = set()
        exact = self.token_ids.get(token)
        if exact is not None:
            found.add(exact)
        first = deletions(token)
        # Two deletions on the query side against one on the list side: up to two edits apart
        # ("sergejs" / "sergey"); only for longer tokens, where two edits are still a variant.
        long_token = len(token) >= LONG_TOKEN and not joined
        second = {key for deleted in first for key in deletions(deleted)} if long_token else set()
        for key in (token, *first, *second):
            found.update(self.near.get(key, ()))
            if key != token and key in self.token_ids:
                found.add(self.token_ids[key])
        if not joined:
            for key in variant_keys(token):
                found.update(self.near.get(key, ()))
        similar = []
        for token_id in found:
            similarity = cached_similarity(token, self.vocabulary[token_id])
            if similarity > 0:
                similar.append((token_id, similarity))
        reach: dict[int, tuple[float, float]] = {}
        for token_id, similarity in sorted(similar, key=lambda item: item[1]):
            list_share = similarity * self.token_weight[token_id]
            for name_id in self.postings[token_id]:
                current = reach.get(name_id)
                # Ascending similarity: the last one seen is the highest; the list share is the most.
                reach[name_id] = (similarity, list_share if current is None else max(list_share, current[1]))
        result = Similar(similar, self._tiers(reach, self.weights(token)) if not joined else (), reach)
        if self._cached_entries < MAX_CACHED_REACH:
            self._similar_cache[(token, joined)] = result
            self._cached_entries += len(reach) + 1
        return result

    def _initial_tier(self, letter: str) -> Tier | None:
        """The names with ``letter`` as a token, and the most a query token it begins can pair there:
        any weight at INITIAL_SIMILARITY on the query side, the initial's weight on the list side."""
        if letter in self._initial_cache:
            return self._initial_cache[letter]
        token_id = self.token_ids.get(letter)
        tier: Tier | None = None
        if token_id is not None:
            weight = self.weights(letter)
            entries: dict[int, tuple[float, float, float]] = {}
            for name_id in self.postings[token_id]:
                count = self.names[name_id].normalised.tokens.count(letter)
                query_share = INITIAL_SIMILARITY * count
                list_share = INITIAL_SIMILARITY * weight * count
                entries[name_id] = (query_share, list_share, min(query_share, list_share))
            if entries:
                tier = (max(entry[2] for entry in entries.values()), 0.0, entries)
        self._initial_cache[letter] = tier
        return tier

    def names_born_near(self, year: int) -> frozenset[int]:
        """Names of the entries with a date of birth within a year of ``year``."""
        cached = self._born_near_cache.get(year)
        if cached is None:
            cached = frozenset().union(
                *(self.names_born_in.get(near, frozenset()) for near in (year - 1, year, year + 1))
            )
            if len(self._born_near_cache) < 500:
                self._born_near_cache[year] = cached
        return cached

    def _names_with_two(self, group: tuple[set[int], list[str]]) -> frozenset[int]:
        """Names with two tokens (or one token twice) among the variants of a group of query tokens."""
        variant_ids, members = group
        key = tuple(sorted(members))
        cached = self._two_cache.get(key)
        if cached is not None:
            return cached
        counts = Counter(chain.from_iterable(self.postings[token_id] for token_id in variant_ids))
        several = {name_id for name_id, count in counts.items() if count >= 2}
        # A name that has one of the variants twice is in its postings once.
        variants = {self.vocabulary[token_id] for token_id in variant_ids}
        names = self.names
        several.update(
            name_id
            for name_id in self.names_with_repeats.intersection(counts)
            if sum(1 for listed in names[name_id].normalised.tokens if listed in variants) >= 2
        )
        result = frozenset(several)
        if len(self._two_cache) < 10_000:
            self._two_cache[key] = result
        return result

    @staticmethod
    def _tiers(reach: dict[int, tuple[float, float]], weight: float) -> tuple[Tier, ...]:
        """The names a query token of this weight reaches, in tiers of evidence: per name (query
        share, list share, evidence), and the tier's largest evidence. Names that reach a common
        spelling only ("mohamed" for a query's rare "mouhamad") land in a low tier, which prefix
        filtering can leave out."""
        tiers: list[dict[int, tuple[float, float, float]]] = [{} for _ in TIER_LEVELS]
        for name_id, (similarity, list_share) in reach.items():
            query_share = weight * similarity
            evidence = min(query_share, list_share)
            for level, tier in zip(TIER_LEVELS, tiers, strict=True):
                if evidence >= level:
                    tier[name_id] = (query_share, list_share, evidence)
                    break
        return tuple((max(entry[2] for entry in tier.values()), weight, tier) for tier in tiers if tier)

    def similarity_function(self, query: NormalisedName) -> Callable[[str, str], float]:
        """Token similarity for scoring this query's candidates: the variants the keys found, with
        initials and legal forms compared directly. A list token no key found is not a variant."""
        tokens = query.tokens
        known: dict[tuple[str, str], float] = {}
        vocabulary = self.vocabulary
        for token in tokens:
            if len(token) == 1:
                continue
            for token_id, value in self.similar_tokens(token).tokens:
                known[(token, vocabulary[token_id])] = value
        for position in range(len(tokens) - 1):
            token = tokens[position] + tokens[position + 1]
            for token_id, value in self.similar_tokens(token, joined=True).tokens:
                known[(token, vocabulary[token_id])] = value

        def similarity(a: str, b: str) -> float:
            value = known.get((a, b))
            if value is not None:
                return value
            if len(a) == 1 or len(b) == 1 or a in LEGAL_FORM_CANONICAL or serial_pair(a, b):
                return cached_similarity(a, b)
            return 0.0

        return similarity

    def candidates(
        self,
        query: NormalisedName,
        floor: float,
        needed: Callable[[int], float] | None = None,
        *,
        boosted: Collection[int] = (),
        boosted_floor: float | None = None,
    ) -> list[int]:
        """Ids of the names whose score bound reaches ``floor`` (``boosted_floor`` for the names in
        ``boosted``: those whose secondary attributes can add most), and ``needed(name id)`` when
        given (the floor of that name's entry, once its secondary attributes are known).

        The bound takes, per query token, the best similarity and list weight the name's variants
        of it could give: query coverage is at most the weight of the query tokens the name has a
        variant of, list coverage at most the weight of those variants over the name's weight, and
        the evidence (paired weight) at most the larger of the two sums. Names that contain none of
        the heaviest query tokens cannot reach the floor and are never looked at (prefix filtering).
        """
        tokens = query.tokens
        weigh = self.weights
        query_weights = [weigh(token) for token in tokens]
        query_total = sum(query_weights)
        if not self.names or not query_total:
            return []
        initials = 0
        free_query_weight = 0.0
        units: list[Tier] = []
        # Query tokens whose variants overlap ("mohammad", "mohammed", or one token twice) form a
        # group: a list name gains from two of them only if it has two such tokens itself.
        group_of: dict[int, int] = {}  # id of a unit's tier dict -> its group
        groups: list[tuple[set[int], list[str]]] = []  # (variant token ids, query tokens)
        for token, weight in zip(tokens, query_weights, strict=True):
            if len(token) == 1:
                initials += 1
                free_query_weight += weight  # an initial may match any name part it begins
                continue
            found = self.similar_tokens(token)
            variant_ids = {token_id for token_id, _ in found.tokens}
            group_number = len(groups)
            for number, (ids, members) in enumerate(groups):
                if not ids.isdisjoint(variant_ids):
                    ids.update(variant_ids)
                    members.append(token)
                    group_number = number
                    break
            else:
                groups.append((variant_ids, [token]))
            for tier in found.tiers:
                units.append(tier)
                group_of[id(tier)] = group_number
        # A list name may give a name part as an initial ("AHMED, A."): one unit per letter.
        for letter in sorted({token[0] for token in tokens if len(token) > 1}):
            initial_tier = self._initial_tier(letter)
            if initial_tier is not None:
                letter_weight = sum(
                    weight
                    for token, weight in zip(tokens, query_weights, strict=True)
                    if len(token) > 1 and token[0] == letter
                )
                units.append((initial_tier[0], letter_weight, initial_tier[2]))
        for position in range(len(tokens) - 1):
            found = self.similar_tokens(tokens[position] + tokens[position + 1], joined=True)
            if found.reach:
                weight = query_weights[position] + query_weights[position + 1]
                entries = {
                    name_id: (weight * similarity, list_share, min(weight * similarity, list_share))
                    for name_id, (similarity, list_share) in found.reach.items()
                }
                units.append((max(entry[2] for entry in entries.values()), weight, entries))
        if not units:
            return []
        # Evidence (the weight of what is paired) scales a score down below EVIDENCE: names that
        # share only common tokens with the query ("mohammad", "trading") cannot reach the floor.
        units.sort(key=lambda unit: -unit[0])
        free_share = free_query_weight / query_total
        # Legal forms and numbers are compared directly, whatever the keys found.
        legal_weight = sum(weight for token, weight in zip(tokens, query_weights, strict=True) if _direct(token))
        direct_share = legal_weight / query_total

        def pool_for(level: float) -> set[int]:
            """The names that can reach ``level``. The lightest tiers together cannot lift a name
            to it: a candidate must be in one of the heavier ones (prefix filtering; a name is in
            one tier of a token at most, so the sums over the remaining tiers bound what it can
            still gain). A tier whose best evidence is below what a name needs cannot carry a name
            alone: such a name must be in enough of the other tiers (counted in C by Counter)."""
            needed_evidence = EVIDENCE * level - legal_weight
            needed_query_share = 2 * level - 1 - free_share - direct_share
            remaining = sum(unit[1] for unit in units)
            remaining_evidence = sum(unit[0] for unit in units)
            required = 0
            while (
                required < len(units)
                and remaining / query_total >= needed_query_share
                and (initials or remaining_evidence >= needed_evidence)
            ):
                remaining -= units[required][1]
                remaining_evidence -= units[required][0]
                required += 1
            strong = [unit for unit in units[:required] if initials or unit[0] >= needed_evidence]
            pool: set[int] = set().union(*(unit[2].keys() for unit in strong))
            if len(strong) == required:
                return pool
            strong_ids = {id(unit) for unit in strong}
            others = [unit for unit in units if id(unit) not in strong_ids]
            times = max(2, math.ceil(needed_evidence / max(unit[0] for unit in others) - 1e-9))
            by_group: dict[int, list[dict[int, tuple[float, float, float]]]] = defaultdict(list)
            counted: list[Iterable[int]] = []
            for unit in others:
                group = group_of.get(id(unit))
                if group is None:
                    counted.append(unit[2].keys())
                else:
                    by_group[group].append(unit[2])
            for group, tiers in by_group.items():
                reached = set().union(*(tier.keys() for tier in tiers))
                counted.append(reached)
                if len(groups[group][1]) > 1:
                    counted.append(reached & self._names_with_two(groups[group]))
            counts = Counter(chain.from_iterable(counted))
            pool.update(name_id for name_id, count in counts.items() if count >= times)
            return pool

        pool = pool_for(floor)
        lower_floor = boosted_floor if boosted_floor is not None and boosted_floor < floor else floor
        if boosted and lower_floor < floor:
            # Names whose secondary attributes can add most may reach a lower floor.
            boosted_set = boosted if isinstance(boosted, (set, frozenset)) else frozenset(boosted)
            pool.update(boosted_set.intersection(pool_for(lower_floor)))
        else:
            boosted = ()
        # Per name of the pool: the query weight, list weight and evidence its variants could pair.
        sums: dict[int, list[float]] = {name_id: [0.0, 0.0, 0.0] for name_id in pool}
        for _, _, entries in units:
            if len(entries) < len(sums):
                for name_id, (query_share, list_share, evidence) in entries.items():
                    total = sums.get(name_id)
                    if total is not None:
                        total[0] += query_share
                        total[1] += list_share
                        total[2] += evidence
            else:
                for name_id, total in sums.items():
                    entry = entries.get(name_id)
                    if entry is not None:
                        total[0] += entry[0]
                        total[1] += entry[1]
                        total[2] += entry[2]
        name_weight, name_max_weight, name_initials = self.name_weight, self.name_max_weight, self.name_initials
        name_direct_weight = self.name_direct_weight
        initial_bits = 0
        for token in tokens:
            if len(token) == 1 and token.isalpha():
                initial_bits |= _letter_bit(token)
        doubled_floor = 2 * floor - SCORE_TOLERANCE
        evidence_floor = EVIDENCE
        found_names = []
        for name_id, (query_sum, list_sum, evidence) in sums.items():
            if legal_weight:
                # The query's legal forms and numbers pair with the name's own, whatever they weigh.
                list_sum += max(legal_weight, name_direct_weight[name_id])
                evidence += legal_weight
            free_share_here = 0.0
            if initials and (not initial_bits or name_initials[name_id] & initial_bits):
                # An initial pairs with a name part it begins: at most the name's heaviest token.
                list_sum += initials * name_max_weight[name_id]
                free_share_here = free_share
                evidence += free_query_weight
            bound = min(1.0, query_sum / query_total + free_share_here + direct_share) + min(
                1.0, list_sum / name_weight[name_id]
            )
            if evidence < evidence_floor:
                bound *= evidence / evidence_floor
            if (
                bound >= doubled_floor
                or (boosted and name_id in boosted and bound >= 2 * lower_floor - SCORE_TOLERANCE)
            ) and (needed is None or bound >= 2 * needed(name_id)):
                found_names.append(name_id)
        return found_names
