import { createServer } from 'node:http';
import type { Resource } from '@medplum/fhirtypes';
import { storyResources } from '../test/helpers/stories.js';

/**
 * The EHR of design.md §9's "order-sign needing EHR queries": a FHIR server in its own process that answers every
 * read and search from memory, for any patient id (the story's resources, re-identified as the asked patient, so
 * each bench request can be a different patient). Usage: tsx bench/ehr-stub.ts <story> <port>; prints `ready`.
 */
const [story, port] = process.argv.slice(2);
const resources: Resource[] = storyResources(story);
const patientId = resources.find((r) => r.resourceType === 'Patient')!.id!;
/** The bench re-identifies each request's patient as `b<n>-<story patient id>` (run-bench.ts `reidentify`). */
const PREFIX = /^(b\d+-)?(.*)$/;
const as = (json: string, prefix: string) => (prefix ? json.split(patientId).join(`${prefix}${patientId}`) : json);

const byType = new Map<string, string>();
const byId = new Map<string, string>();
for (const type of new Set(resources.map((r) => r.resourceType))) {
  const of = resources.filter((r) => r.resourceType === type);
  byType.set(type, JSON.stringify({ resourceType: 'Bundle', type: 'searchset', total: of.length, entry: of.map((r) => ({ fullUrl: `${type}/${r.id}`, resource: r, search: { mode: 'match' } })) }));
  for (const r of of) byId.set(`${type}/${r.id}`, JSON.stringify(r));
}
const empty = JSON.stringify({ resourceType: 'Bundle', type: 'searchset', total: 0, entry: [] });

createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://stub');
  const parts = url.pathname.split('/').filter(Boolean);
  const send = (status: number, body: string) => {
    res.writeHead(status, { 'content-type': 'application/fhir+json' });
    res.end(body);
  };
  if (parts.length === 1) {
    const [, prefix = '', patient] = PREFIX.exec((url.searchParams.get('patient') ?? url.searchParams.get('subject') ?? '').replace(/^Patient\//, ''))!;
    const bundle = byType.get(parts[0]);
    return send(200, bundle && patient === patientId ? as(bundle, prefix) : empty);
  }
  if (parts.length === 2) {
    const [, prefix = '', id] = PREFIX.exec(parts[1])!;
    const found = byId.get(`${parts[0]}/${id}`);
    if (found) return send(200, as(found, prefix));
  }
  send(404, JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] }));
}).listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
