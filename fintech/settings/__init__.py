"""Settings package: base (shared, read from the environment), development, production, test.

Select one with DJANGO_ENV (development | production | test); see fintech.configure_settings_module.
"""
