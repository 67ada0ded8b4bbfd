# One Spread app server (see compose.yaml and docs/deployment.md).
FROM python:3.11-slim

# libgomp1 for the embedded model (llama.cpp).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# The app runs as this user, never as root.
RUN useradd --create-home --uid 10001 spread
WORKDIR /app

# Dependencies first, from the lock alone: an edit of the source reuses this layer instead of
# reinstalling about 1 GB. Exactly what requirements.lock lists, each file checked against its sha256.
COPY requirements.lock ./
RUN python3.11 -m venv .venv \
    && .venv/bin/pip install --quiet --no-cache-dir --require-hashes --no-deps -r requirements.lock

# Then Spread itself (as `make install` does).
COPY . .
RUN .venv/bin/pip install --quiet --no-cache-dir --no-deps --no-build-isolation -e . \
    && mkdir -p data && chown spread:spread data

USER spread
# Secrets are never built in: deploy/entrypoint.py writes this file at start, from an
# optional mounted folder or SPREAD_AUTH_* variables; provider keys come from the environment.
ENV SPREAD_SECRETS=/home/spread/.streamlit/secrets.toml
EXPOSE 8501
ENTRYPOINT [".venv/bin/python", "deploy/entrypoint.py"]
CMD [".venv/bin/streamlit", "run", "app.py", "--server.address", "0.0.0.0", "--server.port", "8501"]
