"""Scores: how well a query name matches a list name, and how secondary attributes move it.

Name score. Query tokens are paired with list-name tokens (the best pairs first, each token used
once; a token may also pair with two adjacent tokens of the other side written together, as in
"JanDaniel" and "Jan Daniel"). Each pair has a similarity in [0, 1] (Jaro-Winkler and Levenshtein
averaged; equal phonetic keys count as close; an initial matches a token it begins). With ``w`` the
token weights (rare tokens weigh more):

    query coverage  = sum(similarity * w(query token)) / sum(w(query tokens))
    list coverage   = sum(similarity * w(list token)) / sum(w(list tokens))
    name score      = (query coverage + list coverage) / 2 - CONFLICT * min(unmatched query share,
                                                                           unmatched list share)

A token left over on one side only (a middle name the customer did not give) costs coverage; tokens
left over on both sides contradict each other ("Barack" against "Michelle") and cost more.

Two names both written in Han/kana or both in Hangul are also compared in that script, each
character a name part (``same_script_factor``), which caps the name score: transliteration merges
characters that name different people ("高石早苗" and "高市早苗").

Secondary attributes add or subtract a few points (``FACTORS``); an identical identifier decides.
Every number that went into a score is kept in the match's ``explanation``.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import jellyfish
from rapidfuzz.distance import OSA, JaroWinkler, Levenshtein

from compliance.lists.entities import EntityType, NameKind

from .normalise import LEGAL_FORM_CANONICAL, NormalisedName
from .normalise import fold as fold_name

TOKEN_FLOOR = 0.72  # below this two tokens are different names, not variants of one
INITIAL_SIMILARITY = 0.85
PHONETIC_SIMILARITY = 0.88
PHONETIC_SPELLING = 0.5  # equal phonetic keys count only for spellings at least this close ("Vita"/"Fuad" do not)
PHONETIC_CLOSE = 0.85  # ...and lift the similarity to PHONETIC_SIMILARITY from this close ("Gazprom"/"Gasprom")
TYPO_SIMILARITY = 0.9  # one letter added, dropped, changed or two swapped in a long token ("Pulin"/"Putin")
TYPO_MIN_LENGTH = 5
SERIAL_SIMILARITY = 0.6
NICKNAME_SIMILARITY = 0.85  # "Ben" and "Benjamin": likely the same person, not certainly
SKELETON_SIMILARITY = 0.92  # the same spelling once romanisation variants are folded
CONFLICT = 1.4
WEAK_PAIR = 0.77  # below this (and below the 0.76 of a pair alike by sound only) a pair is partly two names
WEAK_PAIR_CONFLICT = 0.5  # the share of a weak pair's dissimilarity that counts as contradiction
CONTRADICTION_FLOOR = 0.5  # a name part in place of another contradicts it even when common ("Mohamed"/"Ali")
SLOPE = 2.0
EVIDENCE = 0.9
SCORE_TOLERANCE = 1e-9  # a score or bound equal to a floor reaches it despite floating-point rounding
ORGANISATION_EXTRA = 0.15  # an extra word in a company name ("Trust Company") often names another company
ORGANISATION_DISTINCT = 0.15  # a number or country only one company name has ("Fund II", "Santander Chile")
PATRONYMIC_CROSSING = 0.8  # "Ahmad bin Hasan" is not "Hasan bin Ahmad"
PATRONYMIC_MARKERS = frozenset({"bin", "bint", "binti", "ould", "walad"})

WEAK_ALIAS_CAP = 0.75  # a weak alias ("Abu Ali") alone never reaches a usual threshold
FORMER_NAME_FACTOR = 0.97

DOB_EXACT = 0.10
DOB_MONTH = 0.07
DOB_YEAR = 0.05
DOB_NEAR_YEAR = 0.02
DOB_SAME_YEAR_OTHER_DATE = -0.15
DOB_OTHER_YEAR = -0.30
COUNTRY_MATCH = 0.03
COUNTRY_MISMATCH = -0.05
TYPE_PERSON_VS_OTHER = -0.35
TYPE_OTHER_MISMATCH = -0.15

Weigh = Callable[[str], float]


def _phonetic(token: str) -> str:
    if len(token) < 3 or not token.isalpha():
        return ""
    return jellyfish.metaphone(token)


_phonetic_cache: dict[str, str] = {}


def phonetic_key(token: str) -> str:
    key = _phonetic_cache.get(token)
    if key is None:
        key = _phonetic(token)
        if len(_phonetic_cache) < 200_000:
            _phonetic_cache[token] = key
    return key


# Romanisation variants of one sound, to one spelling (applied in order): Arabic, Persian, Russian
# and Chinese names are written many ways in Latin letters ("Youssef"/"Yusef", "Khalil"/"Halil",
# "Sergey"/"Sergei", "Xi"/"Si"/"Shi").
_DOUBLED = re.compile(r"(.)\1+")
_SKELETON_REPLACEMENTS = (
    ("tsch", "c"),
    ("tch", "c"),
    ("ch", "c"),
    ("sch", "s"),
    ("sh", "s"),
    ("kh", "h"),
    ("gh", "g"),
    ("ph", "f"),
    ("dh", "d"),
    ("th", "t"),
    ("ck", "k"),
    ("q", "k"),
    ("x", "ks"),
    ("ou", "u"),
    ("oo", "u"),
    ("ee", "i"),
    ("y", "i"),
    ("w", "v"),
)
_SKELETON_CONTEXT = (
    (re.compile(r"c(?=[aou]|$)"), "k"),
    (re.compile(r"(?<=[aeiou])j"), "i"),
    (re.compile(r"(?<=[aeiou])h$"), ""),
)
MIN_VARIANT_KEY = 3
_skeleton_cache: dict[str, str] = {}


def skeleton(token: str) -> str:
    """The token with romanisation variants folded to one spelling ("" for numbers and codes)."""
    cached = _skeleton_cache.get(token)
    if cached is not None:
        return cached
    if not token.isalpha():
        return ""
    folded = _DOUBLED.sub(r"\1", token)
    if folded.startswith("x"):
        folded = "s" + folded[1:]  # pinyin "Xi" is said "Si"/"Shi"
    for written, said in _SKELETON_REPLACEMENTS:
        if written in folded:
            folded = folded.replace(written, said)
    for pattern, replacement in _SKELETON_CONTEXT:
        folded = pattern.sub(replacement, folded)
    folded = _DOUBLED.sub(r"\1", folded)
    if len(_skeleton_cache) < 300_000:
        _skeleton_cache[token] = folded
    return folded


@lru_cache(maxsize=1)
def _nickname_groups() -> dict[str, frozenset[str]]:
    """Token -> the formal given names it is (or is a short form of), from the ``nicknames``
    package's hand-curated English table ("ben" -> {"benjamin", "benedict", ...})."""
    groups: dict[str, set[str]] = {}
    table = resources.files("nicknames").joinpath("names.csv").read_text(encoding="utf-8")
    for row in csv.DictReader(io.StringIO(table)):
        formal, nickname = row["name1"].strip().lower(), row["name2"].strip().lower()
        if not (formal.isalpha() and nickname.isalpha()):
            continue
        groups.setdefault(formal, set()).add(formal)
        groups.setdefault(nickname, set()).add(formal)
    return {token: frozenset(formals) for token, formals in groups.items()}


def nickname_of(a: str, b: str) -> bool:
    """Whether one token is a nickname of the other, or both are of one formal name."""
    groups = _nickname_groups()
    first, second = groups.get(a), groups.get(b)
    return bool(first and second and not first.isdisjoint(second))


def variant_keys(token: str) -> list[str]:
    """Index keys under which spellings of the same name part meet: phonetic key, skeleton, and
    the formal given names a nickname stands for."""
    keys = ["@" + formal for formal in _nickname_groups().get(token, ())]
    phonetic = phonetic_key(token)
    if len(phonetic) >= MIN_VARIANT_KEY:
        keys.append("#" + phonetic)
    folded = skeleton(token)
    if len(folded) >= 2 and folded != token:
        keys.append("%" + folded)
    if folded and folded != token:
        keys.append(folded)  # a list token written the folded way ("yusef" for "youssef")
    return keys


def _raw_similarity(a: str, b: str) -> float:
    return (JaroWinkler.similarity(a, b) + Levenshtein.normalized_similarity(a, b)) / 2


def _roman(number: int) -> str:
    tens, units = divmod(number, 10)
    return "x" * tens + ["", "i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix"][units]


# Roman numerals II to XXXIX, not the letters "I", "V" and "X" (initials) nor "XI" (the name "Xi").
ROMAN_SERIALS = frozenset(_roman(number) for number in range(2, 40)) - {"i", "v", "x", "xi"}
LONE_NUMERALS = frozenset({"v", "x"})  # numerals only beside another numeral ("Partners IV" / "V")


_DIGIT = re.compile(r"\d")


def is_serial(token: str) -> bool:
    """A number, a code with digits, or a Roman numeral: what tells apart funds, trusts, vessels."""
    # Called for every token pair the index did not find: most tokens are letters only (isalpha, in C).
    return token in ROMAN_SERIALS or (not token.isalpha() and _DIGIT.search(token) is not None)


def serial_pair(a: str, b: str) -> bool:
    """Two numbers in the same place: both serials, or a lone V or X against a Roman numeral."""
    if is_serial(a) and is_serial(b):
        return True
    return (a in LONE_NUMERALS and b in ROMAN_SERIALS) or (b in LONE_NUMERALS and a in ROMAN_SERIALS)


def token_similarity(a: str, b: str) -> float:
    """Similarity in [0, 1] of two normalised tokens; 0 when they are different names."""
    if a == b:
        return 1.0
    if a in LEGAL_FORM_CANONICAL and LEGAL_FORM_CANONICAL[a] == LEGAL_FORM_CANONICAL.get(b):
        return 1.0
    if serial_pair(a, b):
        # Two different numbers in the same place ("Fund III" / "Fund IV", "Trust 2006-2" /
        # "2007-2", "Storm 1" / "Storm 2"): often a sister entity worth a look, so a weak pair
        # rather than a conflict.
        return SERIAL_SIMILARITY
    if len(a) == 1 or len(b) == 1:
        return INITIAL_SIMILARITY if a[0] == b[0] else 0.0
    if a.isdigit() or b.isdigit() or (not a.isalpha() and not b.isalpha()):
        return 0.0  # numbers and codes match exactly or not at all
    a_skeleton, b_skeleton = skeleton(a), skeleton(b)
    if a_skeleton == b_skeleton:
        return SKELETON_SIMILARITY
    if nickname_of(a, b):
        return NICKNAME_SIMILARITY
    spelling = similarity = max(_raw_similarity(a, b), _raw_similarity(a_skeleton, b_skeleton))
    sounds_alike = spelling >= PHONETIC_SPELLING and bool(phonetic_key(a)) and phonetic_key(a) == phonetic_key(b)
    if similarity < PHONETIC_SIMILARITY and sounds_alike:
        similarity = PHONETIC_SIMILARITY
    if min(len(a), len(b)) <= 3 and similarity < 0.9:
        return 0.0  # "kim" and "kin" are different short names
    if similarity < TOKEN_FLOOR:
        return 0.0
    # Steeper than the raw similarity: "Castro" and "Castillo" are different surnames, "Scholz" and
    # "Scholze" are one.
    similarity = max(0.0, 1.0 - SLOPE * (1.0 - similarity))
    if sounds_alike and spelling >= PHONETIC_CLOSE and len(phonetic_key(a)) >= MIN_VARIANT_KEY:
        similarity = max(similarity, PHONETIC_SIMILARITY)
    if _typo(a, b):
        similarity = max(similarity, TYPO_SIMILARITY)
    return similarity


def _typo(a: str, b: str) -> bool:
    """One slip of the keyboard between two long tokens: a letter added, dropped or changed, or two
    neighbours swapped, the first letter kept (a changed first letter makes another name: "Kang" and
    "Wang"), except for the vowel Arabic romanisations disagree on ("Osama"/"Usama")."""
    return (
        min(len(a), len(b)) >= TYPO_MIN_LENGTH
        and (a[0] == b[0] or (a[0] in "aeiou" and b[0] in "aeiou"))
        and OSA.distance(a, b) <= 1
    )


@dataclass(frozen=True, slots=True)
class TokenPair:
    query: str
    listed: str
    similarity: float
    query_weight: float
    list_weight: float


@dataclass(slots=True)
class NameComparison:
    score: float
    pairs: list[TokenPair]
    unmatched_query: list[str]
    unmatched_list: list[str]
    query_coverage: float
    list_coverage: float
    conflict: float
    notes: list[str] = field(default_factory=list)  # what each contradiction cost, in words


# (similarity, tokens covered, query token positions, list token positions, query text, list text)
Candidate = tuple[float, int, tuple[int, ...], tuple[int, ...], str, str]


def _joined_units(tokens: Sequence[str]) -> list[tuple[str, tuple[int, ...]]]:
    return [(tokens[index] + tokens[index + 1], (index, index + 1)) for index in range(len(tokens) - 1)]


def compare_names(
    query: NormalisedName,
    listed: NormalisedName,
    weigh: Weigh,
    similarity: Callable[[str, str], float] = token_similarity,
    *,
    organisation: bool = False,
    company: bool = False,
    detailed: bool = True,
    query_weights: Sequence[float] | None = None,
    list_weights: Sequence[float] | None = None,
) -> NameComparison:
    """Compare two normalised names. ``detailed=False`` skips what only an explanation needs."""
    q_tokens, l_tokens = query.tokens, listed.tokens
    q_weights = list(query_weights) if query_weights is not None else [weigh(token) for token in q_tokens]
    l_weights = list(list_weights) if list_weights is not None else [weigh(token) for token in l_tokens]

    candidates: list[Candidate] = []
    for i, q_text in enumerate(q_tokens):
        for j, l_text in enumerate(l_tokens):
            value = similarity(q_text, l_text)
            if value > 0:
                candidates.append((value, 1, (i,), (j,), q_text, l_text))
    pairs = _greedy(candidates, len(q_tokens), len(l_tokens))
    used_q = {i for _, q_idx, _, _, _ in pairs for i in q_idx}
    used_l = {i for _, _, l_idx, _, _ in pairs for i in l_idx}
    if len(used_q) < len(q_tokens) or len(used_l) < len(l_tokens):
        # A token left over: two tokens of one side may be one of the other's ("myongsik").
        extra: list[Candidate] = []
        for q_text, q_idx in _joined_units(q_tokens):
            if q_idx[0] in used_q and q_idx[1] in used_q and len(used_l) == len(l_tokens):
                continue
            for j, l_text in enumerate(l_tokens):
                if len(l_text) == 1:
                    continue  # an initial stands for one name part, not two written together
                value = similarity(q_text, l_text)
                if value > 0:
                    extra.append((value, 2, q_idx, (j,), q_text, l_text))
        for l_text, l_idx in _joined_units(l_tokens):
            if l_idx[0] in used_l and l_idx[1] in used_l and len(used_q) == len(q_tokens):
                continue
            for i, q_text in enumerate(q_tokens):
                if len(q_text) == 1:
                    continue
                value = similarity(q_text, l_text)
                if value > 0:
                    extra.append((value, 2, (i,), l_idx, q_text, l_text))
        if extra:
            better = _greedy(candidates + extra, len(q_tokens), len(l_tokens))
            if _matched_weight(better, q_weights, l_weights) > _matched_weight(pairs, q_weights, l_weights):
                pairs = better
                used_q = {i for _, q_idx, _, _, _ in pairs for i in q_idx}
                used_l = {i for _, _, l_idx, _, _ in pairs for i in l_idx}

    q_total = sum(q_weights)
    l_total = sum(l_weights)
    q_matched = sum(value * sum(q_weights[i] for i in q_idx) for value, q_idx, _, _, _ in pairs)
    l_matched = sum(value * sum(l_weights[i] for i in l_idx) for value, _, l_idx, _, _ in pairs)
    q_coverage = q_matched / q_total if q_total else 0.0
    l_coverage = l_matched / l_total if l_total else 0.0
    q_left = [i for i in range(len(q_tokens)) if i not in used_q]
    l_left = [i for i in range(len(l_tokens)) if i not in used_l]
    q_unmatched = sum(q_weights[i] for i in q_left) / q_total if q_total else 1.0
    l_unmatched = sum(l_weights[i] for i in l_left) / l_total if l_total else 1.0
    # Contradiction: what each side has in place of the other's. A token left over on both sides
    # counts at least CONTRADICTION_FLOOR ("Mohamed" in place of "Ali" names another father), a weak
    # pair ("Hamidullah"/"Waliullah") counts in part.
    notes: list[str] = []
    q_against = _against(q_left, q_weights, query.legal_forms, q_tokens, floor=bool(l_left))
    l_against = _against(l_left, l_weights, listed.legal_forms, l_tokens, floor=bool(q_left))
    if q_left and l_left and detailed:
        notes.append(
            f"'{' '.join(q_tokens[i] for i in q_left)}' in place of '{' '.join(l_tokens[i] for i in l_left)}': "
            f"a contradiction, each part weighing at least {CONTRADICTION_FLOOR}"
        )
    for value, q_idx, l_idx, q_text, l_text in pairs:
        if value < WEAK_PAIR and not serial_pair(q_text, l_text):
            q_against += WEAK_PAIR_CONFLICT * (1 - value) * sum(q_weights[i] for i in q_idx)
            l_against += WEAK_PAIR_CONFLICT * (1 - value) * sum(l_weights[i] for i in l_idx)
            if detailed:
                notes.append(
                    f"'{q_text}' and '{l_text}' are only partly alike (similarity {value:.2f}): "
                    f"{WEAK_PAIR_CONFLICT * (1 - value):.2f} of their weight counts as contradiction"
                )
    conflict = CONFLICT * min(q_against / q_total if q_total else 1.0, l_against / l_total if l_total else 1.0, 1.0)
    if organisation and max(q_unmatched, l_unmatched):
        leftover_cost = ORGANISATION_EXTRA * max(q_unmatched, l_unmatched)
        conflict += leftover_cost
        if detailed:
            notes.append(f"a word only one of two entity names has: -{leftover_cost:.2f}")
    if company:
        q_sister = [q_tokens[i] for i in q_left if _names_a_sister(q_tokens[i])]
        l_sister = [l_tokens[i] for i in l_left if _names_a_sister(l_tokens[i])]
        if bool(q_sister) != bool(l_sister):
            conflict += ORGANISATION_DISTINCT
            if detailed:
                notes.append(
                    f"only one name has '{' '.join(q_sister or l_sister)}': perhaps a sister company, "
                    f"-{ORGANISATION_DISTINCT:.2f}"
                )
    crossing = PATRONYMIC_CROSSING * _patronymic_crossing(q_tokens, l_tokens, pairs, q_weights, q_total)
    if crossing:
        conflict += crossing
        if detailed:
            notes.append(f"a person's own name paired with a forebear's across 'bin': -{crossing:.2f}")
    score = max(0.0, (q_coverage + l_coverage) / 2 - conflict)
    # Evidence: what the paired tokens weigh. One common token ("Mohammed", "Trading") fully
    # matched is not enough to name anyone; one rare token (weight about 1) is.
    # A pair is as telling as the commoner of its two spellings ("mahamoud" is a rare way to write
    # the common "mahmoud").
    evidence = sum(
        value * min(sum(q_weights[i] for i in q_idx), sum(l_weights[i] for i in l_idx))
        for value, q_idx, l_idx, _, _ in pairs
    )
    if evidence < EVIDENCE:
        score *= evidence / EVIDENCE
    if not detailed:
        return NameComparison(score, [], [], [], q_coverage, l_coverage, conflict)
    token_pairs = [
        TokenPair(
            query=q_text,
            listed=l_text,
            similarity=round(value, 3),
            query_weight=round(sum(q_weights[i] for i in q_idx), 3),
            list_weight=round(sum(l_weights[i] for i in l_idx), 3),
        )
        for value, q_idx, l_idx, q_text, l_text in sorted(pairs, key=lambda pair: pair[1][0])
    ]
    return NameComparison(
        score=score,
        pairs=token_pairs,
        unmatched_query=[q_tokens[i] for i in q_left],
        unmatched_list=[l_tokens[i] for i in l_left],
        query_coverage=q_coverage,
        list_coverage=l_coverage,
        conflict=conflict,
        notes=notes,
    )


def _against(
    left: Sequence[int], weights: Sequence[float], legal_forms: frozenset[str], tokens: Sequence[str], *, floor: bool
) -> float:
    """Weight of one side's left-over tokens, each at least CONTRADICTION_FLOOR when the other side
    has left-over tokens too (a legal form keeps its own small weight)."""
    if not floor:
        return sum(weights[i] for i in left)
    return sum(weights[i] if tokens[i] in legal_forms else max(CONTRADICTION_FLOOR, weights[i]) for i in left)


# One-word country names in common use that neither pycountry nor the lists' wordings give.
_COUNTRY_WORDS_EXTRA = ("uk", "britain", "england", "scotland", "wales", "korea")


@lru_cache(maxsize=1)
def country_words() -> frozenset[str]:
    """One-word country names, folded like name tokens ("chile", "mexico", "sweden", "russia")."""
    import pycountry

    from compliance.lists.countries import LIST_WORDINGS

    words = set(_COUNTRY_WORDS_EXTRA)
    words.update(fold_name(wording) for wording in LIST_WORDINGS if " " not in wording and "," not in wording)
    for country in pycountry.countries:
        for attribute in ("name", "common_name", "official_name"):
            name = getattr(country, attribute, "")
            if name and " " not in name and "," not in name:
                words.add(fold_name(name))
    return frozenset(words)


def _names_a_sister(token: str) -> bool:
    """A number or a country in a company name: what tells a group's companies apart."""
    return is_serial(token) or token in country_words()


def _generations(tokens: Sequence[str]) -> list[int]:
    """For each token, how many patronymic markers precede it (0: the person, 1: the father...)."""
    seen = 0
    generations = []
    for position, token in enumerate(tokens):
        if token in PATRONYMIC_MARKERS and 0 < position < len(tokens) - 1:
            seen += 1  # a marker names a forebear only between two names
        generations.append(seen)
    return generations


def _patronymic_crossing(
    q_tokens: Sequence[str],
    l_tokens: Sequence[str],
    pairs: list[tuple[float, tuple[int, ...], tuple[int, ...], str, str]],
    q_weights: list[float],
    q_total: float,
) -> float:
    """Share of the query's weight paired across generations: the person's own name with a
    forebear's (the son's name with the father's). Forebears among themselves are not told apart."""
    if not q_total or PATRONYMIC_MARKERS.isdisjoint(q_tokens) or PATRONYMIC_MARKERS.isdisjoint(l_tokens):
        return 0.0
    q_generation, l_generation = _generations(q_tokens), _generations(l_tokens)
    if not (q_generation[-1] and l_generation[-1]):
        return 0.0
    crossed = sum(
        sum(q_weights[i] for i in q_idx)
        for _, q_idx, l_idx, q_text, _ in pairs
        if q_text not in PATRONYMIC_MARKERS and (q_generation[q_idx[0]] == 0) != (l_generation[l_idx[0]] == 0)
    )
    return crossed / q_total


def _greedy(
    candidates: list[Candidate], q_count: int, l_count: int
) -> list[tuple[float, tuple[int, ...], tuple[int, ...], str, str]]:
    chosen: list[tuple[float, tuple[int, ...], tuple[int, ...], str, str]] = []
    used_q: set[int] = set()
    used_l: set[int] = set()
    # Best similarity first; at equal similarity a pair covering more tokens first.
    for value, _span, q_idx, l_idx, q_text, l_text in sorted(candidates, key=lambda c: (-c[0], -c[1])):
        if used_q.isdisjoint(q_idx) and used_l.isdisjoint(l_idx):
            chosen.append((value, q_idx, l_idx, q_text, l_text))
            used_q.update(q_idx)
            used_l.update(l_idx)
            if len(used_q) == q_count or len(used_l) == l_count:
                break
    return chosen


def _matched_weight(
    pairs: list[tuple[float, tuple[int, ...], tuple[int, ...], str, str]],
    q_weights: list[float],
    l_weights: list[float],
) -> float:
    return sum(
        value * (sum(q_weights[i] for i in q_idx) + sum(l_weights[i] for i in l_idx))
        for value, q_idx, l_idx, _, _ in pairs
    )


# --- secondary attributes ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Factor:
    value: float  # signed contribution to the score
    note: str  # what was compared, in words


NEUTRAL_DOB = Factor(0.0, "date of birth not compared (not given on both sides)")


def _parse_partial(value: str) -> tuple[int, int | None, int | None] | None:
    match = re.match(r"^(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?", value.strip())
    if not match:
        return None
    year, month, day = match.groups()
    return int(year), int(month) if month else None, int(day) if day else None


def parse_dates(listed: Iterable[str]) -> tuple[tuple[int, int | None, int | None], ...]:
    """Listed dates of birth as (year, month or None, day or None); unreadable ones are left out."""
    return tuple(value for value in (_parse_partial(text) for text in listed) if value)


def dob_factor(date_of_birth: datetime.date | None, year_of_birth: int | None, listed: Iterable[str]) -> Factor:
    return dob_factor_parsed(date_of_birth, year_of_birth, parse_dates(listed))


def dob_factor_parsed(
    date_of_birth: datetime.date | None,
    year_of_birth: int | None,
    parsed: Sequence[tuple[int, int | None, int | None]],
) -> Factor:
    query_year = date_of_birth.year if date_of_birth else year_of_birth
    if query_year is None or not parsed:
        return NEUTRAL_DOB
    best: Factor | None = None
    any_near_year = False
    for year, month, day in parsed:
        gap = abs(year - query_year)
        any_near_year = any_near_year or gap <= 1
        if date_of_birth and month and day:
            if (year, month, day) == (date_of_birth.year, date_of_birth.month, date_of_birth.day):
                return Factor(DOB_EXACT, f"same date of birth ({date_of_birth.isoformat()})")
            continue
        if date_of_birth and month and (year, month) == (date_of_birth.year, date_of_birth.month):
            candidate = Factor(DOB_MONTH, f"same month of birth ({year}-{month:02d})")
        elif gap == 0:
            candidate = Factor(DOB_YEAR, f"same year of birth ({year})")
        elif gap == 1:
            candidate = Factor(DOB_NEAR_YEAR, f"year of birth within one year ({year} listed)")
        else:
            continue
        if best is None or candidate.value > best.value:
            best = candidate
    if best:
        return best
    listed_text = ", ".join(
        sorted({str(y) + (f"-{m:02d}" if m else "") + (f"-{d:02d}" if d else "") for y, m, d in parsed})
    )
    if any_near_year:
        return Factor(DOB_SAME_YEAR_OTHER_DATE, f"different date of birth in a close year (listed {listed_text})")
    return Factor(DOB_OTHER_YEAR, f"different year of birth (listed {listed_text})")


def normalise_countries(countries: Iterable[str]) -> frozenset[str]:
    return frozenset(country.strip().upper() for country in countries if country and country.strip())


def country_factor(query_countries: Iterable[str], listed_countries: Iterable[str]) -> Factor:
    query = normalise_countries(query_countries)
    listed = listed_countries if isinstance(listed_countries, frozenset) else normalise_countries(listed_countries)
    if not query or not listed:
        return Factor(0.0, "country not compared (not given on both sides)")
    shared = query & listed
    if shared:
        return Factor(COUNTRY_MATCH, f"country matches ({', '.join(sorted(shared))})")
    return Factor(COUNTRY_MISMATCH, f"no country in common (listed {', '.join(sorted(listed)[:5])})")


def type_factor(query_type: str | None, listed_type: str) -> Factor:
    if not query_type or query_type == listed_type:
        return Factor(0.0, "entity type not compared" if not query_type else f"both are {listed_type}")
    if EntityType.INDIVIDUAL in (query_type, listed_type):
        return Factor(TYPE_PERSON_VS_OTHER, f"query is {query_type}, list entry is {listed_type}")
    return Factor(TYPE_OTHER_MISMATCH, f"query is {query_type}, list entry is {listed_type}")


def normalise_identifier(value: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", value.upper())


def kind_cap(kind: str, name_score: float) -> tuple[float, str]:
    """Name score after the cap of the name's kind, and a note when the kind lowered it."""
    if kind == NameKind.WEAK_ALIAS and name_score > WEAK_ALIAS_CAP:
        return WEAK_ALIAS_CAP, f"weak alias: name score capped at {WEAK_ALIAS_CAP:.2f}"
    if kind == NameKind.FORMER_NAME:
        return name_score * FORMER_NAME_FACTOR, "former name: slightly lower"
    return name_score, ""


# Scripts in which every character is a syllable of the name (Han, kana, Hangul). Their
# transliteration merges different characters ("高石" and "高市" are both "gaoshi", "종" and "정"
# differ by a vowel anyascii keeps but a name score shrugs off), so two names written in one of
# these scripts are also compared character by character, each character a name part.
SYLLABIC_SCRIPTS = frozenset({"han", "hangul"})


def _char_script(char: str) -> str:
    name = unicodedata.name(char, "")
    if name.startswith(("CJK ", "HIRAGANA", "KATAKANA")):
        return "han"  # Japanese writes one name in kanji and kana
    if name.startswith("HANGUL"):
        return "hangul"
    return name.split(" ", 1)[0].lower()


@lru_cache(maxsize=65536)
def name_script(name: str) -> str:
    """The one script of a name's letters ("latin", "cyrillic", "han", "hangul"...), or "" when it
    has none or mixes scripts."""
    scripts = {_char_script(char) for char in unicodedata.normalize("NFKC", name) if char.isalpha()}
    return scripts.pop() if len(scripts) == 1 else ""


def _syllables(name: str) -> Counter[str]:
    return Counter(char for char in unicodedata.normalize("NFKC", name) if char.isalpha())


def same_script_factor(query_name: str, listed_name: str, query_script: str | None = None) -> Factor | None:
    """Both names in the same syllabic script: their character-by-character score (the name-score
    formula, each character a name part of equal weight), which caps the transliterated name score.
    None when the rule does not apply (either name Latin, the scripts differ, or an alphabet)."""
    script = name_script(query_name) if query_script is None else query_script
    if script not in SYLLABIC_SCRIPTS or name_script(listed_name) != script:
        return None
    query, listed = _syllables(query_name), _syllables(listed_name)
    q_total, l_total = sum(query.values()), sum(listed.values())
    common = sum((query & listed).values())
    q_share, l_share = common / q_total, common / l_total
    score = max(0.0, (q_share + l_share) / 2 - CONFLICT * min(1 - q_share, 1 - l_share))
    note = f"same-script comparison ({script}): {common} of {q_total} query / {l_total} list characters in common"
    return Factor(score, note if score >= 1.0 else f"{note}: name score at most {score:.2f}")


@dataclass(slots=True)
class Scored:
    score: float
    explanation: dict = field(default_factory=dict)
