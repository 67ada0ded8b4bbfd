# One Spread app server (see compose.yaml and the README's "Team deployment").
FROM python:3.11-slim

# make for the install, libgomp1 for the embedded model (llama.cpp).
RUN apt-get update \
    && apt-get install -y --no-install-recommends make libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .
# Exactly what requirements.lock lists, each file checked against its sha256, then Spread.
RUN make install PYTHON=python3.11

# Secrets (.streamlit/secrets.toml) are mounted at run time, never built in.
EXPOSE 8501
CMD [".venv/bin/streamlit", "run", "app.py", "--server.address", "0.0.0.0", "--server.port", "8501"]
