"""Request guards that apply to every page and API."""

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest


class RejectNulCharactersMiddleware:
    """Refuse form and query parameters containing U+0000 with 400.

    PostgreSQL text cannot hold a NUL character: such a value would fail deep inside a query
    and surface as a 500. Refusing it at the edge gives the client a clear answer instead.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for parameters in (request.GET, request.POST):
            for key, values in parameters.lists():
                if "\x00" in key or any("\x00" in value for value in values):
                    return HttpResponseBadRequest(
                        "Request parameters must not contain NUL characters.", content_type="text/plain"
                    )
        return self.get_response(request)
