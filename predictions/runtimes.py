"""The two ways a version is served: an ONNX Runtime session or the scikit-learn estimator.

Both take validated columns (one sequence per feature, schema order) and return
`(predictions ndarray, probabilities ndarray | None)`. Both honour a deadline: ONNX runs are
terminated through `RunOptions.terminate` by one shared watchdog thread; estimator calls run
on a small thread pool so the request is answered (504) when the deadline passes.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np
import onnxruntime as ort

from predictions.errors import PredictionTimeout

Columns = list  # one sequence per feature, in schema order


class Watchdog:
    """One daemon thread that sets `terminate` on ONNX runs whose deadline has passed."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, ort.RunOptions]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, options: ort.RunOptions, deadline: float) -> None:
        with self._cond:
            entry = (deadline, next(self._counter), options)
            heapq.heappush(self._heap, entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="onnx-watchdog")
                self._thread.daemon = True
                self._thread.start()
            if self._heap[0] is entry:  # else the thread already sleeps until an earlier one
                self._cond.notify()

    def _loop(self) -> None:
        with self._cond:
            while True:
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, _, options = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                options.terminate = True  # a finished run ignores it


WATCHDOG = Watchdog()
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sklearn-predict")


def session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return options


class OnnxRunner:
    """An ONNX Runtime session fed one [N, F] float matrix or one [N, 1] input per feature."""

    def __init__(self, onnx_bytes: bytes, features: list[dict], task: str, layout: str) -> None:
        self.session = ort.InferenceSession(
            onnx_bytes, session_options(), providers=["CPUExecutionProvider"]
        )
        self.matrix_input = self.session.get_inputs()[0].name if layout == "matrix" else None
        self.features = features
        self.classifier = task == "classification"
        self.output_names = [o.name for o in self.session.get_outputs()][
            : 2 if self.classifier else 1
        ]

    def feeds(self, columns: Columns) -> dict[str, np.ndarray]:
        if self.matrix_input is not None:
            matrix = np.array(columns, dtype=np.float32).T
            return {self.matrix_input: np.ascontiguousarray(matrix)}
        feeds = {}
        for feature, column in zip(self.features, columns, strict=True):
            dtype = object if feature["type"] == "category" else np.float32
            feeds[feature["name"]] = np.asarray(column, dtype=dtype).reshape(-1, 1)
        return feeds

    def run(self, columns: Columns, deadline: float | None = None) -> tuple[np.ndarray, Any]:
        options = ort.RunOptions()
        if deadline is not None:
            WATCHDOG.watch(options, deadline)
        try:
            outputs = self.session.run(self.output_names, self.feeds(columns), options)
        except Exception as exc:
            if options.terminate:
                raise PredictionTimeout("The prediction ran past the time limit.") from exc
            raise
        if self.classifier:
            return outputs[0].ravel(), outputs[1]
        return outputs[0].ravel(), None


class SklearnRunner:
    """The fitted estimator itself (n_jobs=1), for versions ONNX could not serve faithfully."""

    def __init__(self, estimator: Any, features: list[dict], task: str) -> None:
        params = estimator.get_params(deep=True)
        jobs = {key: 1 for key in params if key == "n_jobs" or key.endswith("__n_jobs")}
        if jobs:
            estimator.set_params(**jobs)
        self.estimator = estimator
        self.features = features
        self.classifier = task == "classification"
        self.named = getattr(estimator, "feature_names_in_", None) is not None

    def frame(self, columns: Columns) -> Any:
        if self.named:
            import pandas as pd  # only this runtime needs pandas

            return pd.DataFrame(
                {f["name"]: column for f, column in zip(self.features, columns, strict=True)}
            )
        numeric = all(f["type"] == "number" for f in self.features)
        return np.array(columns, dtype=np.float64 if numeric else object).T

    def _predict(self, columns: Columns) -> tuple[np.ndarray, Any]:
        frame = self.frame(columns)
        values = np.asarray(self.estimator.predict(frame)).ravel()
        proba = None
        if self.classifier and hasattr(self.estimator, "predict_proba"):
            proba = np.asarray(self.estimator.predict_proba(frame))
        return values, proba

    def run(self, columns: Columns, deadline: float | None = None) -> tuple[np.ndarray, Any]:
        if deadline is None:
            return self._predict(columns)
        future = _POOL.submit(self._predict, columns)
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout as exc:
            future.cancel()
            raise PredictionTimeout("The prediction ran past the time limit.") from exc
