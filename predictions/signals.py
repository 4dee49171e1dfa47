"""Any change to the registry tables (admin edits included) invalidates cached routes."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from predictions.models import MLModel, ModelVersion


@receiver(post_save, sender=ModelVersion)
@receiver(post_delete, sender=ModelVersion)
@receiver(post_delete, sender=MLModel)
def registry_row_changed(sender, **kwargs) -> None:
    from predictions.inference import registry_changed

    registry_changed()
