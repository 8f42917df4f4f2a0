# One image for every gridedge service in docker-compose.yml (ingest, gateway + simulators).
# Build: docker build -t gridedge .   Run: docker run --rm gridedge --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/gridedge
COPY pyproject.toml README.md ./
COPY protocols/ protocols/
COPY gateway/ gateway/
COPY ingest/ ingest/
COPY firmware_sim/ firmware_sim/
COPY gridedge/ gridedge/
RUN pip install --no-cache-dir . \
    && useradd --system --create-home --home-dir /var/lib/gridedge --groups dialout gridedge
COPY examples/ /opt/gridedge/examples/
COPY deploy/compose/gateway-sim.sh /usr/local/bin/gateway-sim
USER gridedge
WORKDIR /var/lib/gridedge
ENTRYPOINT ["gridedge"]
CMD ["--help"]
