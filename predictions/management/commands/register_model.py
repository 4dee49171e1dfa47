"""`manage.py register_model NAME PATH [--version V] [--default]`: add a skops artifact."""

from django.core.management.base import BaseCommand, CommandError

from predictions.errors import ArtifactRejected
from predictions.registry import RegistryError, register_model_version


class Command(BaseCommand):
    help = (
        "Register a scikit-learn estimator saved with skops (PATH) as a new version of NAME. "
        "Only allow-listed scikit-learn types are loaded; the input schema is inferred."
    )

    def add_arguments(self, parser):
        # the contract's --version is the model version, not Django's --version flag
        parser.conflict_handler = parser._optionals.conflict_handler = "resolve"
        parser.add_argument("name", help="model name (a slug, e.g. iris)")
        parser.add_argument("path", help="a .skops file")
        parser.add_argument("--version", default=None, help="version label (default: next number)")
        parser.add_argument("--default", action="store_true", help="make it the default version")
        parser.add_argument("--description", default="", help="model description")

    def handle(self, *args, **options):
        try:
            mv = register_model_version(
                name=options["name"],
                artifact_path=options["path"],
                version=options["version"],
                make_default=options["default"],
                description=options["description"],
            )
        except (RegistryError, ArtifactRejected, OSError) as exc:
            raise CommandError(str(exc)) from exc
        note = f" ({mv.runtime_note})" if mv.runtime_note else ""
        default = " [default]" if mv.is_default else ""
        self.stdout.write(
            f"registered {mv}{default}: runtime {mv.runtime}{note}, sha256 {mv.sha256}"
        )
