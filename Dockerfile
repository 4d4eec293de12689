# devicehub: one static-ish binary on a slim Debian base.
#   docker build -t devicehub .
#   docker run -p 8080:8080 -v devicehub-data:/data devicehub
# Every setting of the README works as an environment variable (-e DATABASE_URL=postgres://…).

FROM rust:1.95-slim-bookworm AS builder
# pq-sys builds libpq from source but links the system OpenSSL. Packages are not pinned to
# versions: bookworm's stay compatible, and a pin breaks the build at the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Build the dependencies once, from the manifests alone, so code changes rebuild only our crate.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src tests/api migrations \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs tests/api/main.rs \
 && cargo build --release --locked --bin devicehub \
 && rm -rf src tests
COPY . .
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin devicehub

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin devicehub \
 && mkdir -p /data && chown devicehub:devicehub /data
# Migrations and templates are compiled into the binary.
COPY --from=builder /src/target/release/devicehub /usr/local/bin/devicehub
ENV DEVICEHUB_DATA_DIR=/data \
    DEVICEHUB_LISTEN=0.0.0.0:8080 \
    DEVICEHUB_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
# numeric, so a host (or Kubernetes' runAsNonRoot) can tell it is not root
USER 10001:10001
WORKDIR /data
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["devicehub", "healthcheck"]
ENTRYPOINT ["devicehub"]
CMD ["serve"]
