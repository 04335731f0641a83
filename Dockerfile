# The broker image: the package, its contracts, and the embedded SQLite store under /data.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY broker broker
COPY adapters adapters
COPY models models
COPY security security
COPY contracts contracts
RUN pip install --no-cache-dir . && mkdir -p /data
ENV CETATE_HOST=0.0.0.0 CETATE_PORT=1026 CETATE_STORE=sqlite:////data/cetate.db
EXPOSE 1026
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:1026/health').status == 200 else 1)"
CMD ["cetate", "serve"]
