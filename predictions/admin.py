"""Admin for the registry: models, versions, skops upload (hash-checked) and "set default"."""

from __future__ import annotations

import hashlib
import hmac
import re

from django import forms
from django.contrib import admin, messages

from keys.clientip import client_ip
from predictions.admin_rollout import RolloutForm, stats_table
from predictions.jobs import admin as jobs_admin  # noqa: F401  (registers BatchJob)
from predictions.models import MLModel, ModelVersion
from predictions.operations import RolloutError, set_rollout, update_version
from predictions.registry import (
    RegistryError,
    register_model_version,
    set_default_version,
    verify_upload,
)

SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    fields = (
        "version", "is_default", "runtime", "runtime_note", "deprecated_at", "sunset_at",
        "sha256", "created_at",
    )  # fmt: skip
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(MLModel)
class MLModelAdmin(admin.ModelAdmin):
    """A model, its rollout (default, canary %, shadow %) and per-version traffic."""

    form = RolloutForm
    list_display = (
        "name",
        "task",
        "default_version",
        "canary_display",
        "shadow_display",
        "created_at",
    )
    search_fields = ("name",)
    readonly_fields = ("name", "task", "created_at", "rollout_revision", "version_numbers")
    fieldsets = [
        (None, {"fields": ["name", "task", "description", "created_at"]}),
        (
            "Rollout",
            {
                "fields": [
                    "default_version",
                    "canary",
                    "canary_percent",
                    "shadow",
                    "shadow_percent",
                    "rollout_revision",
                ]
            },
        ),
        ("Per-version traffic and shadow agreement", {"fields": ["version_numbers"]}),
    ]
    inlines = [ModelVersionInline]

    def has_add_permission(self, request) -> bool:
        return False  # models are created by uploading their first version

    def save_model(self, request, obj, form, change) -> None:
        MLModel.objects.filter(pk=obj.pk).update(description=obj.description)
        try:
            set_rollout(model=obj, spec=form.spec(), actor=request.user)
        except RolloutError as exc:  # changed between clean() and save (another operator)
            messages.error(request, f"Rollout refused: {exc}")

    @admin.display(description="canary")
    def canary_display(self, obj: MLModel) -> str:
        return (
            f"{obj.canary_version.version} ({obj.canary_percent:g} %)"
            if obj.canary_version
            else "-"
        )

    @admin.display(description="shadow")
    def shadow_display(self, obj: MLModel) -> str:
        return (
            f"{obj.shadow_version.version} ({obj.shadow_percent:g} %)"
            if obj.shadow_version
            else "-"
        )

    @admin.display(description="numbers")
    def version_numbers(self, obj: MLModel) -> str:
        return stats_table(obj)

    @admin.display(description="default version")
    def default_version(self, obj: MLModel) -> str:
        default = obj.versions.filter(is_default=True).first()
        return default.version if default else "-"


class UploadVersionForm(forms.ModelForm):
    """Upload a skops file as a new version; only allow-listed scikit-learn types load."""

    model_name = forms.CharField(max_length=64, help_text="Existing or new model name (slug).")
    version_label = forms.CharField(
        max_length=32, required=False, help_text="Leave empty for the next number."
    )
    artifact_file = forms.FileField(help_text="A scikit-learn estimator saved with skops.io.")
    expected_sha256 = forms.CharField(
        max_length=64, required=False, help_text="If given, the upload must have this SHA-256."
    )
    make_default = forms.BooleanField(required=False)
    description = forms.CharField(widget=forms.Textarea, required=False)

    class Meta:
        model = ModelVersion
        fields: list[str] = []

    def clean_model_name(self) -> str:
        name = self.cleaned_data["model_name"]
        if not SLUG.match(name):
            raise forms.ValidationError("Use letters, digits, - and _ only.")
        return name

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("artifact_file")
        if upload is None:
            return cleaned
        if not upload.name.endswith(".skops"):
            self.add_error("artifact_file", "Upload a .skops file (pickles are never accepted).")
            return cleaned
        data = upload.read()
        expected = (cleaned.get("expected_sha256") or "").strip().lower()
        if expected and not hmac.compare_digest(hashlib.sha256(data).hexdigest(), expected):
            self.add_error("expected_sha256", "The uploaded file does not have this SHA-256.")
            return cleaned
        try:
            verify_upload(data)
        except RegistryError as exc:
            self.add_error("artifact_file", str(exc))
            return cleaned
        cleaned["artifact_bytes"] = data
        return cleaned


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "__str__", "is_default", "runtime", "runtime_note", "deprecated_at", "sunset_at",
        "created_at",
    )  # fmt: skip
    list_filter = ("runtime", "is_default", "model")
    actions = ["make_default", "deprecate"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = UploadVersionForm
            kwargs["fields"] = [
                "model_name", "version_label", "artifact_file", "expected_sha256",
                "make_default", "description",
            ]  # fmt: skip
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return list(UploadVersionForm.base_fields)
        return [f.name for f in ModelVersion._meta.fields if f.name != "id"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".skops") as handle:
            handle.write(form.cleaned_data["artifact_bytes"])
            handle.flush()
            try:
                created = register_model_version(
                    name=form.cleaned_data["model_name"],
                    artifact_path=handle.name,
                    version=form.cleaned_data["version_label"] or None,
                    make_default=form.cleaned_data["make_default"],
                    description=form.cleaned_data["description"],
                    actor=request.user,
                    ip=client_ip(request),
                )
            except (RegistryError, OSError) as exc:
                raise _UploadRefused(str(exc)) from exc
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if k != "_state"})
        obj._state.adding = False
        if created.runtime_note:
            messages.warning(request, f"Serving with scikit-learn: {created.runtime_note}")

    def add_view(self, request, form_url="", extra_context=None):
        try:
            return super().add_view(request, form_url, extra_context)
        except _UploadRefused as exc:
            messages.error(request, f"Upload refused: {exc}")
            from django.http import HttpResponseRedirect

            return HttpResponseRedirect(request.path)

    @admin.action(description="Make the selected version its model's default")
    def make_default(self, request, queryset) -> None:
        versions = list(queryset.select_related("model"))
        if len({v.model_id for v in versions}) != len(versions):
            self.message_user(request, "Pick one version per model.", messages.ERROR)
            return
        for version in versions:
            set_default_version(model_version=version, actor=request.user, ip=client_ip(request))
        self.message_user(request, f"{len(versions)} default version(s) switched.")

    @admin.action(description="Deprecate now, sunset in 90 days")
    def deprecate(self, request, queryset) -> None:
        from datetime import timedelta

        from django.utils import timezone

        now = timezone.now()
        changes = {"deprecated_at": now.isoformat(), "sunset_at": (now + timedelta(90)).isoformat()}
        for version in queryset.select_related("model"):
            try:
                update_version(model_version=version, changes=changes, actor=request.user)
            except RolloutError as exc:
                self.message_user(request, f"{version}: {exc}", messages.ERROR)
                return
        self.message_user(request, f"{queryset.count()} version(s) deprecated.")


class _UploadRefused(Exception):
    """The registry refused an upload that passed the form (e.g. untrusted types)."""
