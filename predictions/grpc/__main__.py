"""`python -m predictions.grpc`: serve the gRPC data plane on HOST:MLAPI_GRPC_PORT."""

from __future__ import annotations

import os
import sys


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapi.settings")
    import django

    django.setup()
    from django.conf import settings

    from predictions.grpc.server import serve

    serve(host=os.environ.get("HOST", "127.0.0.1"), port=settings.MLAPI_GRPC_PORT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
