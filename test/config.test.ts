import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { checkConfigAgainstContent, checkMisspeltVariables, CONFIG_VARIABLES, ConfigError, loadConfig, payerKeysOnDisk } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { MemoryStorage } from '../src/storage/memory-storage.js';
import { testContent } from './helpers/app.js';
import { repoRoot } from './helpers/stories.js';

describe('configuration', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(3000);
    expect(c.publicBaseUrl).toBe('http://localhost:3000');
    expect(c.cdsAuth).toBe('required');
    expect(c.cdsJtiReplay).toBe('reject');
    expect(c.payerApiAuth).toBe('required');
    expect(c.sandbox).toBe(true);
    expect(c.ehrTimeoutMs).toBe(2000);
    expect(c.canonicalBase).toBe('https://priorpath.dev/fhir');
    expect(c.dataDir).toBe('./data');
  });

  it('documents every variable as it behaves: .env.example and the README table name each, and the open hook mode is not called sandbox-only', async () => {
    const { readFileSync } = await import('node:fs');
    const { configHelp } = await import('../src/config.js');
    const example = readFileSync(join(repoRoot, '.env.example'), 'utf8');
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    for (const name of CONFIG_VARIABLES) {
      expect(example, `.env.example: ${name}`).toMatch(new RegExp(`^#? ?${name}=`, 'm'));
      expect(readme, `README: ${name}`).toContain(`| \`${name}\` |`);
    }
    // CDS_AUTH=open starts without the sandbox (the bench relies on it): no text may say it needs the sandbox.
    expect(loadConfig({ SANDBOX: 'off', CDS_AUTH: 'open' }).cdsAuth).toBe('open');
    const helpLine = (name: string) => configHelp().split('\n').find((l) => l.trimStart().startsWith(`${name} `))!;
    expect(helpLine('CDS_AUTH')).not.toMatch(/sandbox only/);
    expect(helpLine('SANDBOX')).not.toMatch(/open mode/);
    expect(readme).not.toMatch(/\| `SANDBOX` \|[^\n]*the open modes/);
    // REVIEW_TOKEN unset: the sandbox makes up a demo token; only without it is the reviewer API refused.
    expect(helpLine('REVIEW_TOKEN')).toMatch(/the sandbox makes up a demo token/);
  });

  it('takes an empty value as unset, a path and a trailing slash on a base URL, and decimal numbers', () => {
    const c = loadConfig({ DATABASE_URL: '', PORT: '8080', EHR_TIMEOUT_MS: '2500', PUBLIC_BASE_URL: 'https://payer.example.org/priorpath/', FHIR_SANDBOX_URL: 'http://hapi:8080/fhir/', CANONICAL_BASE: 'https://priorpath.dev/fhir/' });
    expect(c.databaseUrl).toBeUndefined();
    expect(c.port).toBe(8080);
    expect(c.ehrTimeoutMs).toBe(2500);
    expect(c.publicBaseUrl).toBe('https://payer.example.org/priorpath');
    expect(c.canonicalBase).toBe('https://priorpath.dev/fhir');
  });

  it('refuses a variable spelt almost like one of its own, naming both, and leaves other programs\' variables alone', () => {
    expect(() => checkMisspeltVariables({ PUBLIC_BASE_ULR: 'https://priorpath.example.org' })).toThrow(/PUBLIC_BASE_ULR: not a PriorPath variable \(did you mean PUBLIC_BASE_URL\?\)/);
    expect(() => checkMisspeltVariables({ LOG_LEVELS: 'debug' })).toThrow(/did you mean LOG_LEVEL/);
    expect(() => checkMisspeltVariables({ database_url: 'postgres://db/x' })).toThrow(/did you mean DATABASE_URL/);
    expect(() => checkMisspeltVariables({ IS_SANDBOX: 'yes', HOST: 'x', HOSTNAME: 'x', PWD: '/', NODE_OPTIONS: '', PORT: '3000', PGPASSWORD: 'x' })).not.toThrow();
  });

  it('--help lists every variable and exits 0; an argument is refused with exit 1; a misspelt variable stops start-up', () => {
    const run = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'main.ts'), ...args], { env: { PATH: process.env.PATH, LOG_LEVEL: 'silent', ...env }, encoding: 'utf8', timeout: 30_000 });
    const help = run(['--help']);
    expect(help.status).toBe(0);
    for (const name of CONFIG_VARIABLES) expect(help.stdout).toContain(name);
    const arg = run(['--port', '8080']);
    expect(arg.status).toBe(1);
    expect(arg.stderr).toContain('unknown argument "--port"');
    const typo = run([], { PUBLIC_BASE_ULR: 'https://priorpath.example.org', PORT: '0' });
    expect(typo.status).toBe(1);
    expect(typo.stderr).toContain('did you mean PUBLIC_BASE_URL?');
    expect(typo.stderr).not.toMatch(/\n\s+at /);
  }, 100_000);

  it('turns the sandbox off in production', () => {
    expect(loadConfig({ NODE_ENV: 'production' }).sandbox).toBe(false);
  });

  it.each([
    [{ PORT: 'eighty' }, 'PORT'],
    [{ EHR_TIMEOUT_MS: '-5' }, 'EHR_TIMEOUT_MS'],
    [{ CDS_AUTH: 'maybe' }, 'CDS_AUTH'],
    [{ PUBLIC_BASE_URL: 'not a url' }, 'PUBLIC_BASE_URL'],
    [{ CDS_TRUSTED_CLIENTS: '[{' }, 'CDS_TRUSTED_CLIENTS'],
    [{ CDS_TRUSTED_CLIENTS: '[{"iss":"https://ehr.example.org"}]' }, 'CDS_TRUSTED_CLIENTS'],
    [{ CDS_TRUSTED_CLIENTS: '[{"iss":"https://ehr.example.org","jku":"http://ehr.example.org/jwks.json"}]' }, 'CDS_TRUSTED_CLIENTS'],
    [{ CDS_TRUSTED_CLIENTS: '{"iss":"https://ehr.example.org","jwksFile":"keys.json"}' }, 'CDS_TRUSTED_CLIENTS'],
    [{ NODE_ENV: 'production', CDS_AUTH: 'open' }, 'CDS_AUTH'],
    [{ CDS_JTI_REPLAY: 'sometimes' }, 'CDS_JTI_REPLAY'],
    [{ NODE_ENV: 'production', CDS_JTI_REPLAY: 'allow' }, 'CDS_JTI_REPLAY'],
    [{ PAYER_API_AUTH: 'sometimes' }, 'PAYER_API_AUTH'],
    [{ NODE_ENV: 'production', PAYER_API_AUTH: 'open' }, 'PAYER_API_AUTH'],
    [{ SANDBOX: 'off', PAYER_API_AUTH: 'open' }, 'PAYER_API_AUTH'],
    [{ PAYER_API_CLIENTS: '[{"clientId":"a"' }, 'PAYER_API_CLIENTS'],
    [{ PAYER_API_CLIENTS: '[{"clientId":"a","jku":"http://ehr.example.org/jwks.json","scopes":["system/Claim.c"]}]' }, 'PAYER_API_CLIENTS'],
    [{ PAYER_API_CLIENTS: '[{"clientId":"a","jwks":{"keys":[]},"scopes":["patient/*.read"]}]' }, 'PAYER_API_CLIENTS'],
    [{ SUBSCRIPTION_ENDPOINTS_ALLOW: '10.20.0.0/33' }, 'SUBSCRIPTION_ENDPOINTS_ALLOW'],
    [{ SUBSCRIPTION_ENDPOINTS_ALLOW: 'http://ehr.partner.example' }, 'SUBSCRIPTION_ENDPOINTS_ALLOW'],
    [{ SUBSCRIPTION_ENDPOINTS_ALLOW: '*' }, 'SUBSCRIPTION_ENDPOINTS_ALLOW'],
    [{ SUBSCRIPTION_ENDPOINTS_ALLOW: ',' }, 'SUBSCRIPTION_ENDPOINTS_ALLOW'],
    [{ NODE_ENV: 'production', SUBSCRIPTION_ENDPOINTS_ALLOW: ' , ,' }, 'SUBSCRIPTION_ENDPOINTS_ALLOW'],
  ])('refuses %j with a message naming %s', (env, name) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(name);
  });

  it('refuses a DEFAULT_PAYER that names no payer file, naming the variable, and accepts a payer key', () => {
    const keys = payerKeysOnDisk(repoRoot);
    expect([...keys].sort()).toEqual(['bcbsnc', 'centene', 'example', 'mmm', 'ohsu']);
    expect(() => checkConfigAgainstContent(loadConfig({ DEFAULT_PAYER: 'acme' }), keys)).toThrow(ConfigError);
    expect(() => checkConfigAgainstContent(loadConfig({ DEFAULT_PAYER: 'acme' }), keys)).toThrow('DEFAULT_PAYER');
    expect(() => checkConfigAgainstContent(loadConfig({ DEFAULT_PAYER: 'example' }), keys)).not.toThrow();
    expect(() => checkConfigAgainstContent(loadConfig({}), keys)).not.toThrow();
  });

  it('exits with status 1 before listening for an unknown DEFAULT_PAYER, naming it without a stack', () => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'main.ts')], {
      env: { PATH: process.env.PATH, NODE_ENV: 'production', DEFAULT_PAYER: 'acme', PORT: '0', LOG_LEVEL: 'silent', DATA_DIR: join(tmpdir(), 'priorpath-config-test-unused') },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(res.status).toBe(1);
    expect(res.stderr).toContain('DEFAULT_PAYER');
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits with status 1 before listening when NODE_ENV=production and PAYER_API_AUTH=open', () => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'main.ts')], {
      env: { PATH: process.env.PATH, NODE_ENV: 'production', PAYER_API_AUTH: 'open', PORT: '0' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(res.status).toBe(1);
    expect(res.stderr).toContain('PAYER_API_AUTH');
    expect(res.stdout).not.toContain('listening');
  });

  it('exits with status 1 naming the port when the port is taken, never logging that it listens', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '0.0.0.0', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const res = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'main.ts')], {
        env: { PATH: process.env.PATH, NODE_ENV: 'development', SANDBOX: 'off', CDS_AUTH: 'open', PORT: String(port), DATA_DIR: mkdtempSync(join(tmpdir(), 'priorpath-port-taken-')) },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(res.status).toBe(1);
      expect(res.stderr).toContain(`cannot listen on port ${port}: EADDRINUSE`);
      expect(res.stdout).not.toContain('PriorPath listening');
    } finally {
      taken.close();
    }
  }, 70_000);

  it.each([
    ['a path under /proc (Node\'s recursive mkdir loops there)', '/proc/priorpath-no-such/data', 'DATA_DIR: cannot create /proc/priorpath-no-such/data (ENOENT'],
    ['a path whose parent is a file', '/etc/hostname/data', 'DATA_DIR: /etc/hostname is not a directory'],
  ])('exits with status 1 quickly for a DATA_DIR that cannot be created: %s', (_label, dataDir, message) => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'main.ts')], {
      env: { PATH: process.env.PATH, SANDBOX: 'off', CDS_AUTH: 'open', PORT: '0', LOG_LEVEL: 'silent', DATA_DIR: dataDir },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(res.status).toBe(1);
    expect(res.stderr).toContain(`priorpath: storage failed to open: ${message}`);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  }, 70_000);

  it('exits with status 1 naming DATABASE_URL and the reason when PostgreSQL cannot be reached at start-up', async () => {
    // A port nothing listens on: taken from the kernel, then given back.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const res = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'main.ts')], {
      env: { PATH: process.env.PATH, SANDBOX: 'off', CDS_AUTH: 'open', PORT: '0', LOG_LEVEL: 'silent', DATABASE_URL: `postgres://priorpath:secret-pw@127.0.0.1:${port}/priorpath` },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(res.status).toBe(1);
    expect(res.stderr).toContain('DATABASE_URL: PostgreSQL cannot be reached');
    expect(res.stderr).toContain('ECONNREFUSED');
    // Not the answer a request gets (there is no request to retry), and never the password.
    expect(res.stderr).not.toContain('Retry the same request');
    expect(res.stderr).not.toContain('secret-pw');
  }, 70_000);

  it('exits with status 1 before listening when NODE_ENV=production and CDS_AUTH=open', () => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'main.ts')], {
      env: { PATH: process.env.PATH, NODE_ENV: 'production', CDS_AUTH: 'open', PORT: '0' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(res.status).toBe(1);
    expect(res.stderr).toContain('CDS_AUTH');
    expect(res.stdout).not.toContain('listening');
  });

  it('reads CORS_ORIGINS as * or a list of exact origins (README Configuration)', () => {
    expect(loadConfig({}).corsOrigins).toBe('*');
    expect(loadConfig({ CORS_ORIGINS: '*' }).corsOrigins).toBe('*');
    expect(loadConfig({ CORS_ORIGINS: 'https://ehr.example.org, http://localhost:8080' }).corsOrigins).toEqual(['https://ehr.example.org', 'http://localhost:8080']);
  });

  it('defaults what design.md §3 leaves unset, and derives PUBLIC_BASE_URL from PORT', () => {
    const c = loadConfig({});
    expect(c.logLevel).toBe('info');
    expect(c.defaultPayer).toBeUndefined();
    expect(c.databaseUrl).toBeUndefined();
    expect(c.fhirSandboxUrl).toBeUndefined();
    expect(loadConfig({ PORT: '8080' }).publicBaseUrl).toBe('http://localhost:8080');
    expect(loadConfig({ NODE_ENV: 'production' }).cdsAuth).toBe('required');
    expect(loadConfig({ DATABASE_URL: 'postgresql://priorpath:priorpath@db:5432/priorpath' }).databaseUrl).toBe('postgresql://priorpath:priorpath@db:5432/priorpath');
    expect(loadConfig({ DATABASE_URL: 'postgres://priorpath@127.0.0.1:5433/priorpath' }).databaseUrl).toBeDefined();
  });

  it.each([
    [{ PORT: '70000' }, 'PORT'],
    [{ PORT: '-1' }, 'PORT'],
    [{ EHR_TIMEOUT_MS: 'two seconds' }, 'EHR_TIMEOUT_MS'],
    [{ EHR_TIMEOUT_MS: '0' }, 'EHR_TIMEOUT_MS'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ SANDBOX: 'maybe' }, 'SANDBOX'],
    [{ NODE_ENV: 'production', SANDBOX: 'on' }, 'SANDBOX'],
    [{ CANONICAL_BASE: 'priorpath.dev/fhir' }, 'CANONICAL_BASE'],
    [{ FHIR_SANDBOX_URL: 'hapi:8080/fhir' }, 'FHIR_SANDBOX_URL'],
    [{ DATABASE_URL: 'not a url' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'mysql://priorpath@db/priorpath' }, 'DATABASE_URL'],
    [{ PUBLIC_BASE_URL: 'localhost:3000' }, 'PUBLIC_BASE_URL'],
    [{ PUBLIC_BASE_URL: 'ftp://priorpath.example.org' }, 'PUBLIC_BASE_URL'],
    [{ CDS_TRUSTED_CLIENTS: '[{"jku":"https://ehr.example.org/jwks.json"}]' }, 'CDS_TRUSTED_CLIENTS'],
    [{ CDS_TRUSTED_CLIENTS: '[{"iss":"https://ehr.example.org","jwks":{"keys":"none"}}]' }, 'CDS_TRUSTED_CLIENTS'],
    [{ CORS_ORIGINS: 'ehr.example.org' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: 'https://ehr.example.org/' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: 'https://ehr.example.org, https://dtr.example.org/app' }, 'CORS_ORIGINS'],
    [{ CORS_ORIGINS: ',' }, 'CORS_ORIGINS'],
    // The operator's pass over every variable (whitespace, wrong type, out of range, a base URL with a query).
    ...['NODE_ENV', 'PORT', 'PUBLIC_BASE_URL', 'CDS_TRUSTED_CLIENTS', 'CDS_AUTH', 'DEFAULT_PAYER', 'DATABASE_URL', 'DATA_DIR', 'SANDBOX', 'FHIR_SANDBOX_URL', 'EHR_TIMEOUT_MS', 'LOG_LEVEL', 'CANONICAL_BASE', 'CORS_ORIGINS', 'REVIEW_TOKEN', 'PAYER_API_CLIENTS', 'PAYER_API_AUTH', 'PAS_VERSION', 'SUBSCRIPTION_ENDPOINTS_ALLOW'].map(
      (name): [Record<string, string>, string] => [{ [name]: '   ' }, name],
    ),
    [{ REVIEW_TOKEN: ' '.repeat(16) }, 'REVIEW_TOKEN'],
    [{ NODE_ENV: 'prod' }, 'NODE_ENV'],
    [{ NODE_ENV: 'Production' }, 'NODE_ENV'],
    [{ PORT: '1e3' }, 'PORT'],
    [{ PORT: '0x10' }, 'PORT'],
    [{ PORT: ' 3000' }, 'PORT'],
    [{ PORT: '3000.5' }, 'PORT'],
    [{ EHR_TIMEOUT_MS: '1e3' }, 'EHR_TIMEOUT_MS'],
    [{ EHR_TIMEOUT_MS: '60001' }, 'EHR_TIMEOUT_MS'],
    [{ PUBLIC_BASE_URL: 'https://priorpath.example.org?tenant=a' }, 'PUBLIC_BASE_URL'],
    [{ PUBLIC_BASE_URL: 'https://priorpath.example.org/#top' }, 'PUBLIC_BASE_URL'],
    [{ PUBLIC_BASE_URL: 'https://admin:secret@priorpath.example.org' }, 'PUBLIC_BASE_URL'],
    [{ FHIR_SANDBOX_URL: 'http://hapi:8080/fhir?_format=json' }, 'FHIR_SANDBOX_URL'],
    [{ CANONICAL_BASE: 'ftp://priorpath.dev/fhir' }, 'CANONICAL_BASE'],
    [{ CANONICAL_BASE: 'https://priorpath.dev/fhir?v=2' }, 'CANONICAL_BASE'],
    [{ DATABASE_URL: 'postgres://' }, 'DATABASE_URL'],
  ])('refuses %j with a message naming %s (design.md §3)', (env, name) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(name);
  });
  describe('client keys given at start (jwks, jwksFile) are read and checked then (design.md §3)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'priorpath-config-keys-'));
    const publicJwk = { ...generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' }), kid: 'ehr-k1', alg: 'ES384' };
    const goodFile = join(dir, 'good-jwks.json');
    writeFileSync(goodFile, JSON.stringify({ keys: [publicJwk] }));
    const notJson = join(dir, 'not-json.json');
    writeFileSync(notJson, 'these are not keys');
    const missing = join(dir, 'missing-jwks.json');
    // A point that is not on P-384: a made-up x and y.
    const offCurve = { kty: 'EC', crv: 'P-384', kid: 'bad', x: 'nfD7nVvn4SP4mEcAq5ezqtVAfjIk8j5dBvmMNhq0mLxixjBK5gctINQFVF9v0Gni', y: 'yLi1fj3J3C5CekJSvXWvu8x5sgNZGEiIKkzzRs6eVTyvsEdhaCWjNnalbanrOOVy' };
    const cds = (source: object) => ({ CDS_TRUSTED_CLIENTS: JSON.stringify([{ iss: 'https://ehr.example.org', ...source }]) });
    const payer = (source: object) => ({ PAYER_API_CLIENTS: JSON.stringify([{ clientId: 'ehr-backend', scopes: 'system/Claim.c', ...source }]) });

    it('accepts a readable jwksFile and an inline jwks of public keys', () => {
      expect(() => loadConfig({ ...cds({ jwksFile: goodFile }), ...payer({ jwksFile: goodFile }) })).not.toThrow();
      expect(() => loadConfig({ ...cds({ jwks: { keys: [publicJwk] } }), ...payer({ jwks: { keys: [publicJwk] } }) })).not.toThrow();
    });

    it('reads each jwksFile once, at the configuration check, and hands its keys on to the app', () => {
      const once = join(dir, 'read-once-jwks.json');
      writeFileSync(once, JSON.stringify({ keys: [publicJwk] }));
      const config = loadConfig({ ...cds({ jwksFile: once }), ...payer({ jwksFile: once }) });
      // Gone after the check: building the app must not need it again (it was read twice, by createApp's verifier).
      rmSync(once);
      expect(() => createApp({ config, content: testContent(), storage: new MemoryStorage(), logger: createLogger('silent') })).not.toThrow();
      expect(config.trustedClients[0]).toMatchObject({ iss: 'https://ehr.example.org', jwks: { keys: [publicJwk] } });
      expect(config.payerApiClients[0]).toMatchObject({ clientId: 'ehr-backend', jwks: { keys: [publicJwk] } });
    });

    it.each([
      ['a jwksFile that does not exist', cds({ jwksFile: missing }), /CDS_TRUSTED_CLIENTS\[0\] \(iss "https:\/\/ehr.example.org"\).*cannot read jwksFile/],
      ['a jwksFile that is not JSON', cds({ jwksFile: notJson }), /CDS_TRUSTED_CLIENTS\[0\].*cannot read jwksFile/],
      ['a jwks key that is not a point of its curve', cds({ jwks: { keys: [offCurve] } }), /CDS_TRUSTED_CLIENTS\[0\].*keys\[0\] \(kid "bad"\) is not a usable public key/],
      ['an empty jwks', cds({ jwks: { keys: [] } }), /CDS_TRUSTED_CLIENTS\[0\].*holds no key/],
      ['a payer client jwksFile that does not exist', payer({ jwksFile: missing }), /PAYER_API_CLIENTS\[0\] \(clientId "ehr-backend"\).*cannot read jwksFile/],
      ['a payer client jwks with an unusable key', payer({ jwks: { keys: [offCurve] } }), /PAYER_API_CLIENTS\[0\].*not a usable public key/],
      ['a payer client with an empty jwks', payer({ jwks: { keys: [] } }), /PAYER_API_CLIENTS\[0\].*holds no key/],
    ])('refuses %s with a ConfigError naming the variable and the client', (_label, env, message) => {
      expect(() => loadConfig(env)).toThrow(ConfigError);
      expect(() => loadConfig(env)).toThrow(message);
    });

    it('exits with status 1 before listening for a missing jwksFile, naming the variable without a stack', () => {
      const res = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'main.ts')], {
        env: { PATH: process.env.PATH, SANDBOX: 'off', PORT: '0', ...payer({ jwksFile: missing }), DATA_DIR: join(dir, 'data-unused') },
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(res.status).toBe(1);
      expect(res.stderr).toContain('PAYER_API_CLIENTS[0]');
      expect(res.stderr).not.toMatch(/\n\s+at /);
      expect(res.stdout).not.toContain('listening');
    });
  });
});
