import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { PAYER_API_SCOPES } from '../../src/fhir-api/smart-configuration.js';
import { repoRoot } from './stories.js';

/** The URL clients use for every replica (as behind a load balancer): JWT audiences are built from it. */
export const PUBLIC_BASE_URL = 'http://priorpath.test';
const CLIENT_ID = 'reliability-tests';
const clientKey = (async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
  const kid = randomUUID();
  return { privateKey, kid, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES384', use: 'sig' } };
})();

/** PAYER_API_CLIENTS registering this test run's Backend Services client with every payer API scope. */
export async function payerClientsEnv(): Promise<string> {
  const { jwk } = await clientKey;
  return JSON.stringify([{ clientId: CLIENT_ID, jwks: { keys: [jwk] }, scopes: PAYER_API_SCOPES }]);
}

/**
 * A payer API access token from the process's token endpoint (SMART Backend Services: client_credentials with a
 * private_key_jwt assertion), as a real payer API client obtains one.
 */
export async function payerToken(base: string): Promise<string> {
  const res = await fetch(`${base}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: await payerTokenForm(),
  });
  if (res.status !== 200) throw new Error(`token endpoint answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}

/**
 * The token request (client_credentials with a private_key_jwt assertion) of this run's client, as the form body
 * `POST /auth/token` takes: for an app driven in the test's own process (supertest).
 */
export async function payerTokenForm(): Promise<string> {
  const { privateKey, kid } = await clientKey;
  const now = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid })
    .setIssuer(CLIENT_ID)
    .setSubject(CLIENT_ID)
    .setAudience(`${PUBLIC_BASE_URL}/auth/token`)
    .setIssuedAt(now)
    .setExpirationTime(now + 240)
    .setJti(randomUUID())
    .sign(privateKey);
  return new URLSearchParams({
    grant_type: 'client_credentials',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
    scope: PAYER_API_SCOPES.join(' '),
  }).toString();
}

/** A PriorPath server process started from src/main.ts, as `npm start` runs it. */
export interface PriorPathProcess {
  child: ChildProcess;
  port: number;
  base: string;
  /** Everything the process wrote (pino JSON lines and stderr). */
  output: () => string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<number | string>;
}

const running = new Set<ChildProcess>();

/** Kills every process this module started that is still running (for afterAll). */
export function killAll(): void {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/**
 * Starts `src/main.ts` in its own process on a free port with the given environment (open CDS auth, the payer API
 * with this run's Backend Services client, no sandbox, unless overridden) and node's flags `nodeArgs` before the
 * script; resolves once it logs "PriorPath listening".
 */
export async function startPriorPath(env: Record<string, string> = {}, timeoutMs = 60_000, nodeArgs: readonly string[] = []): Promise<PriorPathProcess> {
  const payerClients = await payerClientsEnv();
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', join('src', 'main.ts')], {
    cwd: repoRoot,
    env: {
      ...process.env,
      PORT: '0',
      NODE_ENV: 'development',
      SANDBOX: 'off',
      CDS_AUTH: 'open',
      PAYER_API_AUTH: 'required',
      PAYER_API_CLIENTS: payerClients,
      LOG_LEVEL: 'info',
      DATA_DIR: mkdtempSync(join(tmpdir(), 'priorpath-proc-')),
      PUBLIC_BASE_URL,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let out = '';
  // The last 256 KiB of output is enough for any assertion and keeps long runs (npm run soak) bounded.
  const keep = (c: Buffer) => (out = (out + String(c)).slice(-262_144));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return new Promise<PriorPathProcess>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`PriorPath did not start in ${timeoutMs} ms: ${out.slice(-2000)}`)), timeoutMs);
    const onData = () => {
      const line = out.split('\n').find((l) => l.includes('"PriorPath listening"'));
      if (!line) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      const port = (JSON.parse(line) as { port: number }).port;
      resolve({ child, port, base: `http://127.0.0.1:${port}`, output: () => out, exited });
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`PriorPath exited (${code}) before listening: ${out.slice(-2000)}`));
    });
  });
}

/** Polls `url` until `accept(status)` or the deadline; resolves with the last status. */
export async function waitForStatus(url: string, accept: (status: number) => boolean, deadlineMs = 30_000): Promise<number> {
  const until = Date.now() + deadlineMs;
  let status = 0;
  while (Date.now() < until) {
    status = await fetch(url, { signal: AbortSignal.timeout(6000) })
      .then((r) => r.status)
      .catch(() => 0);
    if (accept(status)) return status;
    await new Promise((r) => setTimeout(r, 200));
  }
  return status;
}
