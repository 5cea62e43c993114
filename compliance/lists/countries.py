"""Country wordings of the sanctions lists, resolved to ISO 3166-1 alpha-2 codes.

pycountry knows the ISO names ("Iran, Islamic Republic of"); the lists use their own short forms
("Iran", "Korea, North", "Burma", "Iran (Islamic Republic of)"), which the table below maps.
A wording that resolves to nothing is kept as the list's own text by the callers.
"""

from __future__ import annotations

from functools import lru_cache

import pycountry

# Lower-cased list wordings that pycountry does not resolve (or resolves ambiguously).
LIST_WORDINGS: dict[str, str] = {
    "korea, north": "KP",
    "north korea": "KP",
    "democratic people's republic of korea": "KP",
    "korea, south": "KR",
    "south korea": "KR",
    "republic of korea": "KR",
    "iran": "IR",
    "iran (islamic republic of)": "IR",
    "russia": "RU",
    "russian federation": "RU",
    "burma": "MM",
    "myanmar": "MM",
    "syria": "SY",
    "syrian arab republic": "SY",
    "venezuela": "VE",
    "venezuela (bolivarian republic of)": "VE",
    "bolivia": "BO",
    "bolivia (plurinational state of)": "BO",
    "tanzania": "TZ",
    "united republic of tanzania": "TZ",
    "moldova": "MD",
    "republic of moldova": "MD",
    "congo, democratic republic of the": "CD",
    "democratic republic of the congo": "CD",
    "congo, republic of the": "CG",
    "congo": "CG",
    "laos": "LA",
    "lao people's democratic republic": "LA",
    "vietnam": "VN",
    "viet nam": "VN",
    "turkey": "TR",
    "türkiye": "TR",
    "turkiye": "TR",
    "the gambia": "GM",
    "gambia": "GM",
    "bahamas, the": "BS",
    "the bahamas": "BS",
    "palestinian": "PS",
    "state of palestine": "PS",
    "palestine": "PS",
    "west bank": "PS",
    "gaza": "PS",
    "region: gaza": "PS",
    "region: west bank": "PS",
    "kosovo": "XK",
    "taiwan": "TW",
    "hong kong": "HK",
    "macau": "MO",
    "macao": "MO",
    "cabo verde": "CV",
    "cape verde": "CV",
    "czech republic": "CZ",
    "czechia": "CZ",
    "north macedonia, the republic of": "MK",
    "north macedonia": "MK",
    "macedonia": "MK",
    "cote d'ivoire": "CI",
    "côte d'ivoire": "CI",
    "ivory coast": "CI",
    "brunei": "BN",
    "micronesia, federated states of": "FM",
    "vatican city": "VA",
    "holy see": "VA",
    "swaziland": "SZ",
    "eswatini": "SZ",
    "curacao": "CW",
    "curaçao": "CW",
    "united kingdom": "GB",
    "united kingdom of great britain and northern ireland": "GB",
    "united states": "US",
    "united states of america": "US",
    "usa": "US",
    "uae": "AE",
    "saint kitts and nevis": "KN",
    "st. kitts and nevis": "KN",
    "saint vincent and the grenadines": "VC",
    "sao tome and principe": "ST",
}


@lru_cache(maxsize=4096)
def country_code(text: str) -> str:
    """The ISO alpha-2 code of a country wording, or "" when it names no country we know."""
    wording = " ".join(text.split()).strip(" .,")
    if not wording:
        return ""
    lowered = wording.lower()
    if lowered in LIST_WORDINGS:
        return LIST_WORDINGS[lowered]
    # Short strings are codes or placeholders ("na" = not available, not Namibia): only names resolve.
    if len(wording) <= 3:
        return ""
    try:
        country = pycountry.countries.lookup(wording)
    except LookupError:
        return ""
    return str(country.alpha_2)


def country_or_text(text: str) -> str:
    """The ISO code where the wording resolves, else the list's own (whitespace-normalised) text."""
    return country_code(text) or " ".join(text.split())
