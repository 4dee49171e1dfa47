"""Train and register the demo models (`iris`, `house-price`) when the registry is empty."""

from django.core.management.base import BaseCommand

from predictions.demo import bootstrap_demo_models


class Command(BaseCommand):
    help = "Train and register the demo models if the registry is empty (idempotent)."

    def handle(self, *args, **options):
        created = bootstrap_demo_models()
        if not created:
            self.stdout.write("demo models: registry not empty, nothing to do")
        for mv in created:
            self.stdout.write(f"demo model {mv} registered (runtime {mv.runtime})")
