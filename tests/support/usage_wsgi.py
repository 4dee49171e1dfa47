"""WSGI entry of the gunicorn test server: the project plus the usage tests' metered route.

Django is set up on the first request, not at import, so pytest can collect this module
without it touching the test process's settings.
"""

import os

_app = None


def application(environ, start_response):
    global _app
    if _app is None:
        from django.conf import settings
        from django.core.wsgi import get_wsgi_application

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapi.settings")
        _app = get_wsgi_application()
        settings.ROOT_URLCONF = "tests.support.usage"
    return _app(environ, start_response)
