"""The data plane's steps (see the package docstring for the order). Transport-free.

Errors are the ones every transport already maps: DRF `AuthenticationFailed` /
`NotAuthenticated` (401), `PermissionDenied` (403), `ValidationError` / `ParseError` (400) and
the domain errors (`ModelNotFound` 404, `RateLimited` / `QuotaExceeded` 429,
`ModelUnavailable` / `ServiceUnavailable` 503, `PredictionTimeout` 504).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import exceptions

from keys.authentication import authenticate_credentials
from keys.clientip import client_ip_from
from keys.meter import RequestMeter
from keys.principal import UNRESTRICTED, Principal
from keys.restrictions import check_restrictions
from mlapi.metrics import PREDICTIONS
from predictions import rollout, shadow
from predictions.errors import NotPermitted
from predictions.inference import Prediction, Predictor, get_predictor
from predictions.validation import validate_instances
from predictions.validation import validate_matrix as validate_matrix_columns

# What a call does, for key scopes (CONTRACT section 10).
PREDICT = "predict"
JOBS = "jobs"
MODELS_READ = "models:read"


def start_call(
    *,
    protocol: str,
    method: str = "",
    path: str = "",
    request_bytes: int = 0,
    consumes_quota: bool = False,
) -> RequestMeter:
    """The meter of a new call (REST's base view builds its own the same way)."""
    return RequestMeter(
        protocol=protocol,
        started_at=timezone.now(),
        consumes_quota=consumes_quota,
        method=method,
        path=path,
        request_bytes=request_bytes,
    )


def authenticate(meter: RequestMeter, *, api_key: str | None, authorization: str | None):
    """The caller's user; names `meter.principal`. 401 without or with bad credentials.

    An authenticated caller whose subscription is not active (pending, suspended, none)
    gets 403 `subscription_inactive`, after the principal is named, so that the refusal is
    metered like REST's.
    """
    found = authenticate_credentials(api_key=api_key, authorization=authorization)
    if found is None:
        raise exceptions.NotAuthenticated()
    user, principal = found
    if isinstance(principal, Principal):
        meter.principal = principal
    if not isinstance(principal, Principal) or not principal.is_active:
        raise exceptions.PermissionDenied(
            "This subscription is not active (pending approval or suspended).",
            code="subscription_inactive",
        )
    return user


def check_key_restrictions(meter: RequestMeter, *, scope: str, model: str | None) -> None:
    """The key's own restrictions (models, scopes, client IP, origin): 403, no quota used.

    Every protocol passes here before anything is charged. Reads only the restrictions cached
    on the principal; the client address and origin are worked out only for keys restricted
    by them (`keys.restrictions.KeyRestricted`, 403 permission_denied).
    """
    principal = meter.principal
    restrictions = principal.restrictions
    if restrictions is UNRESTRICTED:
        return
    check_restrictions(
        principal,
        model=model,
        scope=scope,
        client_ip=client_ip_from(meter.peer, meter.forwarded_for) if restrictions.networks else "",
        origin=meter.origin if restrictions.origins else "",
    )


def authorize(meter: RequestMeter, *, scope: str, model: str | None = None) -> None:
    """May this caller do `scope` (on `model`)? The plan must cover the model; then the key."""
    if model is not None and not meter.principal.plan.covers(model):
        raise NotPermitted(f"Your plan does not include the model {model!r}.")
    check_key_restrictions(meter, scope=scope, model=model)


def resolve(
    meter: RequestMeter, name: str, version: str | None = None, *, follow_rollout: bool = True
) -> Predictor:
    """Which version answers: the pinned one, else the rollout's choice for this caller.

    Unpinned calls follow the model's rollout (canary, sticky per key / JWT user) unless
    `follow_rollout` is off (batch jobs use the default). A deprecated version's Deprecation /
    Sunset headers go on `meter.headers`, which every transport sends; a retired one is 404.
    """
    unpinned = version is None
    if unpinned and follow_rollout:
        version = rollout.choose_version(name, caller_id=rollout.caller_id(meter.principal))
    predictor = get_predictor(name, version)
    meter.model = predictor.model_name
    meter.version = predictor.version
    meter.unpinned = unpinned and follow_rollout
    if predictor.lifecycle_headers:
        meter.headers.update(predictor.lifecycle_headers)
    return predictor


def model_for(
    meter: RequestMeter,
    name: str,
    version: str | None = None,
    *,
    scope: str = PREDICT,
    follow_rollout: bool = True,
) -> Predictor:
    """`authorize` then `resolve`: the predictor this caller may use for `scope`."""
    authorize(meter, scope=scope, model=name)
    return resolve(meter, name, version, follow_rollout=follow_rollout)


def validate(meter: RequestMeter, predictor: Predictor, instances: Any) -> list[list]:
    """Columns for `predictor` from instances (objects or arrays), within the plan's batch size."""
    return validate_instances(
        predictor.schema, instances, max_instances=meter.principal.plan.max_instances
    )


def validate_matrix(meter: RequestMeter, predictor: Predictor, matrix) -> Any:
    """Columns from a numeric `[N, F]` array when it is entirely valid, else None (then
    `validate` the instances, which names each error)."""
    return validate_matrix_columns(
        predictor.schema, matrix, max_instances=meter.principal.plan.max_instances
    )


def infer(
    meter: RequestMeter,
    predictor: Predictor,
    columns: list[list],
    *,
    probabilities: bool = False,
    timeout: float | None = None,
) -> Prediction:
    """Admit one token + n quota units, predict, and refund if the prediction fails here."""
    rows = len(columns[0]) if len(columns) else 0
    meter.admit(rows)
    try:
        result = predictor.predict(columns, probabilities=probabilities, timeout=timeout)
    except BaseException:
        meter.refund()
        raise
    meter.predictions = rows
    PREDICTIONS.labels(predictor.model_name).inc(rows)
    if meter.unpinned:
        _mirror_to_shadow(predictor, columns, result)
    return result


def _mirror_to_shadow(predictor: Predictor, columns: list[list], result: Prediction) -> None:
    """Hand an unpinned call to the rollout's shadow when it samples this one (never blocks,
    never charged: predictions.shadow scores it off the request path)."""
    target = rollout.shadow_for(predictor.model_name, predictor.version)
    if target is not None:
        shadow.mirror(
            model=predictor.model_name,
            version=predictor.version,
            shadow=target,
            columns=columns,
            predictions=result.predictions,
        )


def submit_job(
    meter: RequestMeter,
    *,
    model_name: str,
    version: str | None = None,
    upload=None,
    instances: list | None = None,
):
    """A batch job (quota for every row at submission); the meter counts its rows."""
    from predictions.jobs.services import submit_batch_job

    predictor = model_for(meter, model_name, version, scope=JOBS, follow_rollout=False)
    job = submit_batch_job(
        principal=meter.principal,
        model_name=predictor.model_name,
        version=predictor.version,
        upload=upload,
        instances=instances,
    )
    meter.predictions = job.rows_total
    return job
