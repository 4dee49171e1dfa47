"""Placeholder: trains and registers the demo models once the registry lands."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Train and register the demo models if the registry is empty."

    def handle(self, *args, **options):
        self.stdout.write("demo models: nothing to do yet")
