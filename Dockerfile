# syntax=docker/dockerfile:1
# journey: one image for the worker, the topic creation step and the CLI.
#
# Two stages. `build` has a C compiler and turns the source into wheels: journey's own,
# with the compiled replay fold (projections/_fold.c) inside, and one for every
# dependency (any that PyPI ships only as source is compiled here too). The final stage
# installs those wheels offline, without a compiler, and holds no source tree: its check
# imports the installed package, so it proves the image's own fold was built, not a
# host's `.so` that slipped into the build context (tests/deploy/test_image.py runs these
# steps on a clean export of HEAD).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY schemas ./schemas
COPY projections ./projections
COPY streams ./streams
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 10001 journey && useradd --create-home --uid 10001 --gid 10001 journey \
 && mkdir /data && chown 10001:10001 /data
WORKDIR /home/journey
# The wheels are mounted for this step only, so they take no layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels journey \
 && python -c "import projections._fold"

USER 10001:10001
ENV JOURNEY_WEB_BIND=0.0.0.0 JOURNEY_WEB_PORT=6066 JOURNEY_DATA_DIR=/data
EXPOSE 6066
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/healthz', timeout=2)"
ENTRYPOINT ["journey"]
CMD ["worker"]
