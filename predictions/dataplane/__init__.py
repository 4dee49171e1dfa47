"""The one data plane: every front door (REST v1, V2 REST, KServe V1, jobs, gRPC) calls this.

A call, whatever its transport, goes through the same steps on one `keys.meter.RequestMeter`:

    meter = start_call(protocol=..., ...)          # or keys.views.MeteredAPIView for REST
    authenticate(meter, api_key=..., authorization=...)   401 / 403 subscription_inactive
    authorize(meter, scope=PREDICT, model=name)    plan coverage, then the key's restrictions
    predictor = resolve(meter, name, version)      rollout: canary, shadow, Deprecation/Sunset
    columns = validate(meter, predictor, instances)   (or validate_matrix: binary fast path)
    result = infer(meter, predictor, columns, probabilities=...)   admit, predict, refund
    headers, refused = meter.settle()              RateLimit headers + meter.headers
    usage.calls.finish_call(meter)                 usage record + request counter

Transports only translate: they read credentials and the input from their wire format, call
these functions, and write the answer (or the error, mapped from the same exceptions) back.
"""

from predictions.dataplane.core import (
    JOBS,
    MODELS_READ,
    PREDICT,
    authenticate,
    authorize,
    check_key_restrictions,
    infer,
    model_for,
    resolve,
    start_call,
    submit_job,
    validate,
    validate_matrix,
)

__all__ = [
    "JOBS",
    "MODELS_READ",
    "PREDICT",
    "authenticate",
    "authorize",
    "check_key_restrictions",
    "infer",
    "model_for",
    "resolve",
    "start_call",
    "submit_job",
    "validate",
    "validate_matrix",
]
