from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PortalConfig(AppConfig):
    """The custom user model and the browser developer portal."""

    name = "portal"
    default = True  # the app's config; AdminConfig below is named in INSTALLED_APPS
    default_auto_field = "django.db.models.BigAutoField"


class AdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the login-limited site of `portal.admin_site`."""

    default = False
    default_site = "portal.admin_site.AdminSite"
