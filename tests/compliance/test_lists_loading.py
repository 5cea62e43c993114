"""Loading list versions: deltas, no-op reloads, failures that change nothing, the refresh task,
the command and the admin pages."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse

from compliance.lists.entities import NameKind
from compliance.lists.selectors import active_versions, live_entities, version_delta
from compliance.lists.services import ListLoadError, list_load, list_load_with_result
from compliance.lists.signals import list_version_activated
from compliance.models import ListChangeKind, ListEntry, ListEntryChange, ListVersion, ListVersionStatus
from compliance.tasks import refresh_sanctions_lists
from fintech.core.audit import SystemActor
from fintech.core.models import AuditEvent
from tests.compliance.lists_data import (
    OFAC_2023,
    OFAC_2024,
    SMALL_ALT,
    SMALL_SDN,
    UN_SMALL_XML,
    UN_XML,
    needs_shared_data,
    ofac_csv,
    sdn_row,
    write_ofac,
)
from tests.factories import StaffUserFactory
from tests.utils import login_with_mfa

pytestmark = pytest.mark.django_db
ACTOR = SystemActor("test")
Status = ListVersionStatus


@pytest.fixture(autouse=True)
def without_rescreening():
    """Rescreening subscribes to activations; these tests watch the loader alone."""
    disconnected = list_version_activated.disconnect(dispatch_uid="compliance.rescreen_on_activation")
    yield
    if disconnected:
        from compliance.hooks import list_version_activated as rescreen

        list_version_activated.connect(rescreen, dispatch_uid="compliance.rescreen_on_activation")


def entries_snapshot(source: str) -> list[tuple]:
    return list(
        ListEntry.objects.filter(source=source)
        .order_by("key")
        .values_list("key", "content_hash", "changed_version_id", "removed_in_id")
    )


def sdn_only(tmp_path: Path, publication: Path) -> Path:
    """A directory holding only a publication's sdn.csv (the 2024 copy has no alt.csv/add.csv)."""
    directory = tmp_path / publication.name
    directory.mkdir()
    (directory / "sdn.csv").write_bytes((publication / "sdn.csv").read_bytes())
    return directory


# --------------------------------------------------------------------------- real publications


@needs_shared_data
def test_later_ofac_publication_gives_the_delta(tmp_path):
    # Like with like: the 2024-05-03 copy is sdn.csv alone, so both publications load without
    # alt.csv/add.csv (with them, every entity with an alias or address would count as changed).
    first = list_load(source="ofac_sdn", origin=str(sdn_only(tmp_path, OFAC_2023)), actor=ACTOR)
    assert (first.status, first.entity_count, first.added_count, first.changed_count, first.removed_count) == (
        Status.ACTIVE,
        13_821,
        13_821,
        0,
        0,
    )

    second = list_load(source="ofac_sdn", origin=str(sdn_only(tmp_path, OFAC_2024)), actor=ACTOR)
    first.refresh_from_db()
    assert first.status == Status.SUPERSEDED and second.status == Status.ACTIVE
    # The shared data README states +1,256 / -112; 48 entities listed by both changed their row.
    assert (second.entity_count, second.added_count, second.removed_count, second.changed_count) == (
        14_965,
        1_256,
        112,
        48,
    )
    delta = version_delta(second)
    assert {kind: delta.filter(kind=kind).count() for kind in ListChangeKind.values} == {
        "added": 1_256,
        "changed": 48,
        "removed": 112,
    }
    removed = delta.filter(kind=ListChangeKind.REMOVED).first()
    assert removed.entry.removed_in_id == second.pk
    assert removed.previous_data["key"] == removed.entry.key and removed.new_hash == ""
    changed = delta.filter(kind=ListChangeKind.CHANGED).first()
    assert changed.previous_data != changed.entry.data and changed.previous_hash != changed.new_hash
    assert ListEntry.objects.filter(source="ofac_sdn", removed_in__isnull=True).count() == 14_965
    assert sum(1 for _ in live_entities(["ofac_sdn"])) == 14_965

    event = AuditEvent.objects.filter(action="compliance.list_loaded", target_id=str(second.pk)).get()
    assert event.details["added"] == 1_256 and event.details["previous_version_id"] == first.pk

    # The same files again: nothing new is recorded.
    again = list_load_with_result(source="ofac_sdn", origin=str(tmp_path / OFAC_2024.name), actor=ACTOR)
    assert again.unchanged and again.version == second
    assert ListVersion.objects.filter(source="ofac_sdn").count() == 2


@needs_shared_data
def test_full_ofac_and_un_lists_are_live():
    ofac = list_load(source="ofac_sdn", origin=str(OFAC_2023), actor=ACTOR)
    un = list_load(source="un", origin=str(UN_XML), actor=ACTOR)
    assert (ofac.entity_count, ofac.name_count) == (13_821, 34_280)
    assert (un.entity_count, un.stats["type_individual"], un.stats["type_entity"]) == (1_003, 730, 273)
    assert un.published_at is not None and un.published_at.year == 2026
    assert active_versions() == {"ofac_sdn": ofac, "un": un}

    bank = ListEntry.objects.get(source="ofac_sdn", key="306")
    assert {"name": "BNC", "kind": "weak_alias"} in bank.data["names"]
    by_source: dict[str, int] = {}
    for entity in live_entities():
        by_source[entity.source] = by_source.get(entity.source, 0) + 1
    assert by_source == {"ofac_sdn": 13_821, "un": 1_003}
    saddam = next(e for e in live_entities(["un"]) if e.key == "IQi.001")
    assert saddam.names[0].kind == NameKind.PRIMARY and saddam.dates_of_birth == ("1937-04-28",)


# --------------------------------------------------------------------------- deltas on small files


def test_changed_removed_and_listed_again(tmp_path):
    v1 = list_load(source="ofac_sdn", origin=str(write_ofac(tmp_path / "v1", SMALL_SDN, SMALL_ALT)), actor=ACTOR)
    assert (v1.entity_count, v1.added_count, v1.name_count) == (3, 3, 5)

    renamed = sdn_row("1", "DOE, John", "individual", remarks="DOB 07 Oct 1952; nationality Iraq.")
    v2_rows = [renamed, SMALL_SDN[1], sdn_row("4", "NEW FRONT COMPANY")]  # 3 dropped, 4 new
    v2 = list_load(source="ofac_sdn", origin=str(write_ofac(tmp_path / "v2", v2_rows, SMALL_ALT)), actor=ACTOR)
    assert (v2.added_count, v2.changed_count, v2.removed_count) == (1, 1, 1)
    changes = {c.entry.key: c for c in version_delta(v2)}
    assert {key: c.kind for key, c in changes.items()} == {"4": "added", "1": "changed", "3": "removed"}
    assert changes["1"].previous_data["nationalities"] == ["IR"]
    assert ListEntry.objects.get(key="1").data["nationalities"] == ["IQ"]
    assert ListEntry.objects.get(key="3").removed_in == v2
    assert ListEntry.objects.get(key="2").changed_version == v1  # unchanged entries keep their version

    v3_rows = [renamed, SMALL_SDN[1], SMALL_SDN[2], sdn_row("4", "NEW FRONT COMPANY")]
    v3 = list_load(source="ofac_sdn", origin=str(write_ofac(tmp_path / "v3", v3_rows, SMALL_ALT)), actor=ACTOR)
    assert (v3.added_count, v3.changed_count, v3.removed_count) == (1, 0, 0)
    readded = version_delta(v3).get()
    assert (readded.entry.key, readded.kind) == ("3", ListChangeKind.ADDED)
    entry = ListEntry.objects.get(key="3")
    assert entry.removed_in is None and entry.changed_version == v3 and entry.first_version == v1
    statuses = list(ListVersion.objects.order_by("id").values_list("status", flat=True))
    assert statuses == [Status.SUPERSEDED, Status.SUPERSEDED, Status.ACTIVE]


def test_reloading_the_same_files_is_a_no_op(tmp_path):
    origin = str(write_ofac(tmp_path / "v1", SMALL_SDN, SMALL_ALT))
    version = list_load(source="ofac_sdn", origin=origin, actor=ACTOR)
    events = AuditEvent.objects.count()
    result = list_load_with_result(source="ofac_sdn", origin=origin, actor=ACTOR)
    assert result.unchanged and result.version == version
    assert ListVersion.objects.count() == 1 and ListEntryChange.objects.count() == 3
    assert AuditEvent.objects.count() == events


# --------------------------------------------------------------------------- failures


def test_a_malformed_file_records_a_failed_version_and_changes_nothing(tmp_path):
    good = list_load(source="ofac_sdn", origin=str(write_ofac(tmp_path / "good", SMALL_SDN)), actor=ACTOR)
    before = entries_snapshot("ofac_sdn")

    broken = tmp_path / "broken"
    broken.mkdir()
    data = ofac_csv([*SMALL_SDN[:1], ["1x", "BROKEN"], sdn_row("5", "SOMEONE NEW")])
    (broken / "sdn.csv").write_bytes(data)
    with pytest.raises(ListLoadError, match=r"sdn\.csv, line 2: expected 12 columns") as caught:
        list_load(source="ofac_sdn", origin=str(broken), actor=ACTOR)

    failed = ListVersion.objects.get(pk=caught.value.version_id)
    assert failed.status == Status.FAILED and "line 2" in failed.error and failed.finished_at is not None
    good.refresh_from_db()
    assert good.status == Status.ACTIVE and active_versions() == {"ofac_sdn": good}
    assert entries_snapshot("ofac_sdn") == before
    assert not ListEntryChange.objects.filter(version=failed).exists()
    assert AuditEvent.objects.filter(action="compliance.list_load_failed", target_id=str(failed.pk)).exists()

    # A truncated copy of the good file: refused as well.
    (broken / "sdn.csv").write_bytes(ofac_csv(SMALL_SDN)[:-40])
    with pytest.raises(ListLoadError, match="truncated"):
        list_load(source="ofac_sdn", origin=str(broken), actor=ACTOR)
    assert entries_snapshot("ofac_sdn") == before


def test_a_file_of_another_format_is_refused(tmp_path):
    (tmp_path / "sdn.csv").write_bytes(UN_SMALL_XML)
    with pytest.raises(ListLoadError, match=r"is XML or HTML, not OFAC's legacy sdn\.csv CSV"):
        list_load(source="ofac_sdn", origin=str(tmp_path), actor=ACTOR)
    xml_as_csv = tmp_path / "consolidated.xml"
    xml_as_csv.write_bytes(ofac_csv(SMALL_SDN))
    with pytest.raises(ListLoadError, match="is not XML"):
        list_load(source="un", origin=str(xml_as_csv), actor=ACTOR)
    assert not ListEntry.objects.exists()
    assert set(ListVersion.objects.values_list("status", flat=True)) == {Status.FAILED}


def test_bad_input_is_refused_without_a_record(tmp_path):
    from fintech.core.exceptions import ValidationFailed

    with pytest.raises(ValidationFailed, match="unknown list source 'eu'"):
        list_load(source="eu", origin=str(tmp_path), actor=ACTOR)
    with pytest.raises(ValidationFailed, match="no origin configured"):
        list_load(source="un", origin=" ", actor=ACTOR)
    assert not ListVersion.objects.exists()
    with pytest.raises(ListLoadError, match="no such file or directory"):
        list_load(source="un", origin=str(tmp_path / "missing.xml"), actor=ACTOR)
    with pytest.raises(ListLoadError, match="only local paths and http"):
        list_load(source="un", origin="ftp://example.invalid/consolidated.xml", actor=ACTOR)


def test_un_load(tmp_path):
    path = tmp_path / "consolidated.xml"
    path.write_bytes(UN_SMALL_XML)
    version = list_load(source="un", origin=str(path), actor=ACTOR)
    assert (version.entity_count, version.added_count, version.name_count) == (2, 2, 5)
    assert version.published_at.isoformat() == "2026-02-27T00:00:09.554000+00:00"
    assert set(ListEntry.objects.values_list("key", flat=True)) == {"QDi.999", "QDe.999"}


# --------------------------------------------------------------------------- signal


def test_activation_signal_is_sent_once_after_commit(tmp_path, django_capture_on_commit_callbacks):
    received: list[int] = []

    def receiver(sender, version_id, **kwargs):
        received.append(version_id)

    list_version_activated.connect(receiver, dispatch_uid="test.lists.receiver")
    try:
        origin = str(write_ofac(tmp_path / "v1", SMALL_SDN))
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            version = list_load(source="ofac_sdn", origin=origin, actor=ACTOR)
        assert received == []  # nothing before the commit
        for callback in callbacks:
            callback()
        assert received == [version.pk]

        with django_capture_on_commit_callbacks(execute=True):
            list_load(source="ofac_sdn", origin=origin, actor=ACTOR)  # unchanged
            with pytest.raises(ListLoadError):
                list_load(source="ofac_sdn", origin=str(tmp_path / "absent"), actor=ACTOR)
        assert received == [version.pk]
    finally:
        list_version_activated.disconnect(dispatch_uid="test.lists.receiver")


# --------------------------------------------------------------------------- refresh task over HTTP


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server over a temporary directory; yields (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def test_refresh_task_loads_each_configured_source(http_root):
    root, base = http_root
    write_ofac(root / "ofac", SMALL_SDN, SMALL_ALT)  # no add.csv: optional, a 404 is fine
    sources = {"ofac_sdn": f"{base}/ofac/", "un": f"{base}/un/consolidated.xml"}
    with override_settings(SANCTIONS_SOURCES=sources):
        outcome = refresh_sanctions_lists()
    assert outcome["ofac_sdn"]["status"] == "loaded" and outcome["ofac_sdn"]["added"] == 3
    assert outcome["un"]["status"] == "failed" and "HTTP 404" in outcome["un"]["error"]
    assert ListVersion.objects.get(pk=outcome["un"]["version_id"]).status == Status.FAILED
    ofac = ListVersion.objects.get(pk=outcome["ofac_sdn"]["version_id"])
    assert ofac.origin == f"{base}/ofac/" and ofac.name_count == 5

    (root / "un").mkdir()
    (root / "un" / "consolidated.xml").write_bytes(UN_SMALL_XML)
    with override_settings(SANCTIONS_SOURCES=sources):
        outcome = refresh_sanctions_lists()
    assert outcome["ofac_sdn"] == {"status": "unchanged", "version_id": ofac.pk, "entities": 3}
    assert outcome["un"]["status"] == "loaded" and outcome["un"]["entities"] == 2


def test_download_size_cap_and_credentials_kept_out(http_root):
    root, base = http_root
    (root / "consolidated.xml").write_bytes(UN_SMALL_XML)
    url = base.replace("http://", "http://reader:secret@") + "/consolidated.xml?token=secret"
    with override_settings(SANCTIONS_MAX_DOWNLOAD_BYTES=100), pytest.raises(ListLoadError, match="limit"):
        list_load(source="un", origin=url, actor=ACTOR)
    failed = ListVersion.objects.get()
    assert failed.origin == f"{base}/consolidated.xml" and "secret" not in failed.error
    assert "secret" not in str(AuditEvent.objects.filter(action="compliance.list_load_failed").get().details)


# --------------------------------------------------------------------------- command


def test_command_loads_and_reports(tmp_path, capsys):
    origin = write_ofac(tmp_path / "v1", SMALL_SDN, SMALL_ALT)
    call_command("load_sanctions_list", "--source", "ofac_sdn", "--path", str(origin), "--no-progress")
    out = capsys.readouterr().out
    assert "ofac_sdn: version" in out and "active: 3 entities, 3 added, 0 changed, 0 removed" in out

    call_command("load_sanctions_list", "--source", "ofac_sdn", "--path", str(origin))
    assert "ofac_sdn: unchanged" in capsys.readouterr().out


def test_command_errors_leave_the_active_version(tmp_path):
    good = list_load(source="ofac_sdn", origin=str(write_ofac(tmp_path / "v1", SMALL_SDN)), actor=ACTOR)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "sdn.csv").write_bytes(b"<html>Service unavailable</html>")
    with pytest.raises(CommandError, match=r"^sdn\.csv, line 1: is XML or HTML"):
        call_command("load_sanctions_list", "--source", "ofac_sdn", "--path", str(broken), "--no-progress")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("load_sanctions_list", "--source", "eu")
    with pytest.raises(CommandError, match="must be an http"):
        call_command("load_sanctions_list", "--source", "un", "--url", "file:///etc/passwd")
    with override_settings(SANCTIONS_SOURCES={}), pytest.raises(CommandError, match="no origin configured for un"):
        call_command("load_sanctions_list", "--source", "un")
    assert active_versions() == {"ofac_sdn": good}


# --------------------------------------------------------------------------- admin


def test_admin_pages_render_for_a_superuser(client, tmp_path):
    list_load(source="ofac_sdn", origin=str(write_ofac(tmp_path / "v1", SMALL_SDN, SMALL_ALT)), actor=ACTOR)
    rows = [sdn_row("1", "DOE, John", "individual", remarks="DOB 1952."), SMALL_SDN[1]]
    version = list_load(source="ofac_sdn", origin=str(write_ofac(tmp_path / "v2", rows)), actor=ACTOR)
    admin = StaffUserFactory(username="root", is_superuser=True)
    login_with_mfa(client, admin)

    page = client.get(reverse("admin:compliance_listversion_changelist"))
    assert page.status_code == 200 and b"ofac_sdn" in page.content
    assert f"version__id__exact={version.pk}&amp;kind__exact=removed".encode() in page.content
    assert client.get(reverse("admin:compliance_listversion_change", args=[version.pk])).status_code == 200

    changelist = reverse("admin:compliance_listentrychange_changelist")
    changes = client.get(changelist, {"version__id__exact": version.pk, "kind__exact": "changed"})
    assert changes.status_code == 200 and b"DOE, John" in changes.content and b"ROE, Richard" not in changes.content
    change = ListEntryChange.objects.get(version=version, kind="changed")
    detail = client.get(reverse("admin:compliance_listentrychange_change", args=[change.pk]))
    assert detail.status_code == 200 and b"07 Oct 1952" in detail.content  # the previous remarks

    entries = client.get(reverse("admin:compliance_listentry_changelist"), {"q": "ACME"})
    assert entries.status_code == 200 and b"ACME TRADING LLC" in entries.content
    entry = ListEntry.objects.get(key="1")
    assert client.get(reverse("admin:compliance_listentry_change", args=[entry.pk])).status_code == 200
    # Read-only: no add page, no delete.
    assert client.get(reverse("admin:compliance_listversion_add")).status_code == 403
    delete = client.post(reverse("admin:compliance_listentry_delete", args=[entry.pk]), {"post": "yes"})
    assert delete.status_code == 403
    assert ListEntry.objects.filter(pk=entry.pk).exists()


# --------------------------------------------------------------------------- concurrency


@pytest.mark.django_db(transaction=True)
def test_concurrent_loads_of_the_same_files_record_one_version(tmp_path):
    from django.db import connection

    origin = str(write_ofac(tmp_path / "v1", SMALL_SDN, SMALL_ALT))
    results: list = []
    start = threading.Barrier(2)

    def load() -> None:
        try:
            start.wait()
            results.append(list_load_with_result(source="ofac_sdn", origin=origin, actor=ACTOR))
        finally:
            connection.close()

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    assert ListVersion.objects.count() == 1 and ListEntry.objects.count() == 3
    assert sorted(result.unchanged for result in results) == [False, True]
    assert {result.version.pk for result in results} == {ListVersion.objects.get().pk}
