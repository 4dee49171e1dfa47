"""`manage.py issue_key USERNAME [--name N]`: print a new API key once."""

from django.core.management.base import BaseCommand, CommandError

from keys import services
from keys.models import Subscription


class Command(BaseCommand):
    help = "Issue an API key for USERNAME's subscription and print it (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label for the key.")

    def handle(self, *args, username: str, name: str, **options):
        subscription = (
            Subscription.objects.filter(user__username=username).select_related("user").first()
        )
        if subscription is None:
            raise CommandError(f"{username!r} has no subscription; run `subscribe` first.")
        _, plaintext = services.create_api_key(
            subscription=subscription, name=name, created_by=subscription.user, actor="system"
        )
        self.stdout.write(plaintext)
