"""`manage.py subscribe USERNAME PLAN`: create or change a subscription, approved."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from keys import services
from keys.models import Plan


class Command(BaseCommand):
    help = "Put USERNAME on PLAN (creating or changing the subscription), approved."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("plan")

    def handle(self, *args, username: str, plan: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        plan_row = Plan.objects.filter(name=plan).first()
        if plan_row is None:
            raise CommandError(f"No plan named {plan!r}.")
        subscription = services.subscribe(user=user, plan=plan_row, approved=True)
        self.stdout.write(f"{username} is on {plan_row.name} ({subscription.status}).")
