"""The REST adapters' base: a metered view whose steps are predictions.dataplane's."""

from __future__ import annotations

import time

from keys.views import MeteredAPIView
from mlapi.metrics import PREDICT_LATENCY
from predictions import dataplane
from predictions.inference import Prediction, Predictor


class PredictionAPIView(MeteredAPIView):
    """A metered data-plane view that serves predictions (or model metadata) for one model.

    `scope` is what the view does, for key restrictions: `predict` unless it only reads
    metadata (`models:read`).
    """

    scope: str = dataplane.PREDICT

    def initial(self, request, *args, **kwargs) -> None:
        self._started = time.perf_counter()
        super().initial(request, *args, **kwargs)

    def predictor_for(self, request, name: str, version: str | None = None) -> Predictor:
        """The predictor, once the caller may use the model (plan, key restrictions; else 403)."""
        return dataplane.model_for(self.meter, name, version, scope=self.scope)

    def validate(self, predictor: Predictor, instances) -> list[list]:
        return dataplane.validate(self.meter, predictor, instances)

    def predict(
        self, request, predictor: Predictor, columns: list[list], *, probabilities: bool
    ) -> Prediction:
        """Admit n units, predict, and give the units back if the prediction fails on our side."""
        return dataplane.infer(self.meter, predictor, columns, probabilities=probabilities)

    def finalize_response(self, request, response, *args, **kwargs):
        # mlapi_predict_requests_total is counted by usage.calls for every data-plane call;
        # this adds the per-model latency of requests that reached a model.
        response = super().finalize_response(request, response, *args, **kwargs)
        meter, started = self.meter, getattr(self, "_started", None)
        if meter is not None and meter.model and request.method == "POST" and started:
            PREDICT_LATENCY.labels(meter.model).observe(time.perf_counter() - started)
        return response
