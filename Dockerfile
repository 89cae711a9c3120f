# syntax=docker/dockerfile:1
# Tollgate container image: deps → build → runtime.
# The runtime stage holds only dist/, lua/, docs/openapi.yaml (served on the
# HTTP port), package.json and production node_modules, runs as uid 65532 (the chart's runAsUser) and never runs npm.
# Node 26 is the current LTS line (even major, first published 2026-05).
ARG NODE_IMAGE=node:26-slim

# Production dependencies only, without install scripts.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# Full toolchain: generate the protobuf code and compile TypeScript.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json buf.yaml buf.gen.yaml buf.envoy.yaml buf.gen.envoy.yaml ./
COPY proto ./proto
COPY src ./src
# The web console's page, script and style (built into dist/console-web/ with its libraries).
COPY web ./web
# npm run build also writes docs/openapi.yaml and dist/build-info.json.
COPY scripts/build-if-stale.mjs scripts/generate-openapi.mjs scripts/build-console.mjs ./scripts/
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tollgate" \
      org.opencontainers.image.description="API-key, rate-limit and security-event sidecar, served over gRPC, gRPC-Web and Connect" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tollgate/tollgate" \
      org.opencontainers.image.documentation="https://github.com/tollgate/tollgate/blob/main/docs/kubernetes.md"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/docs/openapi.yaml ./docs/openapi.yaml
COPY lua ./lua
COPY package.json ./
# Main gRPC/Connect port, Connect HTTP port, admin port (/healthz, /readyz, /metrics).
EXPOSE 50051 8080 9464
USER 65532:65532
CMD ["node", "dist/cli/main.js", "serve"]
