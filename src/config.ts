import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { assertUsableKeys, readJwksFile } from './auth/key-source.js';
import type { KeySource } from './auth/key-source.js';
import { parsePayerClients } from './auth/payer-clients.js';
import type { PayerClient } from './auth/payer-clients.js';
import { parseTrustedClients } from './auth/trusted-clients.js';
import type { TrustedClient } from './auth/trusted-clients.js';
import { DEFAULT_ATTACHMENT_BODY_BYTES, MAX_ATTACHMENT_BODY_BYTES, MAX_BODY_BYTES } from './http/json-body.js';
import { DEV_ENDPOINTS_ALLOW, parseEndpointAllowList } from './http/notification-endpoints.js';

/**
 * Service configuration (design.md §3). This is the only module that reads `process.env`; `loadConfig` is pure and
 * takes the environment as an argument so tests can build any configuration.
 */
/**
 * A URL with one of the given schemes. zod's `url()` takes anything `new URL` parses, so `localhost:3000` (scheme
 * `localhost:`) passed as PUBLIC_BASE_URL and every hook JWT then failed its `aud` check; a bad value must stop
 * start-up instead (design.md §3).
 */
function urlWith(protocols: string[], what: string) {
  return z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    { message: `expected ${what}` },
  );
}

/**
 * A base URL that other URLs are built on by appending a path (`{PUBLIC_BASE_URL}/cds-services/{id}`,
 * `{FHIR_SANDBOX_URL}/Patient/{id}`, `{CANONICAL_BASE}/Questionnaire/{id}`): http or https, a host, and nothing after
 * the path. A query or fragment would end up in the middle of every URL built on it, and credentials in a URL that is
 * logged and sent to clients; each is a bad value. A path (a prefix behind a proxy) and a trailing slash are fine.
 */
const baseUrl = z.string().superRefine((v, ctx) => {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected an http or https URL' });
    return;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected an http or https URL' });
  else if (!url.hostname) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected a URL with a host' });
  else if (url.search || v.includes('?')) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'a base URL takes no query (?...): every URL is built by appending a path to it' });
  else if (url.hash || v.includes('#')) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'a base URL takes no fragment (#...): every URL is built by appending a path to it' });
  else if (url.username || url.password) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'a base URL takes no user name or password (it is logged and sent to clients)' });
});

/**
 * A whole number written in decimal digits only. `z.coerce.number()` took `1e3`, `0x10`, `-0` and ` 3000` (Number()
 * reads them all), so a typo could silently become another port or timeout.
 */
const decimalInt = (min: number, max: number) =>
  z
    .string()
    .regex(/^[0-9]+$/, { message: 'expected a whole number in decimal digits' })
    .transform(Number)
    .pipe(z.number().int().min(min, { message: `expected at least ${min}` }).max(max, { message: `expected at most ${max}` }));

/**
 * A browser's `Origin` header is compared with each configured origin as a string (http/cors.ts), so an entry that is
 * not exactly an origin (`https://ehr.example.org`: scheme, host, port if any; no path, not even a trailing slash) would
 * never match and silently refuse every browser: it is a bad value.
 */
function isOriginList(value: string): boolean {
  if (value === '*') return true;
  const entries = value.split(',').map((s) => s.trim()).filter(Boolean);
  return (
    entries.length > 0 &&
    entries.every((entry) => {
      try {
        const url = new URL(entry);
        return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === entry;
      } catch {
        return false;
      }
    })
  );
}

const schema = z.object({
  // Only the three names Node tools use: `prod` or `Production` meant production and silently got the sandbox and the
  // open modes of development.
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development').describe('production turns off the sandbox and forbids CDS_AUTH=open'),
  PORT: decimalInt(0, 65535).default(3000).describe('listen port'),
  PUBLIC_BASE_URL: baseUrl.optional().describe('URL clients use; JWT aud is {PUBLIC_BASE_URL}/cds-services/{id}'),
  CDS_TRUSTED_CLIENTS: z.string().optional().describe('JSON array of {iss, jku} | {iss, jwks} | {iss, jwksFile}'),
  CDS_AUTH: z.enum(['required', 'open']).default('required').describe('open accepts unsigned hook and feedback calls (development, curl, conformance benches; with or without the sandbox); refused in production'),
  CDS_JTI_REPLAY: z
    .enum(['reject', 'allow'])
    .default('reject')
    .describe('allow accepts a CDS client JWT whose jti was seen before (conformance kits that reuse one JWT); refused in production'),
  PAYER_API_CLIENTS: z.string().optional().describe('JSON array of {clientId, jku | jwks | jwksFile, scopes}: SMART Backend Services clients of /fhir'),
  PAYER_API_AUTH: z.enum(['required', 'open']).default('required').describe('open serves /fhir without tokens (sandbox only; refused in production)'),
  DEFAULT_PAYER: z.string().optional().describe('payer key used when the Coverage names no known payer'),
  DATABASE_URL: urlWith(['postgres:', 'postgresql:'], 'a postgres:// or postgresql:// URL')
    .refine((v) => URL.canParse(v) && new URL(v).hostname !== '', { message: 'expected a URL with a host (postgres://user:password@host:5432/db)' })
    .optional().describe('PostgreSQL URL; unset means embedded PGlite in DATA_DIR'),
  DATA_DIR: z.string().default('./data').describe('embedded storage directory'),
  SANDBOX: z.enum(['on', 'off']).optional().describe('mounts /sandbox/*, the demo page and the DTR app, and makes up a demo REVIEW_TOKEN when unset; PAYER_API_AUTH=open needs it; refused in production'),
  FHIR_SANDBOX_URL: baseUrl.optional().describe('external FHIR server used instead of the embedded sandbox'),
  EHR_TIMEOUT_MS: decimalInt(1, 60_000).default(2000).describe('per request to an EHR FHIR server'),
  DRAIN_ACCEPT_MS: decimalInt(0, 5_000).default(1000).describe('after SIGTERM, how long the listening socket keeps accepting (/readyz already 503) before it closes, so that connections the kernel completed are answered, not reset'),
  EHR_BUDGET_MS: decimalInt(1, 60_000).default(4000).describe("all of one hook call's EHR reads together, from the call's arrival (CRD allows 5 s)"),
  ATTACHMENT_BODY_MAX_BYTES: decimalInt(MAX_BODY_BYTES, MAX_ATTACHMENT_BODY_BYTES)
    .default(DEFAULT_ATTACHMENT_BODY_BYTES)
    .describe('largest body of PAS Claim/$submit and Claim/$inquire and of a DTR QuestionnaireResponse (POST, PUT, $next-question), which carry attachments as base64 (1 MiB to 16 MiB); hooks and every other body stay at 1 MiB'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino level'),
  CANONICAL_BASE: baseUrl.default('https://priorpath.dev/fhir').describe('base of canonical URLs'),
  CORS_ORIGINS: z
    .string()
    .default('*')
    .refine(isOriginList, { message: 'expected * or comma-separated origins such as https://ehr.example.org (scheme and host, no path or trailing slash)' })
    .describe('comma-separated allowed origins for browser CDS clients, or *'),
  REVIEW_TOKEN: z.string().min(16).optional().describe('bearer token for the reviewer API and workbench (/review), 16+ characters; unset: the sandbox makes up a demo token, and without the sandbox every reviewer call is refused'),
  PAS_VERSION: z
    .enum(['2.2.1', '2.0.1'])
    .default('2.2.1')
    .describe('PAS version answered when a request names none in meta.profile (e.g. 2.0.1 for the Inferno PAS v2.0.1 suite)'),
  SUBSCRIPTION_ENDPOINTS_ALLOW: z
    .string()
    .optional()
    .describe(
      `CIDRs, addresses, host names or *.domains whose non-public addresses PAS subscription notifications may go to (default: none in production, ${DEV_ENDPOINTS_ALLOW} otherwise)`,
    ),
});

export interface Config {
  nodeEnv: string;
  port: number;
  publicBaseUrl: string;
  /** PUBLIC_BASE_URL was not given: `publicBaseUrl` is derived from the port, the one bound when PORT=0 (withBoundPort). */
  publicBaseUrlFromPort: boolean;
  /**
   * CDS_TRUSTED_CLIENTS, validated, each `jwksFile` already read and checked (and given on as its `jwks`): the file is
   * read once, at the configuration check, not again when the app builds its verifier.
   */
  trustedClients: TrustedClient[];
  cdsAuth: 'required' | 'open';
  /** `allow`: a CDS client JWT may be used for several hook calls within its lifetime (Inferno's service_call_test). */
  cdsJtiReplay: 'reject' | 'allow';
  /** PAYER_API_CLIENTS, validated, each `jwksFile` read once and given on as its `jwks` (as trustedClients). */
  payerApiClients: PayerClient[];
  payerApiAuth: 'required' | 'open';
  defaultPayer?: string;
  databaseUrl?: string;
  dataDir: string;
  sandbox: boolean;
  fhirSandboxUrl?: string;
  ehrTimeoutMs: number;
  /**
   * EHR_BUDGET_MS: how long all of one hook call's EHR reads may take together, counted from the call's arrival (every
   * read, each page of a search included, waits at most what is left of it, and at most EHR_TIMEOUT_MS).
   */
  ehrBudgetMs: number;
  /**
   * DRAIN_ACCEPT_MS: after SIGTERM, how long the listening socket keeps accepting before it closes (then at the first
   * turn of the event loop that accepts nothing), so that connections the kernel completed are answered, not reset.
   */
  drainAcceptMs: number;
  /** ATTACHMENT_BODY_MAX_BYTES: the body limit of the PAS and DTR QuestionnaireResponse endpoints (attachments). */
  attachmentBodyMaxBytes: number;
  logLevel: string;
  canonicalBase: string;
  corsOrigins: string[] | '*';
  reviewToken?: string;
  /** PAS_VERSION: the PAS shapes answered to a request that announces no version. */
  pasVersion: '2.2.1' | '2.0.1';
  /** SUBSCRIPTION_ENDPOINTS_ALLOW as given, or its default (notification-endpoints.ts parses it). */
  subscriptionEndpointsAllow: string;
}

/** Thrown for a bad configuration; its message names the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Validates the environment and derives defaults. Never reads `process.env` itself. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // An empty value is unset (an env file's `DATABASE_URL=` line, `.env.example`); one of spaces only is a mistake to
  // name, not a value to use (`DATA_DIR=' '` made a directory named by a space, `REVIEW_TOKEN` of 16 spaces was a token).
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const blank = Object.keys(schema.shape).filter((k) => typeof cleaned[k] === 'string' && (cleaned[k] as string).trim() === '');
  if (blank.length) throw new ConfigError(`Invalid configuration: ${blank.map((k) => `${k}: is blank (spaces only); unset it or give a value`).join('; ')}`);
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const msgs = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration: ${msgs.join('; ')}`);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === 'production';
  if (production && e.CDS_AUTH === 'open') {
    throw new ConfigError('CDS_AUTH=open is refused when NODE_ENV=production: unauthenticated hook calls are for the sandbox only');
  }
  if (production && e.CDS_JTI_REPLAY === 'allow') {
    throw new ConfigError('CDS_JTI_REPLAY=allow is refused when NODE_ENV=production: replayed hook JWTs are for conformance runs only');
  }
  const sandbox = e.SANDBOX ? e.SANDBOX === 'on' : !production;
  if (production && sandbox) throw new ConfigError('SANDBOX=on is refused when NODE_ENV=production');
  if (e.PAYER_API_AUTH === 'open' && production) {
    throw new ConfigError('PAYER_API_AUTH=open is refused when NODE_ENV=production: the payer FHIR API serves prior-authorization data');
  }
  if (e.PAYER_API_AUTH === 'open' && !sandbox) {
    throw new ConfigError('PAYER_API_AUTH=open needs SANDBOX=on: an open payer FHIR API is for the sandbox only');
  }
  let payerApiClients: PayerClient[] = [];
  if (e.PAYER_API_CLIENTS !== undefined) {
    try {
      payerApiClients = parsePayerClients(e.PAYER_API_CLIENTS).map((c, i) => checkLocalKeys(c, `PAYER_API_CLIENTS[${i}] (clientId "${c.clientId}")`));
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
  }
  const endpointsAllow = e.SUBSCRIPTION_ENDPOINTS_ALLOW ?? (production ? '' : DEV_ENDPOINTS_ALLOW);
  let allowEntries: unknown[];
  try {
    allowEntries = parseEndpointAllowList(endpointsAllow);
  } catch (err) {
    throw new ConfigError(`SUBSCRIPTION_ENDPOINTS_ALLOW: ${(err as Error).message}`);
  }
  // A value of separators only (`,`, `, ,`) names nothing: it is a mistake, as a blank value is, not a way to say
  // "no private endpoints" (in development that silently replaced the loopback default with an empty list).
  if (e.SUBSCRIPTION_ENDPOINTS_ALLOW !== undefined && allowEntries.length === 0) {
    throw new ConfigError('SUBSCRIPTION_ENDPOINTS_ALLOW: names no CIDR, address, host name or *.domain (separators only); unset it for the default');
  }
  let trustedClients: TrustedClient[] = [];
  if (e.CDS_TRUSTED_CLIENTS !== undefined) {
    // The whole shape, not only the JSON: a client without keys or with an http jku is a bad value that must stop
    // start-up with a message naming the variable, not a stack from createApp.
    try {
      trustedClients = parseTrustedClients(e.CDS_TRUSTED_CLIENTS).map((c, i) => checkLocalKeys(c, `CDS_TRUSTED_CLIENTS[${i}] (iss "${c.iss}")`));
    } catch (err) {
      const message = (err as Error).message;
      throw new ConfigError(message.includes('CDS_TRUSTED_CLIENTS') ? message : `CDS_TRUSTED_CLIENTS: ${message}`);
    }
  }
  return {
    nodeEnv: e.NODE_ENV,
    port: e.PORT,
    publicBaseUrl: (e.PUBLIC_BASE_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ''),
    publicBaseUrlFromPort: e.PUBLIC_BASE_URL === undefined,
    trustedClients,
    cdsAuth: e.CDS_AUTH,
    cdsJtiReplay: e.CDS_JTI_REPLAY,
    payerApiClients,
    payerApiAuth: e.PAYER_API_AUTH,
    defaultPayer: e.DEFAULT_PAYER,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.DATA_DIR,
    sandbox,
    fhirSandboxUrl: e.FHIR_SANDBOX_URL,
    ehrTimeoutMs: e.EHR_TIMEOUT_MS,
    ehrBudgetMs: e.EHR_BUDGET_MS,
    drainAcceptMs: e.DRAIN_ACCEPT_MS,
    attachmentBodyMaxBytes: e.ATTACHMENT_BODY_MAX_BYTES,
    logLevel: e.LOG_LEVEL,
    canonicalBase: e.CANONICAL_BASE.replace(/\/+$/, ''),
    corsOrigins: e.CORS_ORIGINS === '*' ? '*' : e.CORS_ORIGINS.split(',').map((s) => s.trim()).filter(Boolean),
    reviewToken: e.REVIEW_TOKEN,
    pasVersion: e.PAS_VERSION,
    subscriptionEndpointsAllow: endpointsAllow,
  };
}

/**
 * A client's keys given here (`jwks` inline, or a `jwksFile` read now) must be readable and usable public keys: a file
 * that is missing or not a JWK Set, or a set that could verify nothing, stops start-up naming the variable and the
 * client (design.md §3), rather than a stack from createApp or a 401 on every call. A `jku` is fetched at run time.
 * Returns the client with a file's keys inline.
 */
function checkLocalKeys<T extends KeySource>(source: T, who: string): T {
  const jwks = source.jwks ?? (source.jwksFile !== undefined ? readJwksFile(source.jwksFile, who) : undefined);
  if (!jwks) return source;
  assertUsableKeys(jwks, source.jwks ? `${who} "jwks"` : `${who} jwksFile`);
  // The keys read here are the ones the app verifies with: the file is not read a second time.
  const { jwksFile: _read, ...rest } = source;
  return { ...rest, jwks } as T;
}

/**
 * The checks that need the loaded content (design.md §3: a bad value stops start-up naming the variable):
 * `DEFAULT_PAYER` must be a payer key with a file in `cds-services/payers/`, or every call it should rescue is a 400.
 */
export function checkConfigAgainstContent(config: Pick<Config, 'defaultPayer'>, payerKeys: Iterable<string>): void {
  const keys = [...payerKeys];
  if (config.defaultPayer !== undefined && !keys.includes(config.defaultPayer)) {
    throw new ConfigError(`DEFAULT_PAYER: no payer "${config.defaultPayer}" (cds-services/payers/ holds ${keys.sort().join(', ')})`);
  }
}

/**
 * The payer keys on disk (`cds-services/payers/<key>.yaml`: a payer file's key equals its name, design.md §4 "Payer"),
 * listed without loading content, so start-up refuses a bad DEFAULT_PAYER before it opens storage or compiles policies.
 */
export function payerKeysOnDisk(root: string): string[] {
  const dir = join(root, 'cds-services', 'payers');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => f.replace(/\.ya?ml$/, ''));
}

/**
 * The configuration once the server has its port: with PORT=0 the kernel picks one, and a base URL derived from the
 * port (PUBLIC_BASE_URL unset) must name that one, not `:0`, in discovery links, `aud` checks and package URLs alike.
 * A PUBLIC_BASE_URL that was given is kept as given (behind a proxy the bound port is not the one clients use).
 */
export function withBoundPort(config: Config, port: number): Config {
  if (!config.publicBaseUrlFromPort) return { ...config, port };
  return { ...config, port, publicBaseUrl: `http://localhost:${port}` };
}

/** The variables this service reads (design.md §3), in the order `--help` lists them. */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(schema.shape);

/** What `--help` prints: every variable with what it means (the schema's descriptions). */
export function configHelp(): string {
  const rows = Object.entries(schema.shape).map(([name, field]) => `  ${name.padEnd(30)} ${(field as { description?: string }).description ?? ''}`);
  return `PriorPath: payer prior-authorization service (CRD, DTR, PAS).\n\nUsage: node dist/main.js (npm start). It takes no arguments; it is configured by these environment variables\n(README "Configuration" gives each default):\n\n${rows.join('\n')}\n`;
}

/** Levenshtein distance, for telling a misspelt variable from an unrelated one. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

/**
 * A variable that is set but is not one of ours, although it is spelt almost like one (`PUBLIC_BASE_ULR`,
 * `LOG_LEVELS`): the operator meant ours, and the service would silently run on its default (every hook JWT's `aud`
 * then fails, say). Refused naming both. Names unlike ours are other programs' and left alone.
 */
export function checkMisspeltVariables(env: Record<string, string | undefined>): void {
  for (const name of Object.keys(env)) {
    if (CONFIG_VARIABLES.includes(name) || env[name] === undefined) continue;
    const upper = name.toUpperCase();
    const meant = CONFIG_VARIABLES.find((known) => upper === known || (known.slice(0, 4) === upper.slice(0, 4) && distance(upper, known) <= 2));
    if (meant) throw new ConfigError(`${name}: not a PriorPath variable (did you mean ${meant}?); --help lists them`);
  }
}

/** Reads the process environment; the one place that touches `process.env`. */
export function loadConfigFromProcess(): Config {
  checkMisspeltVariables(process.env);
  return loadConfig(process.env);
}
