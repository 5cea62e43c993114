"""WSGI entry point (gunicorn fintech.wsgi).

The gateway webhook endpoints (``/webhooks/stripe/``, ``/webhooks/braintree/``, exactly) are
served by a handler of their own: they are signed machine-to-machine POSTs that need no session,
user, MFA, messages, lockout or page policy, and they arrive at the highest rate of any endpoint.
It is Django's WSGI handler (request and response objects, the request_started/request_finished
signals and with them the database connections' upkeep, error responses and their logging) that
calls the path's view directly instead of through a middleware chain and URL resolution, which
cost about a seventh of a delivery's CPU in the web process. What the endpoints keep of
``settings.MIDDLEWARE`` is called in place, in the same order: security headers
(SecurityMiddleware), the guard against NUL characters in parameters, host validation and
Content-Length (CommonMiddleware), X-Frame-Options, and the answer to an ApplicationError; every
answer, a refusal made before the view included, gets all their response headers. The views are
never wrapped in a transaction (ATOMIC_REQUESTS does not apply here): a delivery is committed
before it is acknowledged. Every other path goes through the full ``settings.MIDDLEWARE`` stack.
"""

from typing import Any

from django.conf import settings
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import set_urlconf
from django.utils.log import log_response

from fintech import configure_settings_module


def _never(request: HttpRequest) -> HttpResponse:
    raise AssertionError("WebhookWSGIHandler calls its middleware's hooks, never a chain")


class WebhookWSGIHandler(WSGIHandler):
    """Django's WSGIHandler for a few exact paths, each answered by its view (``views``).

    Synchronous only, as WSGI is.
    """

    def __init__(self, views: dict[str, Any]) -> None:
        self.views = views
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        from fintech.core.middleware import ApplicationErrorMiddleware, reject_nul_characters

        if is_async:
            raise ValueError("WebhookWSGIHandler serves WSGI (synchronous) requests only")
        self.security = SecurityMiddleware(_never)
        self.reject_nul_characters = reject_nul_characters
        self.common = CommonMiddleware(_never)
        self.frame_options = XFrameOptionsMiddleware(_never)
        self.application_errors = ApplicationErrorMiddleware(_never)

    def get_response(self, request: Any) -> Any:
        response: Any
        set_urlconf(settings.ROOT_URLCONF)  # as BaseHandler.get_response: error pages resolve there
        try:
            response = (
                self.security.process_request(request)
                or self.reject_nul_characters(request)
                or self.common.process_request(request)
                or self.views[request.path_info](request)
            )
            if not isinstance(response, HttpResponseBase):
                raise ValueError(f"the view of {request.path_info} returned {type(response).__name__}, not a response")
        except Exception as exc:  # answered as Django's handlers answer any exception
            response = self.application_errors.process_exception(request, exc) or response_for_exception(request, exc)
        try:
            # The process_response hooks, in the reverse order of settings.MIDDLEWARE, on every
            # answer (a chain would skip the inner ones for an answer made before the view).
            response = self.frame_options.process_response(request, response)
            response = self.common.process_response(request, response)
            response = self.security.process_response(request, response)
        except Exception as exc:
            response = response_for_exception(request, exc)
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        return response


configure_settings_module()
default_application = get_wsgi_application()

from payments import webhooks  # noqa: E402 - once the app registry is ready

# Exactly the gateway endpoints (fintech.urls routes the same views): any other path, including
# anything else under /webhooks/ (the catch-all section page), keeps the full stack with its
# session, authentication, MFA and CSP middleware.
WEBHOOK_VIEWS = {
    "/webhooks/stripe/": webhooks.stripe_webhook,
    "/webhooks/braintree/": webhooks.braintree_webhook,
}
webhook_application = WebhookWSGIHandler(WEBHOOK_VIEWS)


def application(environ, start_response):
    if environ.get("PATH_INFO", "") in WEBHOOK_VIEWS:
        return webhook_application(environ, start_response)
    return default_application(environ, start_response)
