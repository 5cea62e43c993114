"""The UN Security Council consolidated sanctions list (XML, ``CONSOLIDATED_LIST``).

``INDIVIDUALS/INDIVIDUAL`` and ``ENTITIES/ENTITY`` records, keyed by ``REFERENCE_NUMBER``
("QDi.001"). The name is FIRST_NAME .. FOURTH_NAME joined; aliases carry a QUALITY: "Good" (a
strong alias), "Low" (weak), and for entities "a.k.a." / "f.k.a.". NAME_ORIGINAL_SCRIPT is a
strong alias. The file is parsed with DTDs, entities and external references refused
(``defusedxml``), so a hostile file cannot expand or fetch anything.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from .countries import country_code, country_or_text
from .entities import Address, EntityType, Identifier, ListedEntity, ListedName, NameKind
from .ofac import parse_dob
from .parsing import ListFormatError, ParsedList, Source, files_sha256, looks_like_markup, read_source

SOURCE = "un"
ROOT = "CONSOLIDATED_LIST"
NAME_PARTS = ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME")
ALIAS_QUALITY = {
    "good": NameKind.STRONG_ALIAS,
    "a.k.a.": NameKind.STRONG_ALIAS,
    "": NameKind.STRONG_ALIAS,
    "low": NameKind.WEAK_ALIAS,
    "f.k.a.": NameKind.FORMER_NAME,
}
DOCUMENT_KINDS = {
    "numéro de passeport": "Passport",
    "número de pasaporte": "Passport",
}
# Placeholders the list uses where it has no value.
NO_VALUE = {"", "na", "n/a", "none"}
MAX_YEAR_RANGE = 20


def _text(element: Element | None) -> str:
    if element is None or element.text is None:
        return ""
    return " ".join(element.text.split())


def _child(element: Element, tag: str) -> str:
    return _text(element.find(tag))


def _values(element: Element, tag: str) -> list[str]:
    return [value for container in element.findall(tag) for v in container.findall("VALUE") if (value := _text(v))]


def _dates_of_birth(record: Element, extra: dict[str, Any]) -> list[str]:
    dates: list[str] = []
    for dob in record.iter("INDIVIDUAL_DATE_OF_BIRTH"):
        date, year = _child(dob, "DATE"), _child(dob, "YEAR")
        from_year, to_year = _child(dob, "FROM_YEAR"), _child(dob, "TO_YEAR")
        note = _child(dob, "NOTE")
        if date:
            dates.append(date[:10])
        elif year:
            dates.append(year)
        elif from_year.isdigit() and to_year.isdigit() and 0 <= int(to_year) - int(from_year) <= MAX_YEAR_RANGE:
            dates.extend(str(y) for y in range(int(from_year), int(to_year) + 1))
        elif note and (parsed := parse_dob(note)):
            dates.extend(parsed)
        elif note:
            extra.setdefault("unparsed_dates_of_birth", []).append(note)
    for alias in record.findall("INDIVIDUAL_ALIAS"):
        # The date of birth an alias was used with (a false identity's papers): screened as well.
        if alias_date := _child(alias, "DATE_OF_BIRTH"):
            parsed = [alias_date[:10]] if alias_date[:4].isdigit() else parse_dob(alias_date)
            if parsed:
                dates.extend(parsed)
            else:
                extra.setdefault("unparsed_dates_of_birth", []).append(alias_date)
    return dates


def _place(element: Element) -> str:
    parts = [_child(element, tag) for tag in ("STREET", "CITY", "STATE_PROVINCE", "ZIP_CODE", "COUNTRY")]
    return ", ".join(p for p in parts if p)


def _entity(record: Element, entity_type: EntityType, file_name: str, position: str) -> ListedEntity:
    key = _child(record, "REFERENCE_NUMBER")
    if not key:
        raise ListFormatError(file_name, "has no REFERENCE_NUMBER", element=position)
    primary = " ".join(part for tag in NAME_PARTS if (part := _child(record, tag)))
    if not primary:
        raise ListFormatError(file_name, f"{key} has no name", element=position)
    names = [ListedName(primary, NameKind.PRIMARY)]
    if original := _child(record, "NAME_ORIGINAL_SCRIPT"):
        names.append(ListedName(original, NameKind.STRONG_ALIAS))
    alias_tag = "INDIVIDUAL_ALIAS" if entity_type == EntityType.INDIVIDUAL else "ENTITY_ALIAS"
    for alias in record.findall(alias_tag):
        alias_name = _child(alias, "ALIAS_NAME")
        if not alias_name:
            continue
        quality = _child(alias, "QUALITY").lower()
        if quality not in ALIAS_QUALITY:
            raise ListFormatError(file_name, f"{key}: unknown alias QUALITY {quality!r}", element=position)
        listed = ListedName(alias_name, ALIAS_QUALITY[quality])
        if listed not in names:
            names.append(listed)

    extra: dict[str, Any] = {}
    for tag, label in (("DATAID", "dataid"), ("LISTED_ON", "listed_on"), ("GENDER", "gender")):
        if value := _child(record, tag):
            extra[label] = value
    for tag, label in (("TITLE", "titles"), ("DESIGNATION", "designations")):
        if values := _values(record, tag):
            extra[label] = values

    places_of_birth: list[str] = []
    countries: list[str] = []
    for place in record.findall("INDIVIDUAL_PLACE_OF_BIRTH"):
        if text := _place(place):
            places_of_birth.append(text)
            if code := country_code(_child(place, "COUNTRY")):
                countries.append(code)

    nationalities = [country_or_text(v) for v in _values(record, "NATIONALITY") if v.lower() not in NO_VALUE]

    addresses: list[Address] = []
    address_tag = "INDIVIDUAL_ADDRESS" if entity_type == EntityType.INDIVIDUAL else "ENTITY_ADDRESS"
    for address in record.findall(address_tag):
        text = _place(address)
        if note := _child(address, "NOTE"):
            text = f"{text} ({note})" if text else note
        if not text:
            continue
        country = country_or_text(country_text) if (country_text := _child(address, "COUNTRY")) else ""
        addresses.append(Address(text=text, city=_child(address, "CITY"), country=country))

    identifiers: list[Identifier] = []
    for document in record.findall("INDIVIDUAL_DOCUMENT"):
        number = _child(document, "NUMBER")
        kind = _child(document, "TYPE_OF_DOCUMENT")
        if not number:
            if note := _child(document, "NOTE"):
                extra.setdefault("document_notes", []).append(f"{kind}: {note}" if kind else note)
            continue
        issuer = _child(document, "ISSUING_COUNTRY") or _child(document, "COUNTRY_OF_ISSUE")
        identifiers.append(
            Identifier(
                kind=DOCUMENT_KINDS.get(kind.lower(), kind) or "Document",
                value=number,
                country=country_or_text(issuer) if issuer else "",
            )
        )

    dates_of_birth = _dates_of_birth(record, extra)
    country_candidates = [
        *(c for c in nationalities if len(c) == 2),
        *countries,
        *(a.country for a in addresses if len(a.country) == 2),
        *(i.country for i in identifiers if len(i.country) == 2),
    ]
    return ListedEntity(
        source=SOURCE,
        key=key,
        entity_type=entity_type,
        names=tuple(names),
        dates_of_birth=tuple(dict.fromkeys(dates_of_birth)),
        places_of_birth=tuple(dict.fromkeys(places_of_birth)),
        nationalities=tuple(dict.fromkeys(nationalities)),
        countries=tuple(dict.fromkeys(country_candidates)),
        addresses=tuple(dict.fromkeys(addresses)),
        identifiers=tuple(dict.fromkeys(identifiers)),
        programs=tuple(p for p in [_child(record, "UN_LIST_TYPE")] if p),
        remarks=_child(record, "COMMENTS1"),
        extra=extra,
    )


def _published_at(root: Element, file_name: str) -> datetime | None:
    generated = root.get("dateGenerated", "")
    if not generated:
        return None
    try:
        return datetime.fromisoformat(generated.replace("Z", "+00:00"))
    except ValueError as exc:
        message = f"dateGenerated {generated[:40]!r} is not a date"
        raise ListFormatError(file_name, message, element=ROOT) from exc


def parse_un_consolidated(xml: Source) -> ParsedList:
    """Parse the UN consolidated list XML (a path or binary file object)."""
    file = read_source(xml, "consolidated.xml")
    if not file.data.strip():
        raise ListFormatError(file.name, "is empty")
    if not looks_like_markup(file.data):
        raise ListFormatError(file.name, "is not XML (expected the UN consolidated list)", line=1)
    try:
        root = fromstring(file.data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ListFormatError(file.name, f"refused: {exc}") from exc
    except ParseError as exc:
        line, column = getattr(exc, "position", (None, None))
        reason = str(exc).split(":", 1)[0]
        raise ListFormatError(file.name, f"malformed XML ({reason}, column {column})", line=line) from exc
    if root.tag != ROOT:
        raise ListFormatError(file.name, f"root element is <{root.tag}>, expected <{ROOT}>", element=root.tag)

    entities: list[ListedEntity] = []
    stats: Counter[str] = Counter()
    seen: set[str] = set()
    for section, tag, entity_type in (
        ("INDIVIDUALS", "INDIVIDUAL", EntityType.INDIVIDUAL),
        ("ENTITIES", "ENTITY", EntityType.ENTITY),
    ):
        for index, record in enumerate(root.findall(f"{section}/{tag}"), start=1):
            dataid = _child(record, "DATAID")
            position = f"{tag} #{index}" + (f" (DATAID {dataid})" if dataid else "")
            entity = _entity(record, entity_type, file.name, position)
            if entity.key in seen:
                raise ListFormatError(file.name, f"REFERENCE_NUMBER {entity.key} appears twice", element=position)
            seen.add(entity.key)
            entities.append(entity)
            stats[f"type_{entity_type}"] += 1
            stats["names"] += len(entity.names)
            for listed in entity.names:
                stats[f"names_{listed.kind}"] += 1
    if not entities:
        raise ListFormatError(file.name, "lists no individuals or entities", element=ROOT)
    stats["entities"] = len(entities)
    return ParsedList(
        source=SOURCE,
        published_at=_published_at(root, file.name),
        entities=entities,
        files_sha256=files_sha256([("consolidated.xml", file.data)]),
        stats=dict(sorted(stats.items())),
    )
