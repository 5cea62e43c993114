"""OFAC's Specially Designated Nationals list in its legacy CSV form (sdn.csv, alt.csv, add.csv).

The files are Latin-1, without a header row; ``-0-`` (often with a trailing space) means empty and
the last line is a single ``\\x1a`` byte, which tells a complete file from a truncated one.

- sdn.csv: ent_num, SDN_Name, SDN_Type, Program, Title, Call_Sign, Vess_type, Tonnage, GRT,
  Vess_flag, Vess_owner, Remarks. SDN_Type ``-0-`` is an entity.
- alt.csv: ent_num, alt_num, alt_type ("aka", "fka", "nka"), alt_name, alt_remarks.
- add.csv: ent_num, add_num, address, city/state/postal code, country, add_remarks.

OFAC publishes its *weak* a.k.a.s (short or generic names it screens with less weight) not in
alt.csv but inside the Remarks column, quoted: ``a.k.a. 'BNC'``. They become weak aliases;
``f.k.a. '...'`` there becomes a former name. The Remarks text is also where dates and places of
birth, nationality, citizenship and identity documents live, as ``;``-separated statements.
Individuals' names are "LAST, First" and are kept as OFAC writes them.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .countries import country_code, country_or_text
from .entities import Address, EntityType, Identifier, ListedEntity, ListedName, NameKind
from .parsing import ListFormatError, ParsedList, Source, SourceFile, files_sha256, looks_like_markup, read_source

SOURCE = "ofac_sdn"
EMPTY = "-0-"
END_OF_FILE = b"\x1a"
SDN_COLUMNS = 12
ALT_COLUMNS = 5
ADD_COLUMNS = 6

SDN_TYPES = {
    "": EntityType.ENTITY,
    "individual": EntityType.INDIVIDUAL,
    "vessel": EntityType.VESSEL,
    "aircraft": EntityType.AIRCRAFT,
}
ALT_KINDS = {
    "aka": NameKind.STRONG_ALIAS,
    "fka": NameKind.FORMER_NAME,
    "nka": NameKind.STRONG_ALIAS,  # "now known as": the entity's new name
}
# Quoted names in the Remarks column: OFAC's weak a.k.a.s and the like.
REMARK_NAME_KINDS = {
    "a.k.a.": NameKind.WEAK_ALIAS,
    "f.k.a.": NameKind.FORMER_NAME,
    "n.k.a.": NameKind.WEAK_ALIAS,
}

# Identity document and registration statements of the Remarks column, as OFAC words them.
# Longest first, so "Diplomatic Passport" wins over "Passport".
IDENTIFIER_KINDS = sorted(
    [
        "Passport",
        "Diplomatic Passport",
        "Passport Booklet",
        "British National Overseas Passport",
        "Stateless Person Passport",
        "Stateless Person ID Card",
        "Travel Document Number",
        "National ID No.",
        "National Foreign ID Number",
        "Personal ID Card",
        "Identification Number",
        "Tax ID No.",
        "Registration ID",
        "Registration Number",
        "Business Registration Number",
        "Business Registration Document",
        "Business Number",
        "Public Registration Number",
        "Company Number",
        "UK Company Number",
        "Commercial Registry Number",
        "Certificate of Incorporation Number",
        "Trade License No.",
        "Legal Entity Number",
        "Unified Social Credit Code (USCC)",
        "United Social Credit Code Certificate (USCCC)",
        "Government Gazette Number",
        "Economic Register Number (CBLS)",
        "Central Registration System Number",
        "Chamber of Commerce Number",
        "Istanbul Chamber of Comm. No.",
        "Dubai Chamber of Commerce Membership No.",
        "Enterprise Number",
        "Branch Unit Number",
        "Folio Mercantil No.",
        "Matricula Mercantil No",
        "C.R. No.",
        "V.A.T. Number",
        "D-U-N-S Number",
        "SWIFT/BIC",
        "BIK (RU)",
        "Cedula No.",
        "C.U.R.P.",
        "R.F.C.",
        "RFC",
        "NIT",
        "RUC",
        "RIF",
        "C.U.I.",
        "C.U.I.T.",
        "C.U.I.P.",
        "D.N.I.",
        "N.I.E.",
        "C.I.F.",
        "I.F.E.",
        "SSN",
        "US FEIN",
        "Italian Fiscal Code",
        "Fiscal Code",
        "Birth Certificate Number",
        "Driver's License No.",
        "Electoral Registry No.",
        "Credencial electoral",
        "Cartilla de Servicio Militar Nacional",
        "Military Registration Number",
        "Residency Number",
        "Permit Number",
        "Refugee ID Card",
        "Tazkira National ID Card",
        "Kenyan ID No.",
        "Turkish Identification Number",
        "Moroccan Personal ID No.",
        "Bosnian Personal ID No.",
        "Citizen's Card Number",
        "Numero de Identidad",
        "CNP (Personal Numerical Code)",
        "Public Security and Immigration No.",
        "Immigration No.",
        "Registered Charity No.",
        "Afghan Money Service Provider License Number",
        "Pilot License Number",
        "Vessel Registration Identification",
        "MMSI",
        "Other Vessel Call Sign",
        "Aircraft Manufacturer's Serial Number (MSN)",
        "Aircraft Construction Number (also called L/N or S/N or F/N)",
        "Aircraft Tail Number",
        "Aircraft Mode S Transponder Code",
        "Aircraft Serial Identification",
        "ISIN",
        "LE Number",
        "RTN",
        "Digital Currency Address - XBT",
        "Digital Currency Address - ETH",
        "Digital Currency Address - USDT",
        "Digital Currency Address - XMR",
        "Digital Currency Address - LTC",
        "Digital Currency Address - ZEC",
        "Digital Currency Address - DASH",
        "Digital Currency Address - BTG",
        "Digital Currency Address - ETC",
        "Digital Currency Address - BSV",
        "Digital Currency Address - BCH",
        "Digital Currency Address - XVG",
        "Digital Currency Address - USDC",
        "Digital Currency Address - TRX",
        "Digital Currency Address - ARB",
        "Digital Currency Address - BSC",
    ],
    key=len,
    reverse=True,
)

MONTHS = {
    m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)
}
_DATE = r"(?:(?P<{p}d>\d{{1,2}}) )?(?:(?P<{p}m>[A-Z][a-z]{{2}})[a-z]*\.? )?(?P<{p}y>\d{{4}})"
_DOB_RANGE = re.compile(
    rf"^(?:circa |approximately |about )?{_DATE.format(p='a')}(?:\s*(?:to|-)\s*{_DATE.format(p='b')})?$"
)
# At most this many years are expanded from a range ("1960 to 1962" -> three values).
MAX_DOB_RANGE_YEARS = 20

_PAREN_TAIL = re.compile(r"^(?P<value>.*?)(?P<parens>(?:\s*\([^()]*\))*)$")
_DOC_TAIL = re.compile(r"\s+(?:issued|expires|Issue Date|Expiration Date)\b.*$")


def _clean(value: str) -> str:
    value = value.strip()
    return "" if value == EMPTY else value


def _split_programs(program: str) -> tuple[str, ...]:
    # "SDGT] [IFSR": the CSV keeps the brackets between several programs.
    return tuple(p.strip(" []") for p in program.split("] [") if p.strip(" []"))


def _partial_date(day: str | None, month: str | None, year: str) -> str | None:
    if month is not None and month[:3] not in MONTHS:
        return None
    if month is None:
        return year if day is None else None
    text = f"{year}-{MONTHS[month[:3]]:02d}"
    return f"{text}-{int(day):02d}" if day else text


def parse_dob(text: str) -> list[str] | None:
    """ISO partial dates of one OFAC DOB statement; None when the wording is not understood.

    "07 Oct 1952" -> ["1952-10-07"], "circa 1960" -> ["1960"], "1960 to 1962" -> one per year,
    "Mar 1970 to Mar 1970" -> ["1970-03"].
    """
    match = _DOB_RANGE.match(" ".join(text.split()))
    if match is None:
        return None
    first = _partial_date(match["ad"], match["am"], match["ay"])
    if first is None:
        return None
    if match["by"] is None:
        return [first]
    last = _partial_date(match["bd"], match["bm"], match["by"])
    if last is None:
        return None
    if first == last:
        return [first]
    start, end = int(match["ay"]), int(match["by"])
    if end < start or end - start > MAX_DOB_RANGE_YEARS:
        return None
    return [str(year) for year in range(start, end + 1)]


def _unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == "'":
        name = name[1:-1]
    return " ".join(name.split())


def _identifier(statement: str) -> Identifier | None:
    for kind in IDENTIFIER_KINDS:
        if statement.startswith(kind + " "):
            rest = statement[len(kind) :]
            break
    else:
        return None
    rest = _DOC_TAIL.sub("", rest.strip().lstrip("#").strip())
    parts = _PAREN_TAIL.match(rest)
    value, country = rest, ""
    if parts is not None and parts["parens"]:
        value = parts["value"].strip()
        last = parts["parens"].strip().rsplit("(", 1)[-1].rstrip(")")
        country = country_or_text(last)
    name = kind
    if name == "Vessel Registration Identification" and value.startswith("IMO "):
        name, value = "IMO", value[4:].strip()
    if not value:
        return None
    return Identifier(kind=name, value=value, country=country)


@dataclass
class _Remarks:
    dates_of_birth: list[str] = field(default_factory=list)
    places_of_birth: list[str] = field(default_factory=list)
    nationalities: list[str] = field(default_factory=list)
    citizenships: list[str] = field(default_factory=list)
    identifiers: list[Identifier] = field(default_factory=list)
    names: list[ListedName] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def _statements(remarks: str) -> Iterator[str]:
    text = remarks.strip()
    if text.endswith("."):
        text = text[:-1]
    for statement in text.split(";"):
        statement = statement.strip()
        if statement:
            yield statement


def parse_remarks(remarks: str) -> _Remarks:
    """The structured facts of an SDN Remarks text (the full text is kept separately)."""
    out = _Remarks()
    for statement in _statements(remarks):
        bare = statement[5:] if statement.startswith("alt. ") else statement
        head, _, rest = bare.partition(" ")
        if head in REMARK_NAME_KINDS and rest:
            out.names.append(ListedName(_unquote(rest), REMARK_NAME_KINDS[head]))
        elif head == "DOB" and rest:
            dates = parse_dob(rest)
            if dates is None:
                out.extra.setdefault("unparsed_dates_of_birth", []).append(rest)
            else:
                out.dates_of_birth.extend(dates)
        elif head == "POB" and rest:
            out.places_of_birth.append(rest)
            if code := country_code(rest.rsplit(",", 1)[-1]):
                out.countries.append(code)
        elif head == "nationality" and rest:
            out.nationalities.append(country_or_text(rest))
        elif head == "citizen" and rest:
            out.citizenships.append(country_or_text(rest))
        elif bare.startswith("Nationality of Registration "):
            flag = bare.removeprefix("Nationality of Registration ")
            out.extra.setdefault("registration_countries", []).append(country_or_text(flag))
        elif head == "Gender" and rest:
            out.extra["gender"] = rest
        elif bare.startswith("Linked To: "):
            out.extra.setdefault("linked_to", []).append(bare.removeprefix("Linked To: ").strip())
        elif identifier := _identifier(bare):
            out.identifiers.append(identifier)
    return out


def _rows(file: SourceFile, columns: int, label: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each row of a legacy OFAC CSV, checked for the expected shape."""
    data = file.data
    if not data.strip():
        raise ListFormatError(file.name, "is empty")
    if looks_like_markup(data):
        raise ListFormatError(file.name, f"is XML or HTML, not OFAC's legacy {label} CSV", line=1)
    body = data.rstrip(b"\r\n")
    if not body.endswith(END_OF_FILE):
        last_line = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        raise ListFormatError(
            file.name,
            "ends without OFAC's end-of-file marker (0x1A): the file is truncated",
            line=last_line,
        )
    text = body[: -len(END_OF_FILE)].decode("latin-1")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    previous_end = 0
    while True:
        start = previous_end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ListFormatError(file.name, f"malformed CSV ({exc})", line=start) from exc
        previous_end = reader.line_num
        if not row or row == [""]:
            continue
        if len(row) != columns:
            raise ListFormatError(
                file.name,
                f"expected {columns} columns (OFAC's {label} layout), found {len(row)}",
                line=start,
            )
        yield start, row


def _ent_num(file: SourceFile, line: int, value: str) -> str:
    value = value.strip()
    if not value.isdigit():
        raise ListFormatError(file.name, f"ent_num {value[:40]!r} is not a number", line=line)
    return str(int(value))


def _dedupe(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def parse_ofac_sdn(sdn: Source, alt: Source | None = None, add: Source | None = None) -> ParsedList:
    """Parse one OFAC SDN publication; alt.csv and add.csv are optional."""
    sdn_file = read_source(sdn, "sdn.csv")
    alt_file = read_source(alt, "alt.csv") if alt is not None else None
    add_file = read_source(add, "add.csv") if add is not None else None
    stats: Counter[str] = Counter()

    aliases: defaultdict[str, list[ListedName]] = defaultdict(list)
    if alt_file is not None:
        for line, row in _rows(alt_file, ALT_COLUMNS, "alt.csv"):
            ent_num = _ent_num(alt_file, line, row[0])
            alt_type, name, alt_remarks = _clean(row[2]).lower(), " ".join(_clean(row[3]).split()), _clean(row[4])
            if alt_type not in ALT_KINDS:
                raise ListFormatError(alt_file.name, f"unknown alias type {row[2].strip()[:40]!r}", line=line)
            if not name:
                raise ListFormatError(alt_file.name, "alias without a name", line=line)
            kind = ALT_KINDS[alt_type]
            if "weak" in alt_remarks.lower() and kind == NameKind.STRONG_ALIAS:
                kind = NameKind.WEAK_ALIAS
            aliases[ent_num].append(ListedName(name, kind))
            stats["alias_rows"] += 1

    addresses: defaultdict[str, list[Address]] = defaultdict(list)
    if add_file is not None:
        for line, row in _rows(add_file, ADD_COLUMNS, "add.csv"):
            ent_num = _ent_num(add_file, line, row[0])
            street, city, country_text = _clean(row[2]), _clean(row[3]), _clean(row[4])
            remarks = _clean(row[5])
            parts = [p for p in (street, city, country_text, remarks) if p]
            if not parts:
                continue
            addresses[ent_num].append(
                Address(text=", ".join(parts), city=city, country=country_or_text(country_text) if country_text else "")
            )
            stats["address_rows"] += 1

    entities: list[ListedEntity] = []
    seen: set[str] = set()
    for line, row in _rows(sdn_file, SDN_COLUMNS, "sdn.csv"):
        ent_num = _ent_num(sdn_file, line, row[0])
        if ent_num in seen:
            raise ListFormatError(sdn_file.name, f"ent_num {ent_num} appears twice", line=line)
        seen.add(ent_num)
        name = " ".join(_clean(row[1]).split())
        if not name:
            raise ListFormatError(sdn_file.name, f"entity {ent_num} has no name", line=line)
        sdn_type = _clean(row[2]).lower()
        if sdn_type not in SDN_TYPES:
            raise ListFormatError(sdn_file.name, f"unknown SDN_Type {row[2].strip()[:40]!r}", line=line)
        entity_type = SDN_TYPES[sdn_type]
        title, call_sign, vessel_type = _clean(row[4]), _clean(row[5]), _clean(row[6])
        tonnage, gross_tonnage, vessel_flag, vessel_owner = (_clean(v) for v in row[7:11])
        remarks_text = _clean(row[11])
        facts = parse_remarks(remarks_text)

        names = [ListedName(name, NameKind.PRIMARY)]
        for listed in [*aliases.pop(ent_num, []), *facts.names]:
            if listed.name and listed.name != name and listed not in names:
                names.append(listed)
        entity_addresses = tuple(addresses.pop(ent_num, []))
        identifiers = list(facts.identifiers)
        if call_sign:
            identifiers.append(Identifier(kind="Call Sign", value=call_sign))

        extra: dict[str, Any] = dict(facts.extra)
        for key, value in (
            ("title", title),
            ("vessel_type", vessel_type),
            ("tonnage", tonnage),
            ("gross_registered_tonnage", gross_tonnage),
            ("vessel_flag", vessel_flag),
            ("vessel_owner", vessel_owner),
        ):
            if value:
                extra[key] = value
        if facts.citizenships:
            extra["citizenships"] = list(_dedupe(facts.citizenships))

        nationalities = _dedupe([*facts.nationalities, *facts.citizenships])
        country_candidates = [
            *(c for c in nationalities if len(c) == 2),
            *(a.country for a in entity_addresses if len(a.country) == 2),
            *(i.country for i in identifiers if len(i.country) == 2),
            *facts.countries,
            *(c for c in extra.get("registration_countries", []) if len(c) == 2),
            country_code(vessel_flag) if vessel_flag else "",
        ]
        entities.append(
            ListedEntity(
                source=SOURCE,
                key=ent_num,
                entity_type=entity_type,
                names=tuple(names),
                dates_of_birth=_dedupe(facts.dates_of_birth),
                places_of_birth=_dedupe(facts.places_of_birth),
                nationalities=nationalities,
                countries=_dedupe(country_candidates),
                addresses=entity_addresses,
                identifiers=tuple(dict.fromkeys(identifiers)),
                programs=_split_programs(_clean(row[3])),
                remarks=remarks_text,
                extra=extra,
            )
        )
        stats[f"type_{entity_type}"] += 1
        stats["names"] += len(names)
        for listed in names:
            stats[f"names_{listed.kind}"] += 1
        if "unparsed_dates_of_birth" in extra:
            stats["unparsed_dates_of_birth"] += 1

    if not entities:
        raise ListFormatError(sdn_file.name, "lists no entities")
    # alt.csv / add.csv rows whose entity is not in sdn.csv: files of different publications.
    stats["orphan_alias_rows"] = sum(len(v) for v in aliases.values())
    stats["orphan_address_rows"] = sum(len(v) for v in addresses.values())
    stats["entities"] = len(entities)
    return ParsedList(
        source=SOURCE,
        published_at=None,  # the legacy CSV states no publication date
        entities=entities,
        files_sha256=files_sha256(
            [
                ("sdn.csv", sdn_file.data),
                ("alt.csv", alt_file.data if alt_file else None),
                ("add.csv", add_file.data if add_file else None),
            ]
        ),
        stats=dict(sorted(stats.items())),
    )
