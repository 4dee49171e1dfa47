"""Give every existing subscription its owner's personal organization (slug = username)."""

from django.db import migrations


def personal_organizations(apps, schema_editor):
    Organization = apps.get_model("keys", "Organization")
    Membership = apps.get_model("keys", "Membership")
    Subscription = apps.get_model("keys", "Subscription")
    ApiKey = apps.get_model("keys", "ApiKey")
    taken = {slug.lower() for slug in Organization.objects.values_list("slug", flat=True)}
    for subscription in Subscription.objects.filter(organization__isnull=True).select_related(
        "user"
    ):
        user = subscription.user
        slug = user.username
        if slug.lower() in taken:
            slug = f"{user.username}-{user.pk}"
        taken.add(slug.lower())
        org = Organization.objects.create(slug=slug, name=user.username)
        Membership.objects.create(organization=org, user=user, role="owner")
        subscription.organization = org
        subscription.save(update_fields=["organization"])
        ApiKey.objects.filter(subscription=subscription, created_by__isnull=True).update(
            created_by=user
        )


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0004_organizations"),
    ]

    operations = [
        migrations.RunPython(personal_organizations, migrations.RunPython.noop),
    ]
