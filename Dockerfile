# One image for every role: `carillon db upgrade`, `api`, `worker`, `scheduler`, or `serve`
# (the default: the embedded single process, its SQLite file on the /data volume).
#
# BASE is any Debian-family image with `python3` (3.11+): the official python:3.11-slim, or
# Debian bookworm with Debian's python3 (what `make image` makes with mmdebstrap where no
# container registry answers). BUILD_BASE, the same by default, must also carry Python's venv
# module; binutils is installed there when missing. Nothing of the build stage but the
# virtualenv and Carillon's files reaches the final image.
#
# pip reaches PyPI the way the build host does: PIP_INDEX_URL as a build argument, and a CA
# bundle (for networks whose TLS is re-signed by a proxy) as the build secret `pip_ca`, mounted
# for the install steps only and never stored in a layer.
ARG BASE=python:3.11-slim
ARG BUILD_BASE=${BASE}

FROM ${BUILD_BASE} AS build
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_DEFAULT_TIMEOUT=60
ENV PIP_INDEX_URL=${PIP_INDEX_URL} \
    PIP_DEFAULT_TIMEOUT=${PIP_DEFAULT_TIMEOUT} \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN command -v strip >/dev/null \
    || { apt-get update && apt-get install -y --no-install-recommends binutils \
         && rm -rf /var/lib/apt/lists/*; }
RUN python3 -m venv /opt/venv
WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
# Wheels only (no compiler anywhere); their shared objects lose their debug symbols (a third
# of the image otherwise), and their type stubs (.pyi, for type checkers only) go.
COPY pyproject.toml README.md ./
RUN --mount=type=secret,id=pip_ca \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && python3 -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-compile --only-binary=:all: -r /tmp/requirements.txt \
    && find /opt/venv -name '*.so*' -type f -exec strip --strip-unneeded {} + \
    && find /opt/venv -name '*.pyi' -type f -delete

# Carillon itself, editable so that it finds migrations/ beside its code. The running container
# may not write (read-only root filesystem), so bytecode is made here: for Carillon's own code,
# and for the modules its roles import (compiling them all would double the image).
COPY app ./app
COPY channels ./channels
COPY migrations ./migrations
COPY journeys ./journeys
COPY segments ./segments
COPY broadcasts ./broadcasts
RUN --mount=type=secret,id=pip_ca \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && /opt/venv/bin/pip install --no-compile --no-deps -e . \
    && /opt/venv/bin/pip uninstall -q -y pip setuptools \
    && rm -rf /app/*.egg-info \
    && PYTHONDONTWRITEBYTECODE= /opt/venv/bin/python -c "import app.cli, app.main, app.tasks, app.embedded, app.migrate, alembic.command, dramatiq.cli, uvicorn.main, uvicorn.loops.uvloop, uvicorn.protocols.http.httptools_impl, uvicorn.lifespan.on, twilio.rest.api.v2010.account.message, inscriptis" \
    && /opt/venv/bin/python -m compileall -q app channels migrations


FROM ${BASE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CARILLON_JOURNEYS_DIR=/app/journeys \
    CARILLON_SEGMENTS_DIR=/app/segments \
    CARILLON_BROADCASTS_DIR=/app/broadcasts \
    CARILLON_DATABASE_URL=sqlite:////data/carillon.db
# The user is written in directly: a base need not carry useradd.
RUN echo 'carillon:x:10001:10001:Carillon:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'carillon:x:10001:' >> /etc/group \
    && mkdir /data && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
# The embedded default's SQLite file (and the secret key it makes on first start).
VOLUME /data
USER 10001:10001
EXPOSE 8000
# For the HTTP roles (`serve`, `api`) on port 8000; compose.yaml gives each role its own.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["carillon"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
