"""List parsers: the real OFAC and UN publications, and files they must refuse."""

from __future__ import annotations

import io

import pytest

from compliance.lists.countries import country_code
from compliance.lists.entities import EntityType, Identifier, ListedEntity, ListedName, NameKind
from compliance.lists.ofac import parse_dob, parse_ofac_sdn
from compliance.lists.parsing import ListFormatError
from compliance.lists.un import parse_un_consolidated
from tests.compliance.lists_data import (
    OFAC_2023,
    OFAC_2024,
    SMALL_SDN,
    UN_SMALL_XML,
    UN_XML,
    needs_shared_data,
    ofac_csv,
    sdn_row,
)


def named(data: bytes, name: str) -> io.BytesIO:
    buffer = io.BytesIO(data)
    buffer.name = name
    return buffer


@pytest.fixture(scope="module")
def ofac_2023():
    return parse_ofac_sdn(OFAC_2023 / "sdn.csv", OFAC_2023 / "alt.csv", OFAC_2023 / "add.csv")


@pytest.fixture(scope="module")
def ofac_2023_by_key(ofac_2023) -> dict[str, ListedEntity]:
    return {entity.key: entity for entity in ofac_2023.entities}


@pytest.fixture(scope="module")
def un_list():
    return parse_un_consolidated(UN_XML)


@pytest.fixture(scope="module")
def un_by_key(un_list) -> dict[str, ListedEntity]:
    return {entity.key: entity for entity in un_list.entities}


# --------------------------------------------------------------------------- OFAC, real files


@needs_shared_data
def test_ofac_counts_match_the_publication(ofac_2023):
    assert ofac_2023.source == "ofac_sdn"
    assert len(ofac_2023.entities) == 13_821
    assert ofac_2023.stats["alias_rows"] == 17_091
    # add.csv has 18,990 rows; 2,652 of them state nothing (every column "-0-").
    assert ofac_2023.stats["address_rows"] == 18_990 - 2_652
    assert ofac_2023.stats["orphan_alias_rows"] == ofac_2023.stats["orphan_address_rows"] == 0
    types = {t: ofac_2023.stats[f"type_{t}"] for t in ("individual", "entity", "vessel", "aircraft")}
    assert types == {"individual": 6_646, "entity": 6_033, "vessel": 764, "aircraft": 378}
    assert len(parse_ofac_sdn(OFAC_2024 / "sdn.csv").entities) == 14_965


@needs_shared_data
def test_ofac_weak_aliases_come_from_the_remarks(ofac_2023_by_key):
    bank = ofac_2023_by_key["306"]
    assert bank.entity_type == EntityType.ENTITY
    assert bank.names == (
        ListedName("BANCO NACIONAL DE CUBA", NameKind.PRIMARY),
        ListedName("NATIONAL BANK OF CUBA", NameKind.STRONG_ALIAS),
        ListedName("BNC", NameKind.WEAK_ALIAS),
    )
    assert bank.programs == ("CUBA",)
    assert [a.country for a in bank.addresses] == ["CH", "ES", "JP", "PA"]
    assert bank.addresses[0].text == "Zweierstrasse 35, Zurich CH-8022, Switzerland"
    assert bank.remarks == "a.k.a. 'BNC'."


@needs_shared_data
def test_ofac_individual_facts_from_the_remarks(ofac_2023_by_key):
    person = ofac_2023_by_key["19909"]
    assert person.entity_type == EntityType.INDIVIDUAL
    assert person.primary_name == "MUNOZ HOYOS, German"  # as OFAC writes it: "LAST, First"
    assert person.dates_of_birth == ("1965-01-26",)
    assert person.places_of_birth == ("Manizales, Caldas, Colombia",)
    assert person.nationalities == ("CO", "MX")  # nationality Colombia; citizen Colombia; alt. citizen Mexico
    assert Identifier("Passport", "A0630659", "CO") in person.identifiers
    assert Identifier("Passport", "G15527939", "MX") in person.identifiers
    assert Identifier("Cedula No.", "10268158", "CO") in person.identifiers
    assert "AVICAL S.A." in person.extra["linked_to"]
    assert person.remarks.startswith("DOB 26 Jan 1965; POB Manizales")

    boyko = ofac_2023_by_key["43543"]
    assert ListedName("BOYKO, Sveta", NameKind.WEAK_ALIAS) in boyko.names
    assert boyko.extra["gender"] == "Female"
    assert boyko.nationalities == ("RU",)


@needs_shared_data
def test_ofac_dates_of_birth_circa_and_ranges(ofac_2023_by_key):
    assert ofac_2023_by_key["7782"].dates_of_birth == ("1951",)  # DOB circa 1951
    assert ofac_2023_by_key["15496"].dates_of_birth[:2] == ("1929", "1930")  # DOB 1929 to 1930


@needs_shared_data
def test_ofac_former_and_new_names(ofac_2023_by_key):
    assert ListedName("IRAN OVERSEAS INVESTMENT BANK PLC", NameKind.FORMER_NAME) in ofac_2023_by_key["4642"].names
    # "nka" is the entity's name now: a strong alias.
    assert ListedName("NUEVO CONTINENTE S.A.", NameKind.STRONG_ALIAS) in ofac_2023_by_key["8244"].names


@needs_shared_data
def test_ofac_vessels_and_bank_codes(ofac_2023_by_key):
    vessel = ofac_2023_by_key["4243"]
    assert vessel.entity_type == EntityType.VESSEL
    assert Identifier("IMO", "7406784") in vessel.identifiers
    assert ListedName("SAND SWAN", NameKind.FORMER_NAME) in vessel.names  # f.k.a. 'SAND SWAN' in the remarks
    assert vessel.extra["vessel_flag"] == "Panama" and "PA" in vessel.countries
    tug = ofac_2023_by_key["4249"]
    assert Identifier("Call Sign", "CL2059") in tug.identifiers
    assert Identifier("SWIFT/BIC", "HAVIGB2L") in ofac_2023_by_key["906"].identifiers


@needs_shared_data
def test_ofac_entities_round_trip_through_json(ofac_2023):
    for entity in ofac_2023.entities[:500]:
        assert ListedEntity.from_json(entity.to_json()) == entity


# --------------------------------------------------------------------------- UN, real file


@needs_shared_data
def test_un_counts_match_the_publication(un_list):
    assert un_list.source == "un"
    assert un_list.stats["type_individual"] == 730
    assert un_list.stats["type_entity"] == 273
    assert un_list.published_at is not None and un_list.published_at.isoformat().startswith("2026-02-27T00:00:09")


@needs_shared_data
def test_un_individual(un_by_key):
    saddam = un_by_key["IQi.001"]
    assert saddam.primary_name == "SADDAM HUSSEIN AL-TIKRITI"
    assert ListedName("صدام حسين التكريتي", NameKind.STRONG_ALIAS) in saddam.names  # original script
    assert ListedName("Abu Ali", NameKind.WEAK_ALIAS) in saddam.names  # QUALITY Low
    assert saddam.dates_of_birth == ("1937-04-28",)
    assert saddam.places_of_birth == ("al-Awja, near Tikrit, Iraq",)
    assert saddam.nationalities == ("IQ",)
    assert saddam.programs == ("Iraq",)

    paek = un_by_key["KPi.006"]
    assert paek.nationalities == ("KP",)  # "Democratic People's Republic of Korea"
    assert Identifier("Passport", "381420754") in paek.identifiers
    assert ListedName("Pak Chang-Ho", NameKind.STRONG_ALIAS) in paek.names  # QUALITY Good

    adam = un_by_key["CFi.002"]
    assert {"1969", "1970", "1971"} <= set(adam.dates_of_birth)
    assert Identifier("Passport", "D00001184", "CF") in adam.identifiers


@needs_shared_data
def test_un_entity(un_by_key):
    adf = un_by_key["CDe.001"]
    assert adf.entity_type == EntityType.ENTITY
    assert ListedName("Allied Democratic Forces", NameKind.STRONG_ALIAS) in adf.names
    assert ListedName("NALU", NameKind.FORMER_NAME) in adf.names
    assert adf.addresses[0].country == "CD"
    assert adf.remarks.startswith("ADF founder and leader")


def test_un_small_file():
    parsed = parse_un_consolidated(named(UN_SMALL_XML, "consolidated.xml"))
    person, front = parsed.entities
    assert person.dates_of_birth == ("1960", "1961", "1962")
    assert person.nationalities == ("IR",)
    assert person.identifiers == (Identifier("Passport", "X123", "IR"),)
    assert [n.kind for n in person.names] == [NameKind.PRIMARY, NameKind.STRONG_ALIAS, NameKind.WEAK_ALIAS]
    assert front.names[1] == ListedName("OLD FRONT", NameKind.FORMER_NAME)
    assert front.countries == ("AF",)


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("07 Oct 1952", ["1952-10-07"]),
        ("Oct 1952", ["1952-10"]),
        ("1952", ["1952"]),
        ("circa 1960", ["1960"]),
        ("1960 to 1962", ["1960", "1961", "1962"]),
        ("01 Jan 1960 to 31 Dec 1961", ["1960", "1961"]),
        ("15 Mar 1970 to 15 Mar 1970", ["1970-03-15"]),
        ("Nov. 1973", ["1973-11"]),
        ("sometime", None),
        ("1900 to 1990", None),  # too wide to expand
    ],
)
def test_parse_dob(text, expected):
    assert parse_dob(text) == expected


@pytest.mark.parametrize(
    ("wording", "code"),
    [
        ("Korea, North", "KP"),
        ("Korea, South", "KR"),
        ("Iran", "IR"),
        ("Iran (Islamic Republic of)", "IR"),
        ("Russia", "RU"),
        ("Burma", "MM"),
        ("Syria", "SY"),
        ("Venezuela", "VE"),
        ("United Kingdom of Great Britain and Northern Ireland", "GB"),
        ("Türkiye", "TR"),
        ("Germany", "DE"),
        ("na", ""),  # "not available", not Namibia
        ("Atlantis", ""),
    ],
)
def test_country_wordings(wording, code):
    assert country_code(wording) == code


# --------------------------------------------------------------------------- refused files


def test_ofac_refuses_xml_and_html():
    with pytest.raises(ListFormatError, match=r"sdn\.csv, line 1: is XML or HTML"):
        parse_ofac_sdn(named(UN_SMALL_XML, "sdn.csv"))
    with pytest.raises(ListFormatError, match="is XML or HTML"):
        parse_ofac_sdn(named(b"<!DOCTYPE html><html><body>Maintenance</body></html>", "sdn.csv"))


def test_ofac_refuses_a_file_with_the_wrong_columns():
    alt_as_sdn = ofac_csv([["1", "10", "aka", "DOE, Johnny", ""]])
    with pytest.raises(ListFormatError, match=r"sdn\.csv, line 1: expected 12 columns .* found 5"):
        parse_ofac_sdn(named(alt_as_sdn, "sdn.csv"))


def test_ofac_refuses_a_truncated_file():
    data = ofac_csv(SMALL_SDN)
    with pytest.raises(ListFormatError, match=r"sdn\.csv, line 3: .*truncated"):
        parse_ofac_sdn(named(data[: len(data) - 30], "sdn.csv"))


def test_ofac_names_the_malformed_line():
    rows = [*SMALL_SDN[:2], ["x", "y"], SMALL_SDN[2]]
    with pytest.raises(ListFormatError, match=r"sdn\.csv, line 3: expected 12 columns"):
        parse_ofac_sdn(named(ofac_csv(rows), "sdn.csv"))
    bad_number = [*SMALL_SDN, sdn_row("4x", "SOMEONE")]
    with pytest.raises(ListFormatError, match=r"line 4: ent_num '4x' is not a number"):
        parse_ofac_sdn(named(ofac_csv(bad_number), "sdn.csv"))
    with pytest.raises(ListFormatError, match=r"line 2: unknown SDN_Type 'company'"):
        parse_ofac_sdn(named(ofac_csv([SMALL_SDN[0], sdn_row("9", "X", "company")]), "sdn.csv"))


@needs_shared_data
def test_ofac_real_file_truncated_or_corrupted(tmp_path):
    data = (OFAC_2023 / "sdn.csv").read_bytes()
    truncated = data[: len(data) // 2]
    lines = truncated.count(b"\n") + 1
    with pytest.raises(ListFormatError) as caught:
        parse_ofac_sdn(named(truncated, "sdn.csv"))
    assert caught.value.line == lines and "truncated" in str(caught.value)

    corrupted = data.split(b"\r\n")
    corrupted[4999] = b'99999,"BROKEN ROW'  # an opening quote never closed
    path = tmp_path / "sdn.csv"
    path.write_bytes(b"\r\n".join(corrupted))
    with pytest.raises(ListFormatError, match=r"^sdn\.csv, line 5000: "):
        parse_ofac_sdn(path)


def test_un_refuses_csv_and_foreign_xml():
    with pytest.raises(ListFormatError, match=r"consolidated\.xml, line 1: is not XML"):
        parse_un_consolidated(named(ofac_csv(SMALL_SDN), "consolidated.xml"))
    with pytest.raises(ListFormatError, match=r"root element is <sdnList>"):
        parse_un_consolidated(named(b"<?xml version='1.0'?><sdnList><x/></sdnList>", "consolidated.xml"))


def test_un_names_the_malformed_line():
    broken = UN_SMALL_XML.replace(b"</INDIVIDUAL>", b"</INDIVIDUA>")
    with pytest.raises(ListFormatError) as caught:
        parse_un_consolidated(named(broken, "consolidated.xml"))
    assert caught.value.line == 17  # the closing tag that does not match
    assert str(caught.value) == "consolidated.xml, line 17: malformed XML (mismatched tag, column 6)"
    missing_key = UN_SMALL_XML.replace(b"<REFERENCE_NUMBER>QDe.999</REFERENCE_NUMBER>", b"")
    with pytest.raises(ListFormatError, match=r"ENTITY #1 \(DATAID 2\): has no REFERENCE_NUMBER"):
        parse_un_consolidated(named(missing_key, "consolidated.xml"))


def test_un_refuses_entities_and_dtds():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        b"<CONSOLIDATED_LIST>&lol2;</CONSOLIDATED_LIST>"
    )
    with pytest.raises(ListFormatError, match="refused"):
        parse_un_consolidated(named(bomb, "consolidated.xml"))
    external = b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><CONSOLIDATED_LIST/>'
    with pytest.raises(ListFormatError, match="refused"):
        parse_un_consolidated(named(external, "consolidated.xml"))
