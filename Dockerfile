# syntax=docker/dockerfile:1
#
# The commerce service as a container: `docker build -t commerce .`
# Configuration comes only from environment variables (README.md, "Configuration");
# docs/deploy.md walks through running it with docker compose and on Kubernetes.

ARG PYTHON_VERSION=3.12

# --- builder: wheels of the project and of every dependency --------------------------------
# Every dependency publishes wheels for Linux (psycopg's binary build included), so no
# compiler is installed here either; one without a wheel fails the build rather than
# pulling a toolchain into the image.
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY pyproject.toml README.md ./
COPY core/ core/
COPY adapters/ adapters/
COPY plugins/ plugins/
COPY entrypoints/ entrypoints/
# The otlp extra: the OTLP exporter, for OTEL_TRACES_EXPORTER=otlp (docs/observability.md).
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels ".[otlp]"

# --- the image that runs: the wheels installed, nothing to build with ---------------------
FROM python:${PYTHON_VERSION}-slim-bookworm

LABEL org.opencontainers.image.title="commerce" \
      org.opencontainers.image.description="Inventory service for retail store chains" \
      org.opencontainers.image.licenses="MIT"

# A fixed, numeric user: Kubernetes' runAsNonRoot can check a number, not a name.
# /var/lib/commerce is the one folder the service writes to (a SQLite file, if used; mount
# a volume there). The rest can be read-only, given a tmpfs on /tmp, where waitress spools
# large request and response bodies.
RUN groupadd --system --gid 10001 commerce \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/commerce --shell /usr/sbin/nologin commerce \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/commerce

# Only wheels, only from the builder: the wheel house holds exactly the project and what it
# resolved to there, and --no-index keeps the registry out of this stage. The bind mount
# leaves no copy of the wheels in a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --disable-pip-version-check \
        --root-user-action=ignore /wheels/*.whl

# The bytecode was compiled when the wheels were installed; nothing is written at run time.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    COMMERCE_DATABASE_URL=sqlite:////var/lib/commerce/commerce.db \
    COMMERCE_LOG_FORMAT=json

WORKDIR /var/lib/commerce
USER 10001:10001
EXPOSE 8000

# The slim image has no curl: the standard library asks /healthz (liveness: the process
# answers). Any answer but 200, or none within the timeout, is a failure.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]

# The exec form: `commerce` is PID 1 and gets SIGTERM itself, which starts its drain.
CMD ["commerce", "serve", "--host", "0.0.0.0", "--port", "8000"]
