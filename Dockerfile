# Worker and API image: one image, two commands (see docker-compose.yml).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY skyline skyline
COPY workflows workflows
COPY activities activities
COPY api api
COPY worker worker
COPY stack stack
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 skyline
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER skyline
WORKDIR /home/skyline
CMD ["python", "-m", "worker"]
