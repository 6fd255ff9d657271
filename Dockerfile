# Strata server image. Built by docker-compose.yml (`docker compose up --build`), or alone:
#   docker build -t strata . && docker run -p 50051:50051 -v strata-data:/data strata
FROM node:20-bookworm-slim

# Toolchain for the native addons (Strata's native/, lmdb) built by node-gyp during `npm ci`.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The repo's .npmrc points node-gyp at Debian's headers (/usr); this image's Node lives in /usr/local.
ENV npm_config_nodedir=/usr/local

COPY . .
# `npm ci` also runs the "prepare" script (a build); the explicit build keeps the step visible.
RUN npm ci && npm run build

# Listen on all interfaces inside the container (the default is 127.0.0.1).
ENV STRATA_HOST=0.0.0.0
RUN mkdir -p /data
VOLUME /data
EXPOSE 50051 9464

CMD ["node", "dist/cli/main.js", "serve", "--data-dir", "/data", "--config", "/app/sample/strata.tables.json"]
