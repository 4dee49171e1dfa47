"""The seed-001 design, rebuilt as the benchmark's baseline (case c of `make bench`).

FastAPI + a JWT bearer token (PyJWT, HS256) + a pydantic input model + a scikit-learn
RandomForestClassifier trained on Iris at start-up, with the seed's in-memory per-IP rate-limit
middleware. Served by `uvicorn --workers 2` exactly as the seed's Dockerfile does (plain uvicorn).

Kept faithful on purpose, including what makes it slow (one forest call per row, a sync
endpoint run in the thread pool, a limiter that rebuilds its whole log on every request); the
only change is that the limit is high enough not to refuse benchmark traffic
(`BASELINE_THROTTLE_PER_MINUTE`, default effectively unlimited). It has no database, no quota
and no usage records: it is the design users bypass the gateway with, not a managed API.

Run by hand: `uvicorn --app-dir bench baseline_app:app --workers 2 --port 8001`, then
`curl -X POST :8001/token` and `curl -H "Authorization: Bearer $T" -d '{"data":[5.1,3.5,1.4,0.2]}'
-H 'Content-Type: application/json' :8001/predict`.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel, field_validator
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from starlette.middleware.base import BaseHTTPMiddleware

SECRET_KEY = os.environ.get("BASELINE_SECRET_KEY", "baseline-secret-key-for-the-benchmark-0123")
ALGORITHM = "HS256"
ACCESS_TOKEN_EXPIRE_MINUTES = 30
THROTTLE_PER_MINUTE = int(os.environ.get("BASELINE_THROTTLE_PER_MINUTE", str(10**9)))


def train_model() -> RandomForestClassifier:
    """The seed's model: a default RandomForestClassifier (100 trees) fitted on Iris."""
    iris = load_iris()
    clf = RandomForestClassifier(random_state=0)
    clf.fit(iris.data, iris.target)
    return clf


model = train_model()


def make_prediction(data: list[float]) -> int:
    """One row through the forest, as the seed does it."""
    arr = np.array(data).reshape(1, -1)
    return int(model.predict(arr)[0])


class PredictionInput(BaseModel):
    """The seed's input: exactly four floats."""

    data: list[float]

    @field_validator("data")
    @classmethod
    def check_length(cls, v: list[float]) -> list[float]:
        if len(v) != 4:
            raise ValueError("data must contain exactly 4 float values")
        return v


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


def create_access_token(data: dict, expires_delta: timedelta | None = None) -> str:
    expire = datetime.now(UTC) + (expires_delta or timedelta(minutes=15))
    return jwt.encode({**data, "exp": expire}, SECRET_KEY, algorithm=ALGORITHM)


def verify_token(token: Annotated[str, Depends(oauth2_scheme)]) -> dict:
    try:
        return jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM])
    except jwt.PyJWTError as exc:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED, detail="Invalid token"
        ) from exc


class RateLimitMiddleware(BaseHTTPMiddleware):
    """The seed's limiter: per-IP timestamps of the last 60 s, in one process's memory."""

    def __init__(self, app, throttle_rate: int = 60):
        super().__init__(app)
        self.throttle_rate = throttle_rate
        self.request_log: dict[str, list[float]] = {}

    async def dispatch(self, request: Request, call_next):
        client_ip = request.client.host if request.client else "unknown"
        now = time.time()
        self.request_log = {
            ip: [ts for ts in times if ts > now - 60] for ip, times in self.request_log.items()
        }
        history = self.request_log.get(client_ip, [])
        if len(history) >= self.throttle_rate:
            raise HTTPException(status_code=429, detail="Too many requests")
        history.append(now)
        self.request_log[client_ip] = history
        return await call_next(request)


app = FastAPI()
app.add_middleware(RateLimitMiddleware, throttle_rate=THROTTLE_PER_MINUTE)


@app.get("/")
def root() -> dict:
    return {"message": "secure ML API baseline"}


@app.post("/token")
def login() -> dict:
    token = create_access_token(
        data={"sub": "user"}, expires_delta=timedelta(minutes=ACCESS_TOKEN_EXPIRE_MINUTES)
    )
    return {"access_token": token, "token_type": "bearer"}


@app.post("/predict")
def predict(input_data: PredictionInput, token: Annotated[dict, Depends(verify_token)]) -> dict:
    return {"prediction": make_prediction(input_data.data)}
