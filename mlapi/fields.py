"""DRF input fields that take JSON strings only.

DRF's CharField (and RegexField, EmailField, SlugField) turn a number or a boolean into its
text, so `{"name": 7486}` passes as "7486". The contract says schema violations are 400
`validation_error`; these refuse anything but a string.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictStringMixin:
    """Refuse non-string input before the field's own parsing."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class CharField(StrictStringMixin, serializers.CharField):
    """`serializers.CharField` for strings only."""


class RegexField(StrictStringMixin, serializers.RegexField):
    """`serializers.RegexField` for strings only."""


class EmailField(StrictStringMixin, serializers.EmailField):
    """`serializers.EmailField` for strings only."""


class SlugField(StrictStringMixin, serializers.SlugField):
    """`serializers.SlugField` for strings only."""
