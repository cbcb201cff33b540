# syntax=docker/dockerfile:1
# Switchboard container image (docs/OPERATIONS.md, "Container image").
#   docker build -t switchboard --build-arg VERSION=$(git describe --tags --always) .
#   docker run --network host -v /etc/switchboard:/etc/switchboard:ro -v /var/lib/switchboard:/var/lib/switchboard \
#     -e DATABASE_URL=postgres://... switchboard serve --config /etc/switchboard/switchboard.yaml
# Use host networking: the RTP port range cannot be published port by port.

# ---- build: a static binary from the module's own packages ----
# Go 1.26.10 or later: the November standard-library security fixes (go.mod's toolchain line).
# The image is pinned by tag, NOT by digest: no digest of golang:1.26.10-bookworm could be
# determined where this file was written (no registry access). Pin it before building for
# production: `docker buildx imagetools inspect golang:1.26.10-bookworm` prints the digest to
# add as golang:1.26.10-bookworm@sha256:…; the same goes for debian:bookworm-slim below.
# GOTOOLCHAIN=auto makes the go command honour go.mod's toolchain line even if the tag is older.
FROM golang:1.26.10-bookworm AS build
ENV GOTOOLCHAIN=auto
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download && go version
# Only the packages the binary is built from (nothing of .data/, bin/, tests' node_modules).
COPY cmd/ cmd/
COPY config/ config/
COPY internal/ internal/
COPY ivr/ ivr/
COPY media/ media/
COPY migrations/ migrations/
COPY recordings/ recordings/
COPY sip/ sip/
COPY ticketing/ ticketing/
COPY web/ web/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/switchboard ./cmd/switchboard

# ---- run: Debian slim, an unprivileged user, the state under /var/lib/switchboard ----
# Pinned by tag only (see above): add @sha256:… from `docker buildx imagetools inspect`.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid switchboard --home-dir /var/lib/switchboard --shell /usr/sbin/nologin switchboard \
 && install -d -o switchboard -g switchboard -m 0750 /var/lib/switchboard /etc/switchboard
COPY --from=build /out/switchboard /usr/local/bin/switchboard
COPY deploy/dev/switchboard.yaml /etc/switchboard/switchboard.example.yaml
USER switchboard:switchboard
WORKDIR /var/lib/switchboard
VOLUME ["/var/lib/switchboard"]
# HTTP (softphone, API, /metrics, /healthz, /readyz), SIP UDP/TCP and TLS; RTP is rtp.port_min..port_max/udp.
EXPOSE 8080/tcp 5060/udp 5060/tcp 5061/tcp
# SIGTERM drains: give `docker stop -t` more than shutdown_grace.
STOPSIGNAL SIGTERM
# No HEALTHCHECK: the image has no HTTP client; orchestrators probe /healthz and /readyz.
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve", "--config", "/etc/switchboard/switchboard.yaml"]
