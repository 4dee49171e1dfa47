"""`MLAPI_OBJECT_STORAGE` → the `STORAGES["objects"]` entry (read by settings.py, no Django here).

Unset: Django's FileSystemStorage rooted at MLAPI_DATA_DIR, so keys such as
`models/iris-1-abc.skops` or `jobs/<id>/results.csv` are the same relative paths as before.
`s3://bucket[/prefix]`: django-storages' S3Storage on that bucket, keys under the prefix, with
the usual AWS_* variables (credentials and region are boto3's own: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION; AWS_S3_ENDPOINT_URL for MinIO or any other
S3-compatible server). Timeouts and retries are short on purpose: a store that is down must turn
into a 503 within seconds, not hang a request for botocore's default minute.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse


class ObjectStorageMisconfigured(ValueError):
    """MLAPI_OBJECT_STORAGE is set but not an `s3://bucket[/prefix]` URL."""


def parse_object_storage_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → ("bucket", "some/prefix")."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ObjectStorageMisconfigured(
            f"MLAPI_OBJECT_STORAGE must look like s3://bucket[/prefix], got {url!r}"
        )
    return parsed.netloc, parsed.path.strip("/")


def objects_storage(url: str, data_dir: Path, env: dict[str, str] | None = None) -> dict:
    """The STORAGES entry for job files and model artifacts."""
    env = os.environ if env is None else env
    if not url:
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(data_dir), "allow_overwrite": True},
        }
    from botocore.config import Config  # only when S3 is configured

    bucket, prefix = parse_object_storage_url(url)
    endpoint = env.get("AWS_S3_ENDPOINT_URL") or None
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "location": prefix,
            "endpoint_url": endpoint,
            "region_name": env.get("AWS_S3_REGION_NAME") or env.get("AWS_DEFAULT_REGION") or None,
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": False,
            "client_config": Config(
                # Path-style keeps MinIO, moto and any IP-addressed endpoint working.
                s3={"addressing_style": env.get("AWS_S3_ADDRESSING_STYLE") or "path"},
                connect_timeout=float(env.get("MLAPI_OBJECT_STORAGE_CONNECT_TIMEOUT_S") or 3),
                read_timeout=float(env.get("MLAPI_OBJECT_STORAGE_READ_TIMEOUT_S") or 30),
                retries={"max_attempts": 2, "mode": "standard"},
                signature_version="s3v4",
            ),
        },
    }
