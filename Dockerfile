# The Flywheel project image: every KFP component (and the CLI) runs in it on a cluster.
#   docker build -t flywheel:0.1.0 .
# torch is pinned to the CPU wheel (pyproject pins torch==2.13.0; the index below serves the CPU build).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    FLYWHEEL_HOME=/var/lib/flywheel

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 flywheel \
    && useradd --system --uid 10001 --gid flywheel --home-dir /home/flywheel --create-home flywheel \
    && mkdir -p /var/lib/flywheel && chown flywheel:flywheel /var/lib/flywheel

WORKDIR /opt/flywheel
# dependencies first (cached layer), then the code
COPY pyproject.toml README.md* ./
RUN mkdir -p flywheel components pipelines serving monitoring streaming \
    && touch flywheel/__init__.py components/__init__.py pipelines/__init__.py \
       serving/__init__.py monitoring/__init__.py streaming/__init__.py \
    && pip install --extra-index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install . \
    && pip uninstall -y flywheel-mlops
COPY flywheel ./flywheel
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
COPY monitoring ./monitoring
COPY streaming ./streaming
COPY feature_repo ./feature_repo
RUN pip install --no-deps . && python -c "import flywheel, components, pipelines, kfp, torch, mlflow"

USER 10001:10001
WORKDIR /home/flywheel
ENTRYPOINT ["flywheel"]
CMD ["--help"]
