"""Names to comparable tokens: any script to lower-case Latin, titles and particles removed, legal forms
canonicalised.

The same function normalises list names (when the index is built) and customer names (at query
time), so whatever it removes or rewrites, it does so on both sides. It never raises for odd input
(control characters, any script, very long text); only a name with nothing left after
normalisation is an error (``EmptyNameError``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from anyascii import anyascii

MAX_NAME_CHARS = 300  # longer input is cut: no real name is longer, and it bounds the work per query
MAX_TOKENS = 20


class EmptyNameError(ValueError):
    """The name has no letters or digits left after normalisation."""


# Honorifics, titles and ranks: they say nothing about who the person is.
HONORIFICS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "miss",
        "mister",
        "madam",
        "madame",
        "mme",
        "mlle",
        "dr",
        "doctor",
        "prof",
        "professor",
        "sir",
        "dame",
        "lord",
        "lady",
        "sheikh",
        "shaikh",
        "shaykh",
        "sheik",
        "haji",
        "hajji",
        "hadji",
        "alhaji",
        "hajj",
        "mullah",
        "mulla",
        "maulvi",
        "mawlawi",
        "maulana",
        "mawlana",
        "qari",
        "imam",
        "sayyid",
        "sayed",
        "syed",
        "general",
        "gen",
        "lieutenant",
        "lt",
        "colonel",
        "col",
        "major",
        "maj",
        "captain",
        "capt",
        "sergeant",
        "sgt",
        "brigadier",
        "brig",
        "admiral",
        "adm",
        "commander",
        "cmdr",
        "marshal",
        "president",
        "minister",
        "senator",
        "judge",
    ]
)

# Words that join names rather than name anything; removed on both sides.
PARTICLES = frozenset(
    [
        "the",
        "of",
        "and",
        "for",
        "in",
        "on",
        "de",
        "del",
        "della",
        "der",
        "den",
        "di",
        "da",
        "das",
        "do",
        "dos",
        "du",
        "des",
        "la",
        "le",
        "les",
        "van",
        "von",
        "vom",
        "zu",
        "y",
        "e",
        "et",
        "al",
        "el",
    ]
)

# Spellings of the same name part, mapped to one form (only where the variation is systematic).
SYNONYMS = {
    "ibn": "bin",
    "ben": "bin",
    "bn": "bin",
    "abdel": "abdul",
    "abdal": "abdul",
    "abdoul": "abdul",
    "abdoel": "abdul",
    "abdu": "abdul",
    "st": "saint",
    "intl": "international",
    "int": "international",
    "mfg": "manufacturing",
    "bros": "brothers",
    "natl": "national",
}

GIVEN_NAME_AT_START = frozenset({"ben"})

# Ordinal and number words, so that "First National" and "1st National" agree.
NUMBER_WORDS = {
    "one": "1",
    "first": "1",
    "two": "2",
    "second": "2",
    "three": "3",
    "third": "3",
    "four": "4",
    "fourth": "4",
    "five": "5",
    "fifth": "5",
    "six": "6",
    "sixth": "6",
    "seven": "7",
    "seventh": "7",
    "eight": "8",
    "eighth": "8",
    "nine": "9",
    "ninth": "9",
    "ten": "10",
    "tenth": "10",
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fourty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_ORDINAL_SUFFIX = re.compile(r"^(\d+)(?:st|nd|rd|th)$")
# Digits typed for look-alike letters inside a word ("Sech1n", "Ig0r"); whole numbers stay numbers.
_LOOKALIKE_DIGITS = str.maketrans("0134579", "oieastg")
_MIXED = re.compile(r"^(?=.*[a-z])(?=.*\d)[a-z0-9]+$")
_LOOKALIKE = re.compile(r"(?<=[a-z])[0134579](?=[a-z])")

# Legal forms: phrase (as normalised tokens) -> canonical token. Longest phrases are tried first.
_LEGAL_FORM_PHRASES = {
    "limited liability company": "llc",
    "limited liability co": "llc",
    "limited liability partnership": "llp",
    "limited partnership": "lp",
    "public limited company": "plc",
    "public joint stock company": "jsc",
    "open joint stock company": "jsc",
    "closed joint stock company": "jsc",
    "joint stock company": "jsc",
    "joint stock co": "jsc",
    "obshchestvo s ogranichennoy otvetstvennostyu": "llc",
    "obshchestvo s ogranichennoi otvetstvennostiu": "llc",
    "aktsionernoe obshchestvo": "jsc",
    "aktsionernoye obshchestvo": "jsc",
    "gesellschaft mit beschrankter haftung": "gmbh",
    "societe anonyme": "sa",
    "sociedad anonima": "sa",
    "sociedade anonima": "sa",
    "societa per azioni": "spa",
    "societatea cu raspundere limitata": "srl",
    "societa a responsabilita limitata": "srl",
    "sociedad de responsabilidad limitada": "srl",
    "spolka z ograniczona odpowiedzialnoscia": "llc",
    "sp z oo": "llc",
    "spolka z oo": "llc",
    "sa de cv": "sa",
    "private limited": "ltd",
    "pvt ltd": "ltd",
    "pte ltd": "ltd",
    "pty ltd": "ltd",
    "co ltd": "ltd",
    "company limited": "ltd",
    "llc": "llc",
    "ooo": "llc",
    "too": "llc",
    "limited": "ltd",
    "ltd": "ltd",
    "ltda": "ltd",
    "corporation": "corp",
    "corp": "corp",
    "incorporated": "inc",
    "inc": "inc",
    "company": "co",
    "co": "co",
    "jsc": "jsc",
    "ojsc": "jsc",
    "cjsc": "jsc",
    "pjsc": "jsc",
    "ao": "jsc",
    "oao": "jsc",
    "zao": "jsc",
    "pao": "jsc",
    "aktiengesellschaft": "ag",
    "ag": "ag",
    "gmbh": "gmbh",
    "sa": "sa",
    "sas": "sa",
    "sarl": "sarl",
    "srl": "srl",
    "spa": "spa",
    "plc": "plc",
    "llp": "llp",
    "lp": "lp",
    "bv": "bv",
    "nv": "nv",
    "oy": "oy",
    "oyj": "oy",
    "ab": "ab",
    "as": "as",
    "asa": "as",
    "kg": "kg",
    "pte": "pte",
    "pty": "pty",
    "pvt": "pvt",
    "fze": "fze",
    "fzco": "fzco",
    "fzc": "fzc",
    "sdn bhd": "sdn bhd",
    "bhd": "bhd",
    "tbk": "tbk",
    "kft": "kft",
    "doo": "doo",
}
_LEGAL_FORMS_BY_LENGTH = sorted(
    ((tuple(phrase.split()), canonical) for phrase, canonical in _LEGAL_FORM_PHRASES.items()),
    key=lambda item: -len(item[0]),
)
_LEGAL_FORM_FIRST_WORDS = frozenset(phrase[0] for phrase, _ in _LEGAL_FORMS_BY_LENGTH)
LEGAL_FORMS = frozenset(canonical for _, canonical in _LEGAL_FORMS_BY_LENGTH)
# Every written form of a one-word legal form, to its canonical token ("pao" -> "jsc").
LEGAL_FORM_CANONICAL = {phrase[0]: canonical for phrase, canonical in _LEGAL_FORMS_BY_LENGTH if len(phrase) == 1}
# Short forms that are also name syllables ("Ao", "Sa"): a legal form only at the start or the end.
_AMBIGUOUS_FORMS = frozenset(
    ["ao", "oao", "zao", "pao", "sa", "as", "ab", "co", "too", "doo", "kg", "lp", "oy", "nv", "bv", "ag", "spa"]
)

_SHORT_AMPERSAND = re.compile(r"\b([a-z]{1,2})\s*(?:&|\band\b)\s*([a-z]{1,2})\b")
_DELETED = dict.fromkeys(map(ord, "'\u2018\u2019\u02bc\u02bb`\u00b4."), None)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x3040 <= code <= 0x30FF  # kana
        or 0x3400 <= code <= 0x9FFF  # CJK ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF
    )


def _is_kana(char: str) -> bool:
    return 0x3040 <= ord(char) <= 0x30FF


def fold(text: str) -> str:
    """Any script to lower-case ASCII: control characters dropped, marks stripped, transliterated."""
    text = text[: MAX_NAME_CHARS * 2]
    text = "".join(
        " " if char.isspace() or unicodedata.category(char)[0] == "Z" else char
        for char in text
        if char.isspace() or unicodedata.category(char)[0] != "C"
    )
    if any(_is_cjk(char) for char in text):
        # Ideographs and Hangul: one syllable per character, so that joined and spaced
        # romanisations can be compared. Kana spell a word together ("バラク" -> "baraku"); the
        # middle dot separates words. Transliterated before decomposition, which would strip the
        # voicing marks of kana.
        text = unicodedata.normalize("NFC", text)
        text = "".join(
            " "
            if char in "\u30fb\u00b7"
            else anyascii(char)
            if _is_kana(char)
            else f" {anyascii(char)} "
            if _is_cjk(char)
            else char
            for char in text
        )
    text = unicodedata.normalize("NFKD", text)
    text = "".join(char for char in text if not unicodedata.combining(char))
    return anyascii(text)[:MAX_NAME_CHARS].lower()


def _reorder(text: str) -> str:
    """'PUTIN, Vladimir' -> 'Vladimir PUTIN' (lists write surname first); a legal form after the comma stays."""
    if text.count(",") != 1:
        return text
    head, tail = (part.strip() for part in text.split(","))
    tail_tokens = _NON_ALNUM.sub(" ", tail.translate(_DELETED)).split()
    if not head or not tail_tokens or tail_tokens[0] in _LEGAL_FORM_FIRST_WORDS:
        return text
    return f"{tail} {head}"


@dataclass(frozen=True, slots=True)
class NormalisedName:
    tokens: tuple[str, ...]  # name tokens in order, legal forms included (canonical)
    legal_forms: frozenset[str]  # which of the tokens are legal forms

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    @property
    def joined(self) -> str:
        return "".join(self.tokens)


def _one_letter_less(word: str) -> set[str]:
    return {word[:position] + word[position + 1 :] for position in range(len(word))}


# Long words of legal forms, by their one-letter deletions: a misspelt legal form ("Joynt Stock
# Company", "Aktiengeselschaft") is still one (words of MIN_FUZZY_LEGAL letters or more only).
MIN_FUZZY_LEGAL = 5
_LEGAL_WORDS = frozenset(word for phrase, _ in _LEGAL_FORMS_BY_LENGTH for word in phrase)
_LEGAL_WORD_KEYS: dict[str, str] = {}
for _word in sorted(_LEGAL_WORDS):
    if len(_word) >= MIN_FUZZY_LEGAL:
        for _key in {_word, *_one_letter_less(_word)}:
            _LEGAL_WORD_KEYS.setdefault(_key, _word)


def _legal_spelling(token: str) -> str:
    """The legal-form word a token misspells by one letter (added, dropped or changed), else itself."""
    if len(token) < MIN_FUZZY_LEGAL or token in _LEGAL_WORDS or not token.isalpha():
        return token
    found = _LEGAL_WORD_KEYS.get(token)
    if found is not None and len(found) == len(token) + 1:
        return found  # a letter dropped
    for key in _one_letter_less(token):
        found = _LEGAL_WORD_KEYS.get(key)
        if found is not None and len(found) in (len(token), len(token) - 1):
            return found  # a letter changed or added
    return token


def _canonical_tokens(raw: list[str]) -> list[str]:
    raw = [_legal_spelling(token) for token in raw]
    tokens: list[str] = []
    position = 0
    while position < len(raw):
        token = raw[position]
        if token in _LEGAL_FORM_FIRST_WORDS:
            for phrase, canonical in _LEGAL_FORMS_BY_LENGTH:
                end = position + len(phrase)
                if tuple(raw[position:end]) == phrase:
                    # A one-word form that is also a name syllable ("Pao", "Sa") stays as written;
                    # scoring treats it as equal to its canonical form.
                    tokens.append(token if len(phrase) == 1 and token in _AMBIGUOUS_FORMS else canonical)
                    position = end
                    break
            else:
                tokens.append(token)
                position += 1
            continue
        ordinal = _ORDINAL_SUFFIX.match(token)
        if ordinal:
            token = ordinal.group(1)
        elif _MIXED.match(token):
            token = _LOOKALIKE.sub(lambda found: found.group(0).translate(_LOOKALIKE_DIGITS), token)
        if token in _TENS:
            # "forty four", "forty-four", "forty 4" -> "44"
            following = raw[position + 1] if position + 1 < len(raw) else ""
            unit = NUMBER_WORDS.get(following, following)
            if unit.isdigit() and len(unit) == 1:
                tokens.append(str(_TENS[token] + int(unit)))
                position += 2
                continue
            token = str(_TENS[token])
        if token in GIVEN_NAME_AT_START and not tokens:
            pass  # "Ben Netanyahu": a given name at the start, a patronymic marker elsewhere
        else:
            token = NUMBER_WORDS.get(token, SYNONYMS.get(token, token))
        tokens.append(token)
        position += 1
    return tokens


@lru_cache(maxsize=65536)
def normalise(name: str) -> NormalisedName:
    """Normalise one name; raises ``EmptyNameError`` when nothing comparable is left."""
    if not isinstance(name, str):
        raise TypeError(f"a name must be a string, not {type(name).__name__}")
    text = fold(name)
    text = _reorder(text)
    # "abd al-rahman" is one name part in most romanisations ("abdul rahman", "abdulrahman").
    text = re.sub(r"\babd[ -]?[ae]l[ -]", "abdul ", text)
    # Letters joined by "&" or "and" are one name ("AT&T", "AT and T", "P & G").
    text = _SHORT_AMPERSAND.sub(r"\1\2", text)
    raw = _NON_ALNUM.sub(" ", text.translate(_DELETED)).split()
    tokens = _canonical_tokens(raw)
    meaningful = [token for token in tokens if token not in HONORIFICS and token not in PARTICLES]
    if not meaningful:
        # A name made only of titles or particles ("The Sheikh") keeps them rather than vanish.
        meaningful = tokens
    if not meaningful:
        raise EmptyNameError(f"the name {name[:40]!r} has no letters or digits")
    meaningful = meaningful[:MAX_TOKENS]
    return NormalisedName(
        tokens=tuple(meaningful),
        legal_forms=frozenset(t for t in meaningful if t in LEGAL_FORMS or t in _AMBIGUOUS_FORMS),
    )
