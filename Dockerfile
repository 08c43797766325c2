# syntax=docker/dockerfile:1
#
# effect-relay's relay as a container: `docker build -t effect-relay .`, then
#   docker run --rm -p 8080:8080 -e RELAY_AUTH_SECRET=... effect-relay
# Fly builds it from fly.toml (`fly deploy`). Only the built relay goes in: one JavaScript file
# (the relay, the protocol package and every module they use, bundled by scripts/build.mjs), its
# source map, the bin and the relay's package.json. No node_modules, no TypeScript, no tsx, no
# sources: node runs the bundle directly.
#
# The base is pinned to the Node release the repository is tested with (Node 20.20.2 on Debian
# 12 "bookworm"); both stages name the same tag. Bump both on purpose, with the Node used in CI.

# ---- build: the relay bundled into packages/relay/dist ----------------------------------------
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
# npm ci checks the lockfile against every workspace listed in the root package.json, so all
# four manifests come in (they are small). The whole lockfile is installed, devDependencies
# included: esbuild is one. --ignore-scripts: the root `prepare` (the build) would run before
# the sources are here, and nothing the build uses needs an install script (esbuild's binary
# comes as its optional platform package). This stage is thrown away; only dist/ leaves it.
COPY package.json package-lock.json ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/relay/package.json packages/relay/
COPY packages/host/package.json packages/host/
COPY packages/testkit/package.json packages/testkit/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY scripts/build.mjs scripts/
COPY packages/protocol/src packages/protocol/src
COPY packages/relay/src packages/relay/src
RUN node scripts/build.mjs relay

# ---- runtime -----------------------------------------------------------------------------------
FROM node:20.20.2-bookworm-slim
# PID 1: tini (Debian's package) runs as PID 1 and starts node as its child.
# - The relay handles SIGINT/SIGTERM itself (drain, exit 0; a second signal exits 130/143), and
#   that would work with node as PID 1 too, because a handler is installed. But the kernel drops
#   signals to a PID 1 that has no handler for them, and node installs the relay's only once the
#   program is loaded (~0.3 s from the bundle, longer on a busy machine): a stop sent during
#   start-up would be ignored until the platform's SIGKILL. Under tini, node is not PID 1 and
#   such a signal ends it at once.
# - tini also reaps zombies (the relay spawns no children today; a future one would be reaped)
#   and exits with node's exit code (128+n when node dies of signal n).
# On Fly the machine's own init is PID 1 and delivers kill_signal to this entrypoint; tini then
# forwards it to node. `docker run --init` is not needed (and harmless).
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
  LOG_FORMAT=json \
  PORT=8080
WORKDIR /app
# Owned by root and read-only for the relay's user: the process cannot rewrite its own code.
# package.json: "type": "module", so node loads the bin and the bundle as ES modules.
COPY packages/relay/package.json packages/relay/
COPY packages/relay/bin packages/relay/bin
COPY --from=build /app/packages/relay/dist packages/relay/dist
# `node` (uid 1000) comes with the official image.
USER node
EXPOSE 8080
# Exec form, node on the bin directly: never `npm start`/`npm exec`, which put npm between the
# signal and the relay. The bin imports the bundle in the same process (see its header), so the
# PID tini signals is the relay, and the exit code is the drain's.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/packages/relay/bin/effect-relay.js"]
CMD ["serve"]
