"""The part every prediction view shares: plan coverage, admit/refund, usage and metrics."""

from __future__ import annotations

import time

from rest_framework.exceptions import PermissionDenied

from keys.restrictions import check_request
from keys.views import MeteredAPIView
from mlapi.metrics import PREDICT_LATENCY, PREDICTIONS
from predictions.inference import Prediction, Predictor, get_predictor


class PredictionAPIView(MeteredAPIView):
    """A metered data-plane view that serves predictions (or model metadata) for one model."""

    def initial(self, request, *args, **kwargs) -> None:
        self._started = time.perf_counter()
        super().initial(request, *args, **kwargs)

    def predictor_for(self, request, name: str, version: str | None = None) -> Predictor:
        """The predictor, once the caller's plan is known to cover the model (else 403)."""
        scope = "predict" if request.method == "POST" else "models:read"  # §10 key restrictions
        check_request(request, scope=scope, model=name)
        if not request.auth.plan.covers(name):
            raise PermissionDenied(f"Your plan does not include the model {name!r}.")
        predictor = get_predictor(name, version)
        request._request.mlapi_model = predictor.model_name
        request._request.mlapi_version = predictor.version
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
        return result

    def finalize_response(self, request, response, *args, **kwargs):
        # mlapi_predict_requests_total is counted by usage.middleware for every data-plane
        # request; this adds the per-model latency of requests that reached a model.
        response = super().finalize_response(request, response, *args, **kwargs)
        model = getattr(request._request, "mlapi_model", None)
        started = getattr(self, "_started", None)
        if model is not None and request.method == "POST" and started is not None:
            PREDICT_LATENCY.labels(model).observe(time.perf_counter() - started)
        return response
