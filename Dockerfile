# One image for every role: `carillon api`, `carillon worker`, `carillon scheduler`,
# `carillon db upgrade` (or `carillon serve` for a single-container trial).
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p app channels && touch app/__init__.py channels/__init__.py \
    && pip install . && pip uninstall -y carillon

COPY app ./app
COPY channels ./channels
COPY migrations ./migrations
COPY journeys ./journeys
RUN pip install --no-deps -e . \
    && useradd --system --uid 10001 --home /app carillon \
    && chown -R carillon /app

USER carillon
ENV CARILLON_JOURNEYS_DIR=/app/journeys \
    CARILLON_DATABASE_URL=sqlite:////app/data/carillon.db
RUN mkdir -p /app/data
EXPOSE 8000

ENTRYPOINT ["carillon"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
