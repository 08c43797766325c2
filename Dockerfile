# syntax=docker/dockerfile:1
#
# effect-relay's relay as a container: `docker build -t effect-relay .`, then
#   docker run --rm -p 8080:8080 -e RELAY_AUTH_SECRET=... effect-relay
# Fly builds it from fly.toml (`fly deploy`). Only the relay and the protocol package go in:
# the host agent, the test kit, the benchmarks and every devDependency stay out.
#
# The base is pinned to the Node release the repository is tested with (Node 20.20.2 on Debian
# 12 "bookworm"); both stages name the same tag, so the modules installed in the first (esbuild's
# native binary among them) run on the second. Bump both on purpose, with the Node used in CI.

# ---- deps: production modules of the relay workspace only -------------------------------------
FROM node:20.20.2-bookworm-slim AS deps
WORKDIR /app
# npm ci checks the lockfile against every workspace listed in the root package.json, so all
# four manifests come in (they are small); `--workspace @effect-relay/relay` then installs only
# what the relay needs (its dependencies and the protocol workspace it links to), and
# `--omit=dev` leaves out the root's and the relay's devDependencies (vitest, the host agent...).
# tsx is a production dependency of the relay: the bin loads the TypeScript entry through it.
# Peer dependencies stay (no --omit=peer): @effect/printer-ansi needs its peer @effect/typeclass
# at start-up, and --omit=peer would save only ~11 MB of the ~100 MB.
COPY package.json package-lock.json ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/relay/package.json packages/relay/
COPY packages/host/package.json packages/host/
COPY packages/testkit/package.json packages/testkit/
RUN npm ci --omit=dev --workspace @effect-relay/relay --no-audit --no-fund \
  && npm cache clean --force
COPY packages/protocol/src packages/protocol/src
COPY packages/relay/bin packages/relay/bin
COPY packages/relay/src packages/relay/src

# ---- runtime -----------------------------------------------------------------------------------
FROM node:20.20.2-bookworm-slim
# PID 1: tini (Debian's package) runs as PID 1 and starts node as its child.
# - The relay handles SIGINT/SIGTERM itself (drain, exit 0; a second signal exits 130/143), and
#   that would work with node as PID 1 too, because a handler is installed. But the kernel drops
#   signals to a PID 1 that has no handler for them, and node installs the relay's only once the
#   program is loaded (~2-3 s under tsx): a stop sent during start-up would be ignored until the
#   platform's SIGKILL. Under tini, node is not PID 1 and such a signal ends it at once.
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
COPY --from=deps /app /app
# `node` (uid 1000) comes with the official image. tsx keeps its cache under /tmp (writable).
USER node
EXPOSE 8080
# Exec form, node on the bin directly: never `npm start`/`npm exec`, which put npm between the
# signal and the relay. The bin loads the TypeScript entry in the same process (see its header),
# so the PID tini signals is the relay, and the exit code is the drain's.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/packages/relay/bin/effect-relay.js"]
CMD ["serve"]
