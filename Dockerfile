# Multi-stage build of smap-identity. Used by docker-compose.yml.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
COPY tests ./tests
RUN cargo build --release --locked --bin smap-identity

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 smap
COPY --from=build /src/target/release/smap-identity /usr/local/bin/smap-identity
USER smap
ENV APP_ENV=production HTTP_HOST=0.0.0.0 HTTP_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:8080/live || exit 1
ENTRYPOINT ["smap-identity"]
CMD ["all"]
