"""Template helpers for the portal: navigation state, accessible form fields, numbers."""

from __future__ import annotations

from django import template
from django.forms import BoundField
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag(takes_context=True)
def current(context: template.Context, *url_names: str) -> SafeString:
    """` aria-current="page"` when the request resolved to one of `url_names`, else nothing."""
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    if match is not None and match.url_name in url_names:
        return mark_safe(' aria-current="page"')
    return mark_safe("")


@register.inclusion_tag("portal/_field.html")
def field(bound: BoundField, label_hidden: bool = False) -> dict:
    """Render one field: label, widget, help text and errors, tied with aria-describedby."""
    ids = []
    if bound.help_text:
        ids.append(f"{bound.auto_id}_help")
    if bound.errors:
        ids.append(f"{bound.auto_id}_errors")
    attrs = {}
    if ids:
        attrs["aria-describedby"] = " ".join(ids)
    if bound.errors:
        attrs["aria-invalid"] = "true"
    return {
        "field": bound,
        "widget": bound.as_widget(attrs=attrs),
        "label_hidden": label_hidden,
        "is_group": bound.use_fieldset,
    }


@register.filter
def thousands(value: object) -> str:
    """12345 -> '12,345' (floats keep one decimal); anything else is returned as text."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.1f}"
    return str(value)


@register.filter
def percent_of(used: int | None, limit: int | None) -> int:
    """Whole percent of `limit` that `used` is, clamped to 0..100."""
    if not limit:
        return 0
    return max(0, min(100, round(100 * (used or 0) / limit)))


@register.simple_tag
def badge(status: str, label: str | None = None) -> SafeString:
    """A status badge whose text carries the meaning (the colour only repeats it)."""
    return format_html('<span class="badge {}">{}</span>', status, label or status)
