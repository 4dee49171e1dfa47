"""System checks of the predictions app: the object store exists (manage.py check/migrate)."""

from __future__ import annotations

from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register("mlapi", deploy=False)
def object_storage_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """MLAPI_OBJECT_STORAGE names a bucket that exists and answers (skipped for local files)."""
    from predictions.storage import check_object_storage

    try:
        check_object_storage()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="mlapi.E101")]
    return []
