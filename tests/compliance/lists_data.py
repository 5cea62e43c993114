"""Where the shared public list files are, and small hand-made list files for fast tests."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from fintech import PROJECT_DIR

SHARED_DATA = PROJECT_DIR.parent / "shared" / "data"
SANCTIONS = SHARED_DATA / "sanctions"
OFAC_2023 = SANCTIONS / "ofac" / "2023-12-28"
OFAC_2024 = SANCTIONS / "ofac" / "2024-05-03"
UN_XML = SANCTIONS / "un" / "consolidated.xml"

needs_shared_data = pytest.mark.skipif(
    not (OFAC_2023.is_dir() and OFAC_2024.is_dir() and UN_XML.is_file()),
    reason=f"the public sanctions list files are not at {SANCTIONS} (see the shared data README)",
)

EMPTY = "-0- "


def ofac_csv(rows: list[list[str]]) -> bytes:
    """Rows in OFAC's legacy CSV form: Latin-1, CRLF, ``-0-`` for empty, a final 0x1A line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([EMPTY if value == "" else value for value in row])
    return out.getvalue().encode("latin-1") + b"\x1a"


def sdn_row(ent_num: str, name: str, sdn_type: str = "", program: str = "SDGT", remarks: str = "") -> list[str]:
    return [ent_num, name, sdn_type, program, "", "", "", "", "", "", "", remarks]


def write_ofac(directory: Path, sdn: list[list[str]], alt: list[list[str]] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sdn.csv").write_bytes(ofac_csv(sdn))
    if alt is not None:
        (directory / "alt.csv").write_bytes(ofac_csv(alt))
    return directory


SMALL_SDN = [
    sdn_row("1", "DOE, John", "individual", remarks="DOB 07 Oct 1952; nationality Iran; a.k.a. 'JD'."),
    sdn_row("2", "ACME TRADING LLC", program="IRAN", remarks="SWIFT/BIC ACMEIRTH."),
    sdn_row("3", "ROE, Richard", "individual", remarks="DOB circa 1960; POB Havana, Cuba."),
]
SMALL_ALT = [["1", "10", "aka", "DOE, Johnny", ""]]

UN_SMALL_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<CONSOLIDATED_LIST dateGenerated="2026-02-27T00:00:09.554Z">
  <INDIVIDUALS>
    <INDIVIDUAL>
      <DATAID>1</DATAID>
      <FIRST_NAME>ALI</FIRST_NAME><SECOND_NAME>EXAMPLE</SECOND_NAME>
      <UN_LIST_TYPE>Al-Qaida</UN_LIST_TYPE>
      <REFERENCE_NUMBER>QDi.999</REFERENCE_NUMBER>
      <COMMENTS1>Test record.</COMMENTS1>
      <NATIONALITY><VALUE>Iran (Islamic Republic of)</VALUE></NATIONALITY>
      <INDIVIDUAL_ALIAS><QUALITY>Good</QUALITY><ALIAS_NAME>Ali Sample</ALIAS_NAME></INDIVIDUAL_ALIAS>
      <INDIVIDUAL_ALIAS><QUALITY>Low</QUALITY><ALIAS_NAME>Abu Test</ALIAS_NAME></INDIVIDUAL_ALIAS>
      <INDIVIDUAL_DATE_OF_BIRTH><TYPE_OF_DATE>BETWEEN</TYPE_OF_DATE><FROM_YEAR>1960</FROM_YEAR>
        <TO_YEAR>1962</TO_YEAR></INDIVIDUAL_DATE_OF_BIRTH>
      <INDIVIDUAL_DOCUMENT><TYPE_OF_DOCUMENT>Passport</TYPE_OF_DOCUMENT><NUMBER>X123</NUMBER>
        <ISSUING_COUNTRY>Iran (Islamic Republic of)</ISSUING_COUNTRY></INDIVIDUAL_DOCUMENT>
    </INDIVIDUAL>
  </INDIVIDUALS>
  <ENTITIES>
    <ENTITY>
      <DATAID>2</DATAID>
      <FIRST_NAME>EXAMPLE FRONT</FIRST_NAME>
      <UN_LIST_TYPE>Al-Qaida</UN_LIST_TYPE>
      <REFERENCE_NUMBER>QDe.999</REFERENCE_NUMBER>
      <ENTITY_ALIAS><QUALITY>f.k.a.</QUALITY><ALIAS_NAME>OLD FRONT</ALIAS_NAME></ENTITY_ALIAS>
      <ENTITY_ADDRESS><CITY>Kabul</CITY><COUNTRY>Afghanistan</COUNTRY></ENTITY_ADDRESS>
    </ENTITY>
  </ENTITIES>
</CONSOLIDATED_LIST>
"""
