"""WSGI entry point (gunicorn fintech.wsgi).

The gateway webhook endpoints (``/webhooks/stripe/``, ``/webhooks/braintree/``, exactly) are
served by a handler with a short middleware list: they are signed machine-to-machine POSTs that
need no session, user, MFA, messages, lockout or page policy, and they arrive at the highest rate
of any endpoint. What they keep: security headers, host validation (CommonMiddleware), the
NUL-rejecting guard and the error mapping. Every other
path goes through the full ``settings.MIDDLEWARE`` stack.
"""

from typing import Any

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application
from django.utils.module_loading import import_string

from fintech import configure_settings_module

# Exactly the gateway endpoints (fintech.urls): any other path, including anything else under
# /webhooks/ that the URLconf may serve (the catch-all section page), keeps the full stack with
# its session, authentication, MFA and CSP middleware.
WEBHOOK_PATHS = frozenset({"/webhooks/stripe/", "/webhooks/braintree/"})
WEBHOOK_URLCONF = "fintech.webhook_urls"
# In the order of settings.MIDDLEWARE.
WEBHOOK_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "fintech.core.middleware.RejectNulCharactersMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "fintech.core.middleware.ApplicationErrorMiddleware",
]


class LeanWSGIHandler(WSGIHandler):
    """A WSGIHandler whose middleware chain is ``middleware``, not ``settings.MIDDLEWARE``.

    Synchronous only, as WSGI is; every listed middleware must be sync-capable.
    """

    middleware: list[str] = WEBHOOK_MIDDLEWARE

    def load_middleware(self, is_async: bool = False) -> None:
        if is_async:
            raise ValueError("LeanWSGIHandler serves WSGI (synchronous) requests only")
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]
        for path in reversed(self.middleware):
            instance = import_string(path)(handler)
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(instance.process_template_response)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler

    def get_response(self, request: Any) -> Any:
        # Resolve against the two gateway routes only (fintech.webhook_urls), not the whole URLconf.
        request.urlconf = WEBHOOK_URLCONF
        return super().get_response(request)


configure_settings_module()
default_application = get_wsgi_application()
webhook_application = LeanWSGIHandler()


def application(environ, start_response):
    if environ.get("PATH_INFO", "") in WEBHOOK_PATHS:
        return webhook_application(environ, start_response)
    return default_application(environ, start_response)
