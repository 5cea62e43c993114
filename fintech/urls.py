from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from fintech import views
from fintech.core import accounts
from fintech.core import views as core_views
from fintech.core.views import healthz
from fintech.sections import SECTIONS
from payments import webhooks

admin.site.site_header = "Fintech operations — administration"
admin.site.site_title = "Fintech admin"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("audit/", views.audit, name="audit"),
    path("audit/<int:seq>/", views.audit_event, name="audit_event"),
    path("customers/", core_views.customer_list, name="customer_list"),
    path("customers/<int:pk>/", core_views.customer_detail, name="customer_detail"),
    path("customers/<int:pk>/reveal/", core_views.customer_reveal, name="customer_reveal"),
    path("customers/<int:pk>/<str:kind>/", core_views.customer_change_status, name="customer_change_status"),
    # Each section's scheduled jobs and task runs, beside the pages its app mounts at its slug.
    *[path(f"{s.slug}/jobs/", views.section, {"section": s.slug}, name=f"{s.slug}_jobs") for s in SECTIONS],
    path("payments/", include("payments.urls")),
    path("compliance/", include("compliance.urls")),
    path("api/screening/", include("compliance.api_urls")),
    path("api/", include("payments.api_urls")),
    path("webhooks/stripe/", webhooks.stripe_webhook, name="stripe_webhook"),
    path("webhooks/braintree/", webhooks.braintree_webhook, name="braintree_webhook"),
    path("healthz", healthz, name="healthz"),
    path("healthz/", healthz),
    path(
        "accounts/",
        include(
            [
                # Before allauth's own: removing a security key keeps staff's last second factor.
                path("2fa/webauthn/keys/<int:pk>/remove/", accounts.remove_webauthn, name="mfa_remove_webauthn"),
                path("", include("allauth.urls")),
            ]
        ),
    ),
    # The admin signs in through the same page, so its sessions pass the same second factor.
    path("admin/login/", RedirectView.as_view(pattern_name="account_login", query_string=True)),
    path("admin/", admin.site.urls),
    # Last: a section slug must not shadow the paths above.
    path("<slug:section>/", views.section, name="section"),
]
