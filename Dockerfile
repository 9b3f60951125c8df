# The streamproc CLI: `docker run IMAGE worker --agent execution` (see docker-compose.yml).
# Configure with STREAMPROC_* variables at run time; nothing secret is built in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# README* rather than README.md: the build still works while the repo has no README.
COPY pyproject.toml README* ./
COPY streamproc ./streamproc
COPY agents ./agents
RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info

RUN useradd --create-home --uid 10001 app
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001

ENTRYPOINT ["streamproc"]
CMD ["--help"]
