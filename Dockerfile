# faxbridge: multi-stage build, small non-root runtime image.
# Build: docker build -t faxbridge .   (podman/buildah: add --format docker so the
# HEALTHCHECK is kept; the OCI image format has no health checks).
# NODE_IMAGE is the Node base for both stages. Users keep the official image;
# CI (.ci/container.sh) passes a base it assembles itself because no registry
# is reachable there. Any Debian-based image with node, npm and a "node" user works.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# better-sqlite3 compiles its native addon.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    FAXBRIDGE_DATA_DIR=/data \
    FAXBRIDGE_SMTP_HOST=0.0.0.0 \
    FAXBRIDGE_HTTP_HOST=0.0.0.0
WORKDIR /app
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root config ./config
RUN mkdir -p /data && chown node:node /data && chmod 0700 /data \
    && ln -s /app/dist/src/cli.js /usr/local/bin/faxbridge && chmod +x /app/dist/src/cli.js
USER node
VOLUME ["/data"]
EXPOSE 2525 8025
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.FAXBRIDGE_HTTP_PORT || 8025) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/src/cli.js"]
CMD ["run"]
