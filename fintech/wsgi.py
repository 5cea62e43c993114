"""WSGI entry point (gunicorn fintech.wsgi)."""

from django.core.wsgi import get_wsgi_application

from fintech import configure_settings_module

configure_settings_module()
application = get_wsgi_application()
