# Image of the copilot-bridge gateway, CPU only. compose.yaml builds it for both replicas.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The CPU build of torch goes first, so that sentence-transformers finds torch installed and pip
# does not fetch the multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# Only the files the package needs, so the build context's virtual environments stay out.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY cache ./cache
COPY indexer ./indexer
RUN pip install /src

RUN useradd --system --uid 10001 --home-dir /data --no-create-home copilot \
    && mkdir -p /data \
    && chown copilot /data

USER copilot
WORKDIR /data

# Listen on all interfaces of the container; compose.yaml decides which host addresses publish it.
ENV HOME=/data \
    COPILOT_BRIDGE_HOST=0.0.0.0 \
    COPILOT_BRIDGE_PORT=8080 \
    COPILOT_BRIDGE_DATA_DIR=/data

EXPOSE 8080

# /readyz answers 503 until the embedding model has loaded.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4)"]

CMD ["copilot-bridge", "serve"]
