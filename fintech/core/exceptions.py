"""The application's errors, each with the HTTP status it maps to (pages: the middleware below;
the REST API: its exception handler)."""


class ApplicationError(Exception):
    status_code = 400
    title = "Request refused"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationFailed(ApplicationError):
    status_code = 400
    title = "Invalid input"


class NotAllowed(ApplicationError):
    status_code = 403
    title = "Not allowed"


class InvalidTransition(ApplicationError):
    """The object is not in a state that allows this change (perhaps someone changed it meanwhile)."""

    status_code = 409
    title = "Not possible in the current state"
