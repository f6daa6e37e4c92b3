# The Flywheel project image: one image, one entry point (`flywheel`), used by the KFP
# components, the Bytewax dataflow, the model server, the drift job and the retrain trigger.
#
#   make image                                   # docker build -t flywheel:0.1.0 .
#   docker build --build-arg BASE_IMAGE=my/python:3.11 -t flywheel:0.1.0 .
#
# The base must be a Debian-like image with python3.11, its venv module and apt (the official
# python slim image is; so is a debootstrapped bookworm root with python3-venv, see docs/image.md).
# torch is installed first, ==2.13.0, from the CPU index (TORCH_PIP_ARGS; a build without that
# index passes e.g. "--find-links http://127.0.0.1:PORT/" serving the wheel; deps from PyPI).
ARG BASE_IMAGE=python:3.11.14-slim-bookworm

# ---- build: a virtualenv with the pinned dependencies, then the project itself --------------
FROM ${BASE_IMAGE} AS build
ARG TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# extra pip options for the dependencies, e.g. "--index-url https://pypi.internal/simple"
ARG PIP_EXTRA_ARGS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/flywheel/venv/bin:$PATH
RUN python3 -m venv /opt/flywheel/venv \
    && pip install ${PIP_EXTRA_ARGS} --upgrade pip \
    && pip install ${TORCH_PIP_ARGS} "torch==2.13.0+cpu"
WORKDIR /src
# dependencies first (a cached layer while pyproject.toml is unchanged; README.md is a stub here)
COPY pyproject.toml ./
RUN mkdir -p flywheel components pipelines serving monitoring streaming \
    && touch README.md flywheel/__init__.py components/__init__.py pipelines/__init__.py \
       serving/__init__.py monitoring/__init__.py streaming/__init__.py \
    && pip install ${PIP_EXTRA_ARGS} ".[cluster]" \
    && pip uninstall -y flywheel-mlops \
    && rm -rf flywheel components pipelines serving monitoring streaming
# the packages themselves (.dockerignore lets only the project's folders in)
COPY . ./
# (a fresh build/: the dependency layer left stub packages in setuptools' build folder)
RUN rm -rf build *.egg-info && pip install --no-deps . && pip check

# ---- runtime: the virtualenv and the Feast repo, a non-root user, no compilers -------------
# (a headless JRE for PySpark: `flywheel features backfill` runs its Spark driver in this image)
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="flywheel" \
      org.opencontainers.image.description="Flywheel MLOps stack: CLI, KFP components, stream, serving, monitoring" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
    && mkdir -p /usr/share/man/man1 \
    && apt-get install -y --no-install-recommends libgomp1 ca-certificates openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 flywheel \
    && useradd --system --uid 10001 --gid flywheel --home-dir /home/flywheel --create-home flywheel \
    && mkdir -p /var/lib/flywheel && chown flywheel:flywheel /var/lib/flywheel
COPY --from=build /opt/flywheel/venv /opt/flywheel/venv
COPY feature_repo /opt/flywheel/feature_repo
ENV PATH=/opt/flywheel/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    FLYWHEEL_HOME=/var/lib/flywheel \
    FLYWHEEL_FEATURE_REPO=/opt/flywheel/feature_repo
RUN flywheel --help > /dev/null \
    && python3 -c "import flywheel, components, pipelines, streaming, monitoring, kfp, kserve, torch, mlflow, feast"
USER 10001:10001
WORKDIR /home/flywheel
ENTRYPOINT ["flywheel"]
CMD ["--help"]
