"""Model artifacts (in object storage): skops files (never pickle), ONNX files, and their SHA-256.

Every load recomputes the file's hash and compares it with the registry's, and skops only
instantiates types from an explicit allow-list of scikit-learn classes: a file that needs any
other type (a custom function, an arbitrary class) is refused instead of being trusted.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from pathlib import Path
from typing import Any

from django.conf import settings

from predictions import storage
from predictions.errors import ArtifactRejected

# Internal scikit-learn types that fitted estimators carry besides the estimator classes.
EXTRA_TRUSTED = (
    "sklearn.tree._tree.Tree",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.Interval",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.utils._bunch.Bunch",
)


@functools.cache
def trusted_types() -> tuple[str, ...]:
    """The allow-list handed to `skops.io.load`: scikit-learn estimators + internals, and the
    LightGBM / XGBoost wrappers and boosters (see predictions.boosters for why they are safe)."""
    from sklearn.utils import all_estimators

    from predictions.boosters import TRUSTED_TYPES as BOOSTER_TYPES  # names only, no import

    names = {f"{cls.__module__}.{cls.__qualname__}" for _, cls in all_estimators()}
    return tuple(sorted(names | set(EXTRA_TRUSTED) | set(BOOSTER_TYPES)))


def models_dir() -> Path:
    path = Path(settings.DATA_DIR) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def absolute(relative: str) -> Path:
    """The file for a registry path (stored relative to MLAPI_DATA_DIR)."""
    return Path(settings.DATA_DIR) / relative


def relative_to_data_dir(path: Path) -> str:
    return str(path.resolve().relative_to(Path(settings.DATA_DIR).resolve()))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_verified(relative: str, expected_sha256: str) -> bytes:
    """The artifact's bytes from object storage, after checking its SHA-256.

    Raises OSError (missing or unreachable) or ArtifactRejected.
    """
    data = storage.read_artifact(relative)
    if not hmac.compare_digest(sha256_bytes(data), expected_sha256):
        raise ArtifactRejected(f"SHA-256 of {relative} does not match the registry")
    return data


def check_trusted(data: bytes) -> None:
    """Refuse a skops payload that needs a type outside the allow-list (or is not skops)."""
    import skops.io as sio  # lazy: skops pulls scikit-learn, scipy and pandas (~170 MB)

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise ArtifactRejected("not a valid skops file") from exc
    refused = sorted(set(untrusted) - set(trusted_types()))
    if refused:
        raise ArtifactRejected(f"artifact needs untrusted types: {', '.join(refused[:5])}")


def load_skops(data: bytes) -> Any:
    """Instantiate an estimator from skops bytes, trusting only the allow-list."""
    import skops.io as sio  # lazy, see check_trusted

    check_trusted(data)
    try:
        return sio.loads(data, trusted=list(trusted_types()))
    except Exception as exc:
        raise ArtifactRejected(f"cannot load skops file: {exc.__class__.__name__}") from exc


def write_atomic(data: bytes, name: str) -> tuple[str, str]:
    """Store `data` as models/<name> in object storage, whole or not at all; (key, sha256)."""
    key = f"models/{name}"
    storage.write_artifact(key, data)
    return key, sha256_bytes(data)


def dump_skops(estimator: Any) -> bytes:
    import skops.io as sio  # lazy, see check_trusted

    return sio.dumps(estimator)
