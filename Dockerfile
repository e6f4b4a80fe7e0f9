# Multi-stage build of smap-identity. Used by docker-compose.yml and the
# Kubernetes manifests (deploy/kubernetes). The context is what .dockerignore
# lets through; scripts/image.sh check assembles the same context from the
# COPY lines below and runs the RUN line's cargo there, offline (scripts/test.sh).
FROM rust:1-bookworm AS build
WORKDIR /src
# Every target Cargo.toml declares ([[bench]], [[test]]) must exist for cargo
# to start; migrations/ and templates/ are embedded at compile time.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
COPY migrations ./migrations
COPY templates ./templates
COPY tests ./tests
COPY src ./src
RUN cargo build --release --locked --bin smap-identity

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 smap \
 && useradd --system --uid 10001 --gid 10001 smap
COPY --from=build /src/target/release/smap-identity /usr/local/bin/smap-identity
# Numeric, so Kubernetes' runAsNonRoot can verify it (deploy/kubernetes).
USER 10001:10001
ENV APP_ENV=production HTTP_HOST=0.0.0.0 HTTP_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:8080/live || exit 1
ENTRYPOINT ["smap-identity"]
CMD ["all"]
