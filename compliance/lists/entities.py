"""The plain form of a sanctions-list entity, shared by the list loaders and the matcher.

Parsers (``compliance.lists.ofac``, ``compliance.lists.un``) produce ``ListedEntity`` values; the
loader stores each one as JSON on a ``ListEntry`` row with its content hash; the matcher
(``compliance.screening``) indexes them. Nothing here touches the database.

Dates of birth are ISO partial dates: ``"1952"``, ``"1952-10"`` or ``"1952-10-07"``; a range
given by a list ("1960 to 1962") becomes one value per year. Countries and nationalities are
ISO 3166-1 alpha-2 codes where the list's wording can be resolved, else the list's own text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EntityType(StrEnum):
    INDIVIDUAL = "individual"
    ENTITY = "entity"
    VESSEL = "vessel"
    AIRCRAFT = "aircraft"


class NameKind(StrEnum):
    PRIMARY = "primary"
    STRONG_ALIAS = "strong_alias"  # OFAC "a.k.a." strong, UN "Good quality" alias
    WEAK_ALIAS = "weak_alias"  # OFAC weak a.k.a., UN "Low quality" alias
    FORMER_NAME = "former_name"  # OFAC "f.k.a.", UN former names


@dataclass(frozen=True, slots=True)
class ListedName:
    name: str
    kind: NameKind


@dataclass(frozen=True, slots=True)
class Identifier:
    kind: str  # "Passport", "National ID No.", "IMO", "SWIFT/BIC", "Tax ID No." ...
    value: str
    country: str = ""


@dataclass(frozen=True, slots=True)
class Address:
    text: str  # the address as one line, as the list gives it
    city: str = ""
    country: str = ""  # ISO alpha-2 where resolvable


@dataclass(frozen=True, slots=True)
class ListedEntity:
    source: str  # the list: "ofac_sdn", "un"
    key: str  # the list's own id of the entity ("36", "QDi.001")
    entity_type: EntityType
    names: tuple[ListedName, ...]
    dates_of_birth: tuple[str, ...] = ()
    places_of_birth: tuple[str, ...] = ()
    nationalities: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()  # every country linked to the entity (addresses, citizenship...)
    addresses: tuple[Address, ...] = ()
    identifiers: tuple[Identifier, ...] = ()
    programs: tuple[str, ...] = ()
    remarks: str = ""
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    @property
    def primary_name(self) -> str:
        for name in self.names:
            if name.kind == NameKind.PRIMARY:
                return name.name
        return self.names[0].name if self.names else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "key": self.key,
            "entity_type": str(self.entity_type),
            "names": [{"name": n.name, "kind": str(n.kind)} for n in self.names],
            "dates_of_birth": list(self.dates_of_birth),
            "places_of_birth": list(self.places_of_birth),
            "nationalities": list(self.nationalities),
            "countries": list(self.countries),
            "addresses": [{"text": a.text, "city": a.city, "country": a.country} for a in self.addresses],
            "identifiers": [{"kind": i.kind, "value": i.value, "country": i.country} for i in self.identifiers],
            "programs": list(self.programs),
            "remarks": self.remarks,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ListedEntity:
        return cls(
            source=data["source"],
            key=data["key"],
            entity_type=EntityType(data["entity_type"]),
            names=tuple(ListedName(n["name"], NameKind(n["kind"])) for n in data["names"]),
            dates_of_birth=tuple(data.get("dates_of_birth", ())),
            places_of_birth=tuple(data.get("places_of_birth", ())),
            nationalities=tuple(data.get("nationalities", ())),
            countries=tuple(data.get("countries", ())),
            addresses=tuple(Address(**a) for a in data.get("addresses", ())),
            identifiers=tuple(Identifier(**i) for i in data.get("identifiers", ())),
            programs=tuple(data.get("programs", ())),
            remarks=data.get("remarks", ""),
            extra=data.get("extra", {}),
        )

    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON: changes exactly when the entity's content changes."""
        canonical = json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()
