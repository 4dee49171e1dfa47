"""Seed the contract's default plans (CONTRACT.md section 5). Existing rows are left alone."""

from django.db import migrations

PLANS = [
    dict(name="free", description="Try it out.", rate=5, burst=10, quota=1000,
         quota_period="day", max_instances=100, max_job_rows=10000,
         requires_approval=False, is_public=True),
    dict(name="pro", description="For production use.", rate=50, burst=100, quota=100000,
         quota_period="month", max_instances=1000, max_job_rows=1000000,
         requires_approval=False, is_public=True),
    dict(name="enterprise", description="High volume, approved by an operator.", rate=10000,
         burst=20000, quota=100000000, quota_period="month", max_instances=10000,
         max_job_rows=10000000, requires_approval=True, is_public=True),
]


def seed(apps, schema_editor):
    Plan = apps.get_model("keys", "Plan")
    for values in PLANS:
        Plan.objects.get_or_create(name=values["name"], defaults={**values, "all_models": True})


def unseed(apps, schema_editor):
    Plan = apps.get_model("keys", "Plan")
    Plan.objects.filter(name__in=[p["name"] for p in PLANS], subscriptions__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("keys", "0002_initial")]

    operations = [migrations.RunPython(seed, unseed)]
