"""The part every prediction view shares: plan coverage, admit/refund, usage and metrics."""

from __future__ import annotations

import time

from rest_framework.exceptions import PermissionDenied

from keys.views import MeteredAPIView
from mlapi.metrics import PREDICT_LATENCY, PREDICTIONS
from predictions import rollout, shadow
from predictions.inference import Prediction, Predictor, get_predictor


class PredictionAPIView(MeteredAPIView):
    """A metered data-plane view that serves predictions (or model metadata) for one model."""

    def initial(self, request, *args, **kwargs) -> None:
        self._started = time.perf_counter()
        super().initial(request, *args, **kwargs)

    def predictor_for(self, request, name: str, version: str | None = None) -> Predictor:
        """The predictor, once the caller's plan is known to cover the model (else 403)."""
        if not request.auth.plan.covers(name):
            raise PermissionDenied(f"Your plan does not include the model {name!r}.")
        unpinned = version is None
        if unpinned:  # the rollout decides (default or canary), sticky per key / JWT user
            version = rollout.choose_version(name, caller_id=rollout.caller_id(request.auth))
        predictor = get_predictor(name, version)
        request._request.mlapi_model = predictor.model_name
        request._request.mlapi_version = predictor.version
        request._request.mlapi_lifecycle = predictor.lifecycle_headers
        request._request.mlapi_unpinned = unpinned
        return predictor

    def predict(
        self, request, predictor: Predictor, columns: list[list], *, probabilities: bool
    ) -> Prediction:
        """Admit n units, predict, and give the units back if the prediction fails on our side."""
        rows = len(columns[0]) if columns else 0
        self.admit(request, units=rows)
        try:
            result = predictor.predict(columns, probabilities=probabilities)
        except BaseException:
            self.refund(request)
            raise
        request._request.mlapi_predictions = rows
        PREDICTIONS.labels(predictor.model_name).inc(rows)
        if getattr(request._request, "mlapi_unpinned", False):
            self._mirror(predictor, columns, result)
        return result

    @staticmethod
    def _mirror(predictor: Predictor, columns: list[list], result: Prediction) -> None:
        """Hand the request to the rollout's shadow, if it samples this one (never blocks)."""
        target = rollout.shadow_for(predictor.model_name, predictor.version)
        if target is not None:
            shadow.mirror(
                model=predictor.model_name,
                version=predictor.version,
                shadow=target,
                columns=columns,
                predictions=result.predictions,
            )

    def finalize_response(self, request, response, *args, **kwargs):
        # mlapi_predict_requests_total is counted by usage.middleware for every data-plane
        # request; this adds the per-model latency of requests that reached a model.
        response = super().finalize_response(request, response, *args, **kwargs)
        rollout.add_lifecycle_headers(response, getattr(request._request, "mlapi_lifecycle", None))
        model = getattr(request._request, "mlapi_model", None)
        started = getattr(self, "_started", None)
        if model is not None and request.method == "POST" and started is not None:
            PREDICT_LATENCY.labels(model).observe(time.perf_counter() - started)
        return response
