# PriorPath service image. docker-compose.yml runs it as the service (two replicas) and as the one-shot loader that
# puts the sandbox stories into HAPI FHIR. See docs/docker.md.
FROM node:20-bookworm-slim

WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

# Dependencies first, so a source change does not reinstall them. The service runs its TypeScript with tsx, and the
# loader and `npm test` in a container need the rest, so this is a plain `npm ci`.
COPY package.json package-lock.json ./
RUN npm ci && npm cache clean --force

COPY . .
# DATA_DIR (./data) holds the embedded PGlite database when DATABASE_URL is unset.
RUN mkdir -p /app/data && chown node:node /app/data
USER node

ENV PORT=3000
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

CMD ["npm", "start"]
