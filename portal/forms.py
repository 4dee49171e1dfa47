"""Portal forms: they validate browser input and nothing else; views hand the cleaned data
to the owning app's service function."""

from __future__ import annotations

from datetime import date, timedelta

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone

from keys.models import Plan, Role
from keys.principal import SCOPES
from usage.serializers import day_out_of_range

MAX_USAGE_RANGE_DAYS = 366


class PlanChoiceField(forms.ModelChoiceField):
    """A plan picked by name, labelled with its limits so the choice is informed."""

    def label_from_instance(self, obj: Plan) -> str:
        approval = ", needs approval" if obj.requires_approval else ""
        return (
            f"{obj.name}: {obj.quota:,} predictions per {obj.quota_period}, "
            f"{obj.rate:,g} requests/s (burst {obj.burst:,}){approval}"
        )


class SignupForm(forms.Form):
    """A new subscriber: account details and, optionally, a public plan (free by default)."""

    username = forms.CharField(
        max_length=150,
        help_text="Letters, digits and @ . + - _ only.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}),
    )
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    plan = PlanChoiceField(
        queryset=Plan.objects.filter(is_public=True),
        to_field_name="name",
        required=False,
        empty_label=None,
        widget=forms.RadioSelect,
        help_text="You can change plans later. Plans that need approval start pending.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        free = self.fields["plan"].queryset.filter(name="free").first()
        if free is not None:
            self.fields["plan"].initial = free.name

    def clean_username(self) -> str:
        username = get_user_model().normalize_username(self.cleaned_data["username"])
        get_user_model().username_validator(username)
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("That username is taken.", code="username_taken")
        return username

    def clean_email(self) -> str:
        email = get_user_model().objects.normalize_email(self.cleaned_data["email"])
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                "An account with this email address exists; log in or reset its password.",
                code="email_taken",
            )
        return email

    def clean(self) -> dict:
        data = super().clean()
        password1, password2 = data.get("password1"), data.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error(
                "password2",
                forms.ValidationError("The two passwords differ.", code="password_mismatch"),
            )
        elif password1:
            user = get_user_model()(username=data.get("username", ""), email=data.get("email", ""))
            try:
                password_validation.validate_password(password1, user)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class LoginForm(AuthenticationForm):
    """Django's login form, without autofocus: keyboard and screen-reader users start at the
    top of the page (skip link, heading) like on every other page."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.pop("autofocus", None)
        self.fields["username"].widget.attrs.update(autocapitalize="none")


def _lines(text: str) -> list[str]:
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


class ApiKeyCreateForm(forms.Form):
    """A new key: an optional name and an optional expiry date (UTC midnight)."""

    name = forms.CharField(
        max_length=100,
        required=False,
        help_text="To tell your keys apart, e.g. “laptop” or “production”.",
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The key stops working at 00:00 UTC that day. Leave empty for no expiry.",
    )

    models = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked for every model your plan covers.",
    )
    scopes = forms.MultipleChoiceField(
        required=False,  # none ticked (or an old form without the field): all scopes
        choices=[(s, s) for s in SCOPES],
        initial=list(SCOPES),
        widget=forms.CheckboxSelectMultiple,
        help_text="predict: predictions on every protocol; jobs: batch jobs; models:read: model "
        "list and metadata.",
    )
    allowed_ips = forms.CharField(
        required=False,
        label="Allowed IP addresses",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Addresses or CIDRs (e.g. 203.0.113.0/24), one per line. Empty: any address.",
    )
    allowed_origins = forms.CharField(
        required=False,
        label="Allowed browser origins",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="https://host[:port], one per line, for keys used from web pages. Empty: any.",
    )

    def __init__(self, *args, model_names=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["models"].choices = [(n, n) for n in model_names]

    def restrictions(self) -> dict:
        """The §10 restrictions for `create_api_key` (validated there, with precise errors)."""
        data = self.cleaned_data
        return {
            "models": data["models"] or None,
            "scopes": data["scopes"] or list(SCOPES),
            "allowed_ips": _lines(data["allowed_ips"]),
            "allowed_origins": _lines(data["allowed_origins"]),
        }

    def clean_expires_on(self) -> date | None:
        expires_on = self.cleaned_data["expires_on"]
        today = timezone.now().date()
        if expires_on is not None and expires_on <= today:
            raise forms.ValidationError("Pick a date after today.", code="expiry_in_past")
        if expires_on is not None and expires_on > today + timedelta(days=3 * 366):
            raise forms.ValidationError("Keys can live at most three years.", code="expiry_too_far")
        return expires_on


class UsageFilterForm(forms.Form):
    """The usage page's date range (inclusive, UTC) and optional model and key filters."""

    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    model = forms.ChoiceField(required=False, label="Model")
    key = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="API key")

    def __init__(self, *args, model_names=(), keys=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "All models")] + [(n, n) for n in model_names]
        self.fields["key"].choices = [("", "All keys")] + [
            (k.pk, f"mlk_{k.prefix}" + (f" ({k.name})" if k.name else "")) for k in keys
        ]

    @staticmethod
    def default_range(today: date | None = None) -> dict[str, date]:
        """The last 30 days, today included."""
        today = today or timezone.now().date()
        return {"start": today - timedelta(days=29), "end": today}

    def clean(self) -> dict:
        data = super().clean()
        for name in ("start", "end"):
            if problem := day_out_of_range(data.get(name)):
                self.add_error(name, forms.ValidationError(problem, code="out_of_range"))
        start, end = data.get("start"), data.get("end")
        if start and end:
            if start > end:
                self.add_error(
                    "end", forms.ValidationError("End is before start.", code="end_before_start")
                )
            elif (end - start).days >= MAX_USAGE_RANGE_DAYS:
                self.add_error(
                    "end",
                    forms.ValidationError(
                        f"Pick at most {MAX_USAGE_RANGE_DAYS} days.", code="range_too_long"
                    ),
                )
        return data


class JobUploadForm(forms.Form):
    """A batch job: the model to run and a CSV (header row) or JSON Lines file."""

    model = forms.ChoiceField(label="Model")
    file = forms.FileField(
        label="Input file",
        help_text="CSV with a header row naming the features, or JSON Lines (one object per "
        "line). A bad row fails alone.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.jsonl,.ndjson,text/csv"}),
    )

    def __init__(self, *args, model_names=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(n, n) for n in model_names]


class PlanChangeForm(forms.Form):
    """Which public plan to move to; the service decides whether it needs approval."""

    plan = PlanChoiceField(
        queryset=Plan.objects.none(),
        to_field_name="name",
        empty_label=None,
        widget=forms.RadioSelect,
        label="New plan",
    )

    def __init__(self, *args, current_plan: Plan | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        plans = Plan.objects.filter(is_public=True)
        if current_plan is not None:
            plans = plans.exclude(pk=current_plan.pk)
        self.fields["plan"].queryset = plans


class OrganizationForm(forms.Form):
    """A new team organization; the slug defaults to one made from the name."""

    name = forms.CharField(max_length=150)
    slug = forms.CharField(
        max_length=50, required=False, help_text="Lowercase letters, digits and hyphens."
    )


class InvitationForm(forms.Form):
    """Invite someone by email with a role (the link in the email is valid for 7 days)."""

    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.DEVELOPER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
