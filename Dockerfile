# mlapi image: the same commands as `make run` and CI, one role per container.
#   docker build -t mlapi .
#   docker run mlapi web      (gunicorn)   |   docker run mlapi worker   (Celery worker + beat)
#   docker run mlapi grpc     (the gRPC data plane on MLAPI_GRPC_PORT, default 8001)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLAPI_DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8000 \
    MLAPI_GRPC_PORT=8001

WORKDIR /app
# LightGBM's wheel links the system OpenMP runtime (scikit-learn and XGBoost bundle theirs).
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
RUN useradd --system --uid 1000 mlapi && mkdir -p /data && chown mlapi /data
USER mlapi
# Static files are collected where the settings look for them at run time (STATIC_ROOT is
# $MLAPI_DATA_DIR/staticfiles), as `make run` does; compose's migrate step collects them again
# into the shared volume, so an upgraded image never serves a stale manifest.
RUN DJANGO_DEBUG=0 DJANGO_SECRET_KEY=build-only ALLOWED_HOSTS=build \
    python manage.py collectstatic --noinput --verbosity 0

EXPOSE 8000 8001
ENTRYPOINT ["python", "-m", "mlapi.serve"]
CMD ["web"]
