# mt-cli in a container: `mt-cli` is the entrypoint, models live in the /models volume.
#
#   docker build -t mt-cli .                      # or: podman build -t mt-cli .
#   docker run --rm -v "$PWD/runs:/models" mt-cli translate -m /models/my-en-de < test.en > test.de
#   docker run --rm -p 8080:8080 -v "$PWD/runs:/models:ro" mt-cli \
#       serve -m /models/my-en-de --host 0.0.0.0 --allowed-hosts '*'
#
# Stage 1 builds mt-cli's wheel from this source tree; stage 2 installs that wheel (with the
# serve and sentences extras) into a fresh slim Python and runs it as a non-root user.
# BASE may name another Python 3.11 image (a mirror, or one built from distribution packages).
ARG BASE=python:3.11-slim

FROM ${BASE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mt_cli ./mt_cli
RUN python -m pip install --no-cache-dir --disable-pip-version-check "setuptools>=68" wheel \
 && python -m pip wheel --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation \
        -w /dist .

FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=3
COPY --from=wheel /dist /tmp/dist
RUN wheel="$(ls /tmp/dist/mt_cli-*.whl)" \
 && python -m pip install "${wheel}[serve,sentences]" \
 && rm -rf /tmp/dist \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin mt \
 && mkdir -p /models /work \
 && chown mt:mt /models /work
USER mt
WORKDIR /work
VOLUME ["/models"]
EXPOSE 8080
ENTRYPOINT ["mt-cli"]
CMD ["--help"]
