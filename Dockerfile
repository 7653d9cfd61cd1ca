# tschk: build stage compiles TypeScript and better-sqlite3; the runtime stage holds only what runs.
# Both stages use the same Node major: better-sqlite3's native module is built for one ABI.
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
# A C++ toolchain for better-sqlite3, used when no prebuilt binary matches.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
# node-gyp takes the image's own Node headers instead of downloading them (no network, same ABI).
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
COPY scripts/bundle-kysely.mjs ./scripts/
COPY web ./web
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    TSCHK_DATABASE_URL=sqlite:/data/tschk.db
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# `tschk` on the PATH for `docker compose exec tschk tschk …`. The image's `node` user (uid 1000)
# owns the data volume; the code stays root-owned, read-only to it.
RUN chmod +x dist/src/main.js \
  && ln -s /app/dist/src/main.js /usr/local/bin/tschk \
  && mkdir /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 3000
# The slim image has no curl: Node's own fetch asks /healthz (200 when the database answers).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.TSCHK_HTTP_PORT || 3000}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/src/main.js"]
CMD ["serve"]
