"""The staff dashboard: access rules, real counts, sections, audit, static files."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_results.models import TaskResult

from fintech.core.audit import SystemActor, audit_chain_verify, audit_record
from fintech.core.models import Customer
from fintech.core.schedules import standard_schedules
from tests.factories import DEFAULT_PASSWORD, StaffUserFactory, UserFactory
from tests.utils import login_with_mfa

pytestmark = pytest.mark.django_db
STAFF_PAGES = ["/", "/payments/", "/banking/", "/compliance/", "/audit/"]


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_logged_out_visitors_are_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/accounts/login/?next={url}"


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_signed_in_non_staff_users_are_refused(client, customer_user, url):
    login_with_mfa(client, customer_user)
    response = client.get(url)
    assert response.status_code == 403
    assert b"Access denied" in response.content


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_staff_see_every_page_with_the_navigation(staff_client, url):
    response = staff_client.get(url)
    assert response.status_code == 200
    for title in ("Overview", "Payments", "Banking", "Compliance", "Audit"):
        assert f">{title}</a>".encode() in response.content
    assert b'aria-current="page"' in response.content


def test_admin_requires_a_staff_login(client, staff_user):
    assert client.get("/admin/").headers["Location"].startswith("/admin/login/")
    login_with_mfa(client, staff_user)
    assert client.get("/admin/").status_code == 200


def test_unknown_section_is_404(staff_client):
    assert staff_client.get("/nowhere/").status_code == 404


def _task_result(task_id: str, name: str, status: str, age: timedelta) -> TaskResult:
    result = TaskResult.objects.create(task_id=task_id, task_name=name, status=status, result='"x"')
    TaskResult.objects.filter(pk=result.pk).update(date_done=timezone.now() - age)  # date_done is auto_now
    return result


def test_overview_shows_real_counts_from_the_database(staff_client):
    StaffUserFactory.create_batch(2)
    UserFactory.create_batch(3)
    UserFactory(is_staff=True, is_active=False)
    _task_result("t1", "core.health_ping", "SUCCESS", timedelta(minutes=5))
    _task_result("t2", "payments.reconcile", "SUCCESS", timedelta(hours=1))
    _task_result("t3", "payments.reconcile", "FAILURE", timedelta(hours=2))
    _task_result("t4", "core.health_ping", "FAILURE", timedelta(days=2))  # outside the 24 h window

    response = staff_client.get("/")
    overview = response.context["overview"]
    assert overview.staff_users == 3  # the signed-in one and the batch of two; inactive excluded
    assert overview.active_users == 6
    assert (overview.runs_24h.total, overview.runs_24h.succeeded, overview.runs_24h.failed) == (3, 2, 1)
    # The standard schedules every app declares, all enabled after migrate.
    assert (overview.schedules_enabled, overview.schedules_total) == (len(standard_schedules()),) * 2
    assert [result.task_id for result in overview.recent_failures] == ["t3", "t4"]
    assert (overview.customers, overview.kyc_pending, overview.audit_verification) == (0, 0, None)
    html = response.content.decode()
    assert '<div class="card-value">3</div>' in html
    assert "core: worker health ping" in html
    assert "no heartbeat" in html


def test_overview_counts_customers_and_shows_the_audit_chain(staff_client):
    Customer.objects.create(kind="person", legal_name="Ada", kyc_status="pending")
    Customer.objects.create(kind="business", legal_name="Acme Ltd", kyc_status="verified")
    audit_chain_verify(triggered_by="test")
    response = staff_client.get("/")
    overview = response.context["overview"]
    assert (overview.customers, overview.kyc_pending, overview.audit_verification.ok) == (2, 1, True)
    assert b"1 awaiting KYC review" in response.content and b"intact" in response.content


def test_section_lists_only_its_own_task_runs(staff_client):
    _task_result("p1", "payments.reconcile", "FAILURE", timedelta(minutes=1))
    _task_result("c1", "core.health_ping", "SUCCESS", timedelta(minutes=1))
    response = staff_client.get("/payments/jobs/")
    assert [result.task_id for result in response.context["recent_runs"]] == ["p1"]
    assert response.context["runs_24h"].failed == 1
    assert b"payments.reconcile" in response.content
    assert b"core.health_ping" not in response.content


def test_audit_page_lists_filters_and_shows_entries_with_the_last_verification(staff_client, staff_user):
    customer = Customer.objects.create(kind="person", legal_name="Ada Lovelace")
    audit_record(actor=staff_user, action="customer.created", target=customer, details={"source": "test"})
    audit_record(actor=SystemActor("beat"), action="job.ran")
    response = staff_client.get("/audit/")
    # the staff client's sign-in is audited first
    assert [event.action for event in response.context["page"]] == ["job.ran", "customer.created", "auth.login"]
    assert b"never verified" in response.content

    audit_chain_verify(triggered_by="test")
    response = staff_client.get("/audit/", {"action": "customer.", "actor": "staff"})
    assert [event.action for event in response.context["page"]] == ["customer.created"]
    assert b"intact" in response.content
    by_object = staff_client.get("/audit/", {"target_type": "core.customer", "target_id": str(customer.pk)})
    assert [event.seq for event in by_object.context["page"]] == [2]

    detail = staff_client.get("/audit/2/")
    assert detail.status_code == 200
    assert b"customer.created" in detail.content and b"&quot;source&quot;: &quot;test&quot;" in detail.content
    assert staff_client.get("/audit/999/").status_code == 404


def test_audit_pagination_keeps_the_filters(staff_client):
    for _ in range(55):
        audit_record(actor=SystemActor("beat"), action="job.ran")
    response = staff_client.get("/audit/", {"action": "job."})
    assert response.context["page"].paginator.num_pages == 2
    assert b"?action=job.&amp;page=2" in response.content


def test_a_staff_password_sign_in_leads_to_second_factor_set_up(client, staff_user):
    response = client.post("/accounts/login/", {"login": "staff", "password": DEFAULT_PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/2fa/totp/activate/")
    assert response.status_code == 200


def test_wrong_password_is_refused_with_a_message(client, staff_user):
    response = client.post("/accounts/login/", {"login": "staff", "password": "wrong-password-123"})
    assert response.status_code == 200
    assert b"The username and/or password you specified are not correct." in response.content
    assert "_auth_user_id" not in client.session


def test_sign_out_needs_a_post(staff_client):
    confirmation = staff_client.get("/accounts/logout/")
    assert confirmation.status_code == 200  # a page asking to confirm; still signed in
    assert staff_client.get("/").status_code == 200
    assert staff_client.post("/accounts/logout/").status_code == 302
    assert staff_client.get("/").status_code == 302


def test_stylesheet_is_served_locally(client):
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert b".badge.ok" in b"".join(response.streaming_content)


@pytest.mark.parametrize("query", ["user=%00", "user=a%00b", "page=1&x%00=1"])
def test_nul_characters_in_parameters_are_refused_with_400(staff_client, query):
    response = staff_client.get(f"/audit/?{query}")
    assert response.status_code == 400
    assert response.content == b"Request parameters must not contain NUL characters."


def test_nul_characters_in_a_form_are_refused_with_400(client, staff_user):
    response = client.post("/accounts/login/", {"login": "staff\x00", "password": "x"})
    assert response.status_code == 400
    assert "_auth_user_id" not in client.session


def test_health_answers_with_or_without_a_trailing_slash(client):
    assert client.get("/healthz/").status_code == 503
    assert client.get("/healthz/")["Content-Type"] == "application/json"
