# One image per Mercato program:
#   docker build --build-arg SERVICE=order --build-arg PORT=3003 .
# SERVICE is user, product, order, payment, notification or gateway; PORT the
# port it listens on (the brief's: gateway 3000, user 3001 ... notification
# 3005).
# `make images` builds all six (scripts/build-images.sh).
#
# The base images are named as their publishers publish them; where no
# registry can be reached, scripts/docker-standins.sh makes local stand-ins
# under the same names (docs/deployment.md).

ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
# The module proxy and checksum database the host uses; empty means Go's
# defaults.
ARG GOPROXY
ARG GOSUMDB
WORKDIR /src
# The workspace of the shared module and the services only (not the e2e
# tests, nor the Consul and tool modules): the modules' go.mod and go.sum
# first, so their downloads are a layer of their own.
COPY shared/go.mod shared/go.sum shared/
COPY user/go.mod user/go.sum user/
COPY product/go.mod product/go.sum product/
COPY order/go.mod order/go.sum order/
COPY payment/go.mod payment/go.sum payment/
COPY notification/go.mod notification/go.sum notification/
COPY gateway/go.mod gateway/go.sum gateway/
RUN go work init ./shared ./user ./product ./order ./payment ./notification ./gateway
RUN --mount=type=cache,target=/go/pkg/mod go mod download
# All the modules' source (the context holds nothing else, .dockerignore):
# a service imports its upstreams' client packages (order: product,
# payment). The build cache mount keeps rebuilding the unchanged cheap.
COPY . .
ARG SERVICE
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    test -n "${SERVICE}" -a -d "${SERVICE}/cmd/${SERVICE}" \
      || { echo "build argument SERVICE must name one of user product order payment notification gateway (got '${SERVICE}')" >&2; exit 1; } \
 && CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/mercato-dev/mercato/shared/config.BuildVersion=${VERSION}" \
      -o /out/service "./${SERVICE}/cmd/${SERVICE}"

FROM ${RUNTIME_IMAGE}
ARG SERVICE
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED
ARG PORT=8080
LABEL org.opencontainers.image.title="mercato-${SERVICE}" \
      org.opencontainers.image.description="Mercato's ${SERVICE} (go-kit microservice)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/mercato-dev/mercato" \
      dev.mercato.service="${SERVICE}"
COPY --from=build /out/service /usr/local/bin/service
# nonroot (65532) of the distroless image, by number so the runtime can
# check it is not root.
USER 65532:65532
# Every instance listens on every interface at PORT and registers the
# container's own address in Consul (config.Common.Advertise).
ENV MERCATO_HTTP_ADDR=0.0.0.0:${PORT}
EXPOSE ${PORT}
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/service", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/service"]
