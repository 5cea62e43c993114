"""A staff member signs in through the real login page and sees the overview with real counts."""

from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from playwright.sync_api import Page, expect

from fintech.core.schedules import standard_schedules
from fintech.core.services import heartbeat_record
from tests.factories import DEFAULT_PASSWORD, StaffUserFactory, UserFactory
from tests.utils import totp_code


def test_staff_signs_in_with_totp_and_sees_the_overview_with_real_counts(live_server, page: Page, transactional_db):
    olivia = StaffUserFactory(username="olivia", first_name="Olivia", last_name="Ops", roles=["ops"])
    secret = generate_totp_secret()
    TOTP.activate(olivia, secret)
    StaffUserFactory.create_batch(3)
    UserFactory.create_batch(2)
    heartbeat_record(hostname="worker@browser-test")

    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(f"{live_server.url}/accounts/2fa/authenticate/")
    page.locator("input[name=code]").fill(totp_code(secret))
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator('[data-metric="staff-users"] .card-value')).to_have_text("4")
    expect(page.locator('[data-metric="staff-users"] .card-note')).to_contain_text("6 active users")
    expect(page.locator('[data-metric="scheduled-jobs"] .card-value')).to_have_text(str(len(standard_schedules())))
    expect(page.locator('[data-metric="worker"]')).to_contain_text("healthy")
    expect(page.locator('[data-metric="worker"]')).to_contain_text("worker@browser-test")
    expect(page.get_by_text("Olivia Ops")).to_be_visible()

    main_navigation = page.get_by_role("navigation", name="Main")
    main_navigation.get_by_role("link", name="Payments").click()
    expect(page.get_by_role("heading", name="Payments", exact=True)).to_be_visible()
    expect(main_navigation.get_by_role("link", name="Payments")).to_have_attribute("aria-current", "page")


def test_a_wrong_password_keeps_the_visitor_out(live_server, page: Page, transactional_db):
    StaffUserFactory(username="olivia", roles=["ops"])
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("username and/or password you specified are not correct")
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")
