"""The URLconf of the lean webhook handler (fintech.wsgi): the two gateway endpoints, by the same
names and views as in fintech.urls, which serves them to every other handler."""

from django.urls import path

from payments import webhooks

urlpatterns = [
    path("webhooks/stripe/", webhooks.stripe_webhook, name="stripe_webhook"),
    path("webhooks/braintree/", webhooks.braintree_webhook, name="braintree_webhook"),
]
