# The broker image of docker-compose.yml. Installed from the source tree in place (-e): the
# broker reads contracts/ (contexts, schemas, policies) beside its package.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY broker broker
COPY models models
COPY security security
COPY adapters adapters
COPY contracts contracts
RUN pip install --no-cache-dir -e . && useradd --system --uid 10001 cetate \
    && mkdir -p /app/data && chown cetate /app/data
USER cetate
EXPOSE 1026
ENV CETATE_HOST=0.0.0.0 CETATE_PORT=1026
CMD ["cetate", "serve"]
