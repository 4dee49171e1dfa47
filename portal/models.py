"""The custom user model, in place from the first migration so it can grow without pain."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A subscriber or an operator (is_staff). Emails are unique, case-insensitively."""

    email = models.EmailField("email address", blank=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(models.functions.Lower("email"), name="unique_user_email_ci"),
        ]
