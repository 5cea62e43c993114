"""Access rules for the staff dashboard: every staff view names the permission it needs."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

View = Callable[..., HttpResponse]
# One audit entry per user and permission in this window: repeated refusals must not flood the trail.
REFUSAL_AUDIT_WINDOW_SECONDS = 300


def _audit_refusal(request: HttpRequest, permission: str) -> None:
    from .audit import audit_record

    path = request.path[:200]
    # Keyed per user and permission, not per path: /customers/1/, /customers/2/... count once.
    if cache.add(f"audit:refused:{request.user.pk}:{permission}", 1, timeout=REFUSAL_AUDIT_WINDOW_SECONDS):
        audit_record(
            actor=request.user,
            action="auth.access_refused",
            details={"path": path, "permission": permission},
            request=request,
        )


def permission_required(permission: str) -> Callable[[View], View]:
    """Logged-out visitors go to the login page; others need to be active staff with ``permission``,
    else 403. (Django's own decorator sends a signed-in user without the permission to the login
    page, which reads as a logout; a plain 403 says what happened.)"""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not (user.is_active and user.is_staff and user.has_perm(permission)):
                _audit_refusal(request, permission)
                raise PermissionDenied("Your role does not give access to this page.")
            return view(request, *args, **kwargs)

        wrapper.required_permission = permission  # type: ignore[attr-defined]
        return wrapper

    return decorator
