# The galleon operator image: `make image` (needs Docker or a compatible builder).
# Two stages: the first installs galleon and its pinned dependencies into a
# virtualenv; the final image is the slim Python base, that virtualenv and a
# non-root user, without pip caches or build tools. Only pyproject.toml, README.md
# and operator/ are copied in: the test kit (tests/kit/, its own distribution) and
# the tests never reach the image (.dockerignore excludes tests/ as well).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/galleon && /opt/galleon/bin/pip install --upgrade pip==25.3
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/galleon/bin/pip install . \
    && /opt/galleon/bin/pip uninstall --yes pip setuptools \
    && find /opt/galleon -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="galleon-operator" \
      org.opencontainers.image.description="Shared image gallery and batched OS upgrades of scale sets for Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/galleon /opt/galleon
ENV PATH=/opt/galleon/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The chart runs it read-only, as this user, with every capability dropped.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["galleon-operator"]
CMD ["--all-namespaces"]
