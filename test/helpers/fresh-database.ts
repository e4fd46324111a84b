import { execFileSync } from 'node:child_process';
import pg from 'pg';

/**
 * A fresh database next to DATABASE_URL's (for tests that run PriorPath processes on an empty schema, e.g. replicas
 * racing their migrations): created with CREATE DATABASE when the role may, else as root with `runuser -u postgres --
 * createdb`. Resolves with its URL and a drop(), or with a sentence saying why it could not be made (the test skips).
 */
export async function freshDatabase(url: string, tag = 'replicas'): Promise<{ url: string; drop: () => Promise<void> } | string> {
  const u = new URL(url);
  // As the postgres superuser over the local socket (peer authentication), never prompting for a password.
  const local = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(u.hostname) ? [] : ['-h', u.hostname];
  const name = `${u.pathname.slice(1) || 'priorpath'}_${tag}_${Date.now().toString(36)}`.slice(0, 63);
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } catch {
    if (process.getuid?.() !== 0) return `cannot create a fresh database (role lacks CREATEDB and not root)`;
    try {
      execFileSync('runuser', ['-u', 'postgres', '--', 'createdb', '-w', ...local, '-p', u.port || '5432', '-O', decodeURIComponent(u.username), name], { stdio: 'ignore', timeout: 30_000 });
    } catch (err) {
      return `createdb failed: ${(err as Error).message}`;
    }
  } finally {
    await admin.end();
  }
  const fresh = new URL(url);
  fresh.pathname = `/${name}`;
  const drop = async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => {
      if (process.getuid?.() === 0) execFileSync('runuser', ['-u', 'postgres', '--', 'dropdb', '-w', ...local, '-p', u.port || '5432', '--if-exists', '--force', name], { stdio: 'ignore', timeout: 30_000 });
    });
    await c.end();
  };
  return { url: fresh.toString(), drop };
}

