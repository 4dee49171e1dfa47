"""The admin's rollout form (default, canary %, shadow %) and its per-version numbers table.

The form validates and saves through predictions.operations, exactly like
`PUT /api/v1/models/{name}/rollout`, so the admin and the API refuse the same things.
"""

from __future__ import annotations

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from predictions.models import MLModel
from predictions.operations import RolloutError, validate_rollout
from predictions.rollout_stats import shadow_agreement, version_traffic

NONE = ""


class RolloutForm(forms.ModelForm):
    """Pick the default, an optional canary with its percent and an optional shadow."""

    default_version = forms.ChoiceField(label="default version")
    canary = forms.ChoiceField(label="canary version", required=False)
    canary_percent = forms.FloatField(min_value=0, max_value=100, initial=0)
    shadow = forms.ChoiceField(label="shadow version", required=False)
    shadow_percent = forms.FloatField(min_value=0, max_value=100, initial=0)

    class Meta:
        model = MLModel
        fields = ["description"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        model = self.instance
        labels = [(v.version, v.version) for v in model.versions.all()]
        self.fields["default_version"].choices = labels
        for name in ("canary", "shadow"):
            self.fields[name].choices = [(NONE, "-"), *labels]
        default = model.versions.filter(is_default=True).first()
        self.initial["default_version"] = default.version if default else None
        self.initial["canary"] = model.canary_version.version if model.canary_version else NONE
        self.initial["shadow"] = model.shadow_version.version if model.shadow_version else NONE

    def spec(self) -> dict:
        """The rollout as the API takes it."""
        data = self.cleaned_data

        def entry(name: str) -> dict | None:
            label = data.get(name)
            return (
                {"version": label, "percent": data.get(f"{name}_percent") or 0} if label else None
            )

        return {
            "default": data.get("default_version"),
            "canary": entry("canary"),
            "shadow": entry("shadow"),
        }

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            validate_rollout(model=self.instance, spec=self.spec())
        except RolloutError as exc:
            field = exc.field.split(".")[0]
            field = {"default": "default_version"}.get(field, field)
            if exc.field.endswith(".percent"):
                field = f"{field}_percent"
            self.add_error(field if field in self.fields else None, str(exc))
        return cleaned


def stats_table(model: MLModel) -> str:
    """HTML: requests, error rate and mean latency per version (last 24 h), shadow agreement."""
    traffic = version_traffic(model_name=model.name)
    rows = []
    for version in model.versions.all():
        numbers = traffic.get(version.version, {})
        requests = numbers.get("requests", 0)
        rows.append(
            (
                version.version,
                requests,
                f"{numbers.get('error_rate', 0.0):.1%}" if requests else "-",
                f"{numbers.get('latency_ms', 0.0):.1f} ms" if requests else "-",
            )
        )
    body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
    shadows = [
        (
            pair["version"],
            pair["shadow_version"],
            pair["compared"],
            f"{pair['agreement']:.1%}" if pair["agreement"] is not None else "-",
        )
        for pair in shadow_agreement(model_name=model.name)
    ]
    shadow_rows = format_html_join(
        "", "<tr><td>{} vs shadow {}</td><td>{}</td><td>{}</td></tr>", shadows
    )
    return format_html(
        '<table class="rollout-stats"><thead><tr><th>version</th><th>requests (24 h)</th>'
        "<th>error rate</th><th>mean latency</th></tr></thead><tbody>{}</tbody></table>"
        '<table class="shadow-agreement"><thead><tr><th>shadow pair</th><th>instances compared'
        "</th><th>agreement</th></tr></thead><tbody>{}</tbody></table>",
        body,
        shadow_rows or mark_safe("<tr><td colspan=3>no shadow comparisons yet</td></tr>"),
    )
