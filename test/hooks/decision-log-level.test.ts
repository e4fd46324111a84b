/**
 * The hook's per-order decision line (ids, policy, criterion results) is built only when it will be written: at
 * LOG_LEVEL=warn pino would drop it, and building its criteria map is work on the hook's path for nothing.
 */
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import type { Logger } from '../../src/logger.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { BASE, testContent } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

const SIGN = '/cds-services/priorpath-order-sign';
const STORY = 'centene-mrd-positive';

/** The logger and its children, with each `info` call's message recorded whether or not the level writes it. */
function watched(level: string) {
  const infoCalls: string[] = [];
  const watch = (target: Logger): Logger =>
    new Proxy(target, {
      get(t, prop) {
        if (prop === 'child') return (...args: Parameters<Logger['child']>) => watch(t.child(...args) as unknown as Logger);
        if (prop === 'info') {
          return (obj: unknown, msg?: string) => {
            infoCalls.push(typeof obj === 'string' ? obj : (msg ?? ''));
            return t.info(obj as object, msg);
          };
        }
        const value = Reflect.get(t, prop, t) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(t) : value;
      },
    });
  return { logger: watch(createLogger(level)), infoCalls };
}

async function signWith(level: string) {
  const { logger, infoCalls } = watched(level);
  const config = loadConfig({ PUBLIC_BASE_URL: BASE, LOG_LEVEL: level, CDS_AUTH: 'open' });
  const app = createApp({ config, content: testContent(), storage: new MemoryStorage(), logger });
  const resources = storyResources(STORY);
  await request(app).post(SIGN).send(orderSignRequest(resources, storyOrder(STORY, resources))).expect(200);
  return infoCalls;
}

describe('the decision log line', () => {
  it('is built at LOG_LEVEL=info', async () => {
    expect(await signWith('info')).toContain('decision');
  });

  it('says how many criteria held, failed and were unknown, never which (the results are the patient\'s findings)', async () => {
    const lines: string[] = [];
    const logger = createLogger('info', { write: (line: string) => void lines.push(line) });
    const config = loadConfig({ PUBLIC_BASE_URL: BASE, LOG_LEVEL: 'info', CDS_AUTH: 'open' });
    const app = createApp({ config, content: testContent(), storage: new MemoryStorage(), logger });
    const resources = storyResources(STORY);
    await request(app).post(SIGN).send(orderSignRequest(resources, storyOrder(STORY, resources))).expect(200);
    const decision = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'decision');
    expect(decision).toMatchObject({ outcome: 'satisfied', policy: 'centene-blinatumomab' });
    const criteria = decision!.criteria as Record<string, number>;
    expect(Object.keys(criteria).sort()).toEqual(['met', 'unknown', 'unmet']);
    expect(criteria.met).toBeGreaterThan(0);
    expect(lines.join('\n')).not.toMatch(/mrd-positive-remission|b-all-diagnosis/);
  });

  it('is not built at LOG_LEVEL=warn, where it would not be written', async () => {
    expect(await signWith('warn')).not.toContain('decision');
  });
});
