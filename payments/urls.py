"""Staff dashboard pages of the payments app (mounted at /payments/)."""

from django.urls import path

from . import views

app_name = "payments"
urlpatterns = [
    path("", views.payment_list, name="payment_list"),
    path("webhooks/", views.webhook_list, name="webhook_list"),
    path("webhooks/<int:pk>/", views.webhook_detail, name="webhook_detail"),
    path("webhooks/<int:pk>/replay/", views.webhook_replay, name="webhook_replay"),
    path("disputes/", views.dispute_list, name="dispute_list"),
    path("ledger/", views.ledger, name="ledger"),
    path("ledger/<int:account_id>/", views.ledger_account, name="ledger_account"),
    path("payouts/", views.payout_list, name="payout_list"),
    path("dunning/", views.dunning_list, name="dunning_list"),
    # Last: a public id ("pay_…") must not shadow the pages above.
    path("<str:public_id>/", views.payment_detail, name="payment_detail"),
]
