"""Request guards and error mapping for every page."""

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render

from .exceptions import ApplicationError


class RejectNulCharactersMiddleware:
    """Refuse form and query parameters containing U+0000 with 400.

    PostgreSQL text cannot hold a NUL character: such a value would fail deep inside a query
    and surface as a 500. Refusing it at the edge gives the client a clear answer instead.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return reject_nul_characters(request) or self.get_response(request)


def reject_nul_characters(request: HttpRequest) -> HttpResponse | None:
    """A 400 answer when a form or query parameter contains U+0000, else None."""
    for parameters in (request.GET, request.POST):
        for key, values in parameters.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                return HttpResponseBadRequest(
                    "Request parameters must not contain NUL characters.", content_type="text/plain"
                )
    return None


class ApplicationErrorMiddleware:
    """A service's ApplicationError becomes a page with its status and message, never a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, ApplicationError):
            return None
        context = {"title": exception.title, "message": exception.message}
        return render(request, "error.html", context, status=exception.status_code)
