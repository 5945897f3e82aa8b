# azsnap operator image: `docker build -t <registry>/azsnap:<version> .`
# Stage 1 builds wheels for azsnap and its dependencies; stage 2 installs them into a clean virtualenv on a
# slim base, with no compiler, no pip cache and no source tree, and runs as an unprivileged user.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
# Compiled dependencies (pydantic-core, aiohttp, yarl) come as manylinux wheels: no compiler needed here either.
RUN python -m pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="azsnap" \
      org.opencontainers.image.description="Kubernetes operator for declarative Azure managed-disk snapshots" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/azsnap/bin:$PATH \
    HOME=/tmp
# Time zones come from the `tzdata` Python package (a dependency), so the image needs no OS tzdata.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/azsnap \
 && /opt/azsnap/bin/pip install --no-index --find-links=/wheels azsnap \
 && /opt/azsnap/bin/pip uninstall --yes pip \
 && groupadd --gid 65532 azsnap \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin azsnap
USER 65532:65532
# 8080: Prometheus metrics; 8081: kopf's liveness endpoint (/healthz).
EXPOSE 8080 8081
ENTRYPOINT ["azsnap"]
CMD ["run"]
