# journey: one image for the worker, the topic creation step and the CLI.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY schemas ./schemas
COPY projections ./projections
COPY streams ./streams
# gcc only for the build of the C replay fold (projections/_fold.c), removed again.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
 && pip install . \
 && python -c "import projections._fold" \
 && apt-get purge -y --auto-remove gcc libc6-dev && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 journey && mkdir /data && chown journey /data

USER journey
ENV JOURNEY_WEB_BIND=0.0.0.0 JOURNEY_WEB_PORT=6066 JOURNEY_DATA_DIR=/data
EXPOSE 6066
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/healthz', timeout=2)"
ENTRYPOINT ["journey"]
CMD ["worker"]
