# PriorPath service image. docker-compose.yml runs it as the service (two replicas) and as the one-shot loader that
# puts the sandbox stories into HAPI FHIR. See docs/docker.md.
#
# Two stages: the build stage has the dev dependencies (esbuild, tsx) and writes dist/ (the service as plain
# JavaScript, the web bundles in dist/public); the runtime stage has production dependencies only and runs
# `node dist/main.js` (design.md §9: built JavaScript, no TypeScript loader, no bundler in production).
FROM node:20-bookworm-slim AS build
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

# Dependencies first, so a source change does not reinstall them.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

# What the service reads at run time: the built code, the policies, questionnaires and CQL Libraries (DTR 2.0.1
# packages carry them), the sandbox stories and the web pages (HTML, CSS and the vendored LHC-Forms; their scripts are
# the prebuilt bundles in dist/public). test/build/docker-image-content.test.ts loads content from exactly these.
COPY --from=build /app/dist ./dist
COPY cds-services ./cds-services
COPY questionnaires ./questionnaires
COPY libraries ./libraries
COPY sandbox ./sandbox
COPY web ./web
# DATA_DIR (./data) holds the embedded PGlite database when DATABASE_URL is unset.
RUN mkdir -p /app/data && chown node:node /app/data
USER node

ENV PORT=3000
# Two glibc malloc arenas instead of eight per core, which the threads that come and go (PGlite's worker, V8's
# compilers, libuv's pool) otherwise each grow and keep: about 20 MB resident (README "Memory"). The bench runs
# the service in this environment; npm start, whose script must run in every OS's shell, gets the same values from
# src/malloc-relaunch.ts (MALLOC_ENV: a test keeps the two the same).
ENV MALLOC_ARENA_MAX=2
# Allocations of 256 KiB and more get pages of their own, returned to the system when freed, instead of coming from
# the arena's top, where one live small block keeps everything below it resident: about 20 MB less after load
# (README "Memory"). A fixed threshold also stops glibc raising it as large blocks are freed.
ENV MALLOC_MMAP_THRESHOLD_=262144
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# node itself as the process: it handles SIGTERM (drains, closes storage); compose adds tini (init: true) for reaping.
# The heap flags are npm start's (README "Memory"): a 512 MB old-generation ceiling keeps V8 from growing the heap far
# past what is live (about 40-60 MB) under load, and 4 MB semi-spaces keep the young generation at 12 MB instead of
# the 48 MB it grows to at start-up and keeps. --heap-growing-percent=15 marks the old generation when it has grown by
# V8's minimum step (8 MB) past what the last mark-compact left, instead of by 40 %: about 12 MiB less at the peak
# of load, for about 5 % more main-thread CPU a hook (README "Memory", session 53).
CMD ["node", "--max-old-space-size=512", "--max-semi-space-size=4", "--heap-growing-percent=15", "dist/main.js"]
