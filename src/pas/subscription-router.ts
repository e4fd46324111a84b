import { randomUUID } from 'node:crypto';
import express from 'express';
import type { Request, Response } from 'express';
import type { Resource } from '@medplum/fhirtypes';
import { readSearch, searchBundle } from '../fhir/search-bundle.js';
import { badRequest, HttpError, notFound, outcome } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Storage, SubscriptionRecord } from '../storage/storage.js';
import { everySubscription, readableBy } from '../storage/storage.js';
import { payerClientOf } from '../http/payer-api-auth.js';
import { ensureJsonBody, handler, logOf, sendFhir } from './http.js';
import { allowedAddresses, EndpointRefused } from '../http/notification-endpoints.js';
import type { EndpointPolicy } from '../http/notification-endpoints.js';
import {
  currentStatus,
  EXT_FILTER_CRITERIA,
  EXT_HEARTBEAT_PERIOD,
  EXT_PAYLOAD_CONTENT,
  EXT_TIMEOUT,
  MAX_NOTIFICATION_TIMEOUT_SECONDS,
  notificationBundle,
  PAS_TOPIC,
  PROFILE_SUBSCRIPTION,
  subscriptionStatus,
} from './subscription-notifications.js';
import type { SubscriptionNotifier } from './subscription-notifier.js';
import { PAS_SUBSCRIPTION } from './pas-urls.js';

export interface SubscriptionDeps {
  storage: Storage;
  logger: Logger;
  notifier: SubscriptionNotifier;
  /** `{PUBLIC_BASE_URL}/fhir`. */
  fhirBase: string;
  /** Where notifications may go (SUBSCRIPTION_ENDPOINTS_ALLOW, https in production). */
  endpoints: EndpointPolicy;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const FILTERS = new Set(['org-identifier', 'patient']);
/** The longest heartbeat period accepted (a day): longer, and a heartbeat no longer tells a channel is alive. */
const MAX_HEARTBEAT_SECONDS = 86_400;
/** A FHIR `instant` (R4 datatypes: to the second, with a time zone). */
const INSTANT = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))$/;

/**
 * Refuses a channel extension PriorPath would otherwise accept and not honour, with a 400 naming it: a
 * backport-timeout (unsignedInt seconds) longer than the notifier waits. (backport-max-count needs nothing: each
 * notification carries one event, so any positiveInt, which the FHIR shape check enforces, is met.)
 */
function checkChannelExtensions(channelExt: Record<string, unknown>[]): void {
  channelExt.forEach((e, i) => {
    const path = `Subscription.channel.extension[${i}]`;
    if (e.url === EXT_TIMEOUT) {
      const v = e.valueUnsignedInt;
      if (!(typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_NOTIFICATION_TIMEOUT_SECONDS)) {
        throw new HttpError(400, outcome('error', 'not-supported', `backport-timeout must be valueUnsignedInt, 1 to ${MAX_NOTIFICATION_TIMEOUT_SECONDS} seconds (PriorPath waits at most ${MAX_NOTIFICATION_TIMEOUT_SECONDS} s for an endpoint)`, [`${path}.valueUnsignedInt`]));
      }
    }
  });
}


/** An HTTP field name (RFC 9110 §5.1 token) and a value without control characters other than tab (§5.5). */
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const controlIn = (v: string) => [...v].some((c) => (c.charCodeAt(0) < 0x20 && c !== '\t') || c.charCodeAt(0) === 0x7f);
/**
 * Headers a client may not set on its notifications: PriorPath sets the content type, and the HTTP client owns the
 * message framing and the connection (Node's fetch refuses most of them, so every notification would fail).
 */
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'transfer-encoding', 'host', 'connection', 'keep-alive', 'upgrade', 'expect', 'te', 'trailer']);

/**
 * Why a `channel.header` entry cannot be sent with each notification, or undefined when it can: it must be a
 * "Name: value" string with a valid field name and value, not one of RESERVED_HEADERS. Refused at create or update,
 * not discovered when every delivery fails.
 */
function headerProblem(h: unknown): string | undefined {
  if (typeof h !== 'string' || h.length >= 4096) return 'each entry must be a "Name: value" string (under 4 KiB)';
  const colon = h.indexOf(':');
  const name = colon > 0 ? h.slice(0, colon).trim() : '';
  if (!FIELD_NAME.test(name)) return `"${h.slice(0, 40)}" is not "Name: value" with a valid HTTP field name`;
  if (controlIn(h.slice(colon + 1))) return `the value of ${name} holds control characters`;
  if (RESERVED_HEADERS.has(name.toLowerCase())) return `${name} is set by PriorPath or its HTTP client, not by the subscriber`;
  return undefined;
}

/**
 * Reads a PASSubscription (PAS 2.2.1 `profile-subscription` on the R4 backport): `criteria` the PAS topic, filters
 * in `_criteria` `backport-filter-criteria` (`org-identifier=…`, `patient=…`), a `rest-hook` channel with an
 * absolute http(s) endpoint, JSON payload, content from `_payload` `backport-payload-content` (default
 * `full-resource`, which PAS requires), an `end` still to come, a backport-timeout PriorPath can keep to. Anything
 * else, and any modifier extension, is a 400 naming the element: nothing is accepted and then ignored (design.md §8).
 */
export function parseSubscription(body: unknown, id: string, owner: string | undefined, now: string): SubscriptionRecord {
  if (!isObject(body) || body.resourceType !== 'Subscription') throw badRequest('Expected a Subscription resource (R4 Subscriptions Backport)', ['Subscription']);
  if (body.criteria !== PAS_TOPIC) {
    throw new HttpError(400, outcome('error', 'not-supported', `Subscription.criteria must be the PAS topic ${PAS_TOPIC}`, ['Subscription.criteria']));
  }
  const criteriaExt = isObject(body._criteria) && Array.isArray(body._criteria.extension) ? body._criteria.extension.filter(isObject) : [];
  const filters = criteriaExt.filter((e) => e.url === EXT_FILTER_CRITERIA).map((e) => e.valueString);
  for (const f of filters) {
    const name = typeof f === 'string' ? f.slice(0, f.indexOf('=')) : '';
    if (typeof f !== 'string' || !f.includes('=') || !FILTERS.has(name) || f.length > 256 || f.endsWith('=')) {
      throw badRequest(`Unsupported filter ${JSON.stringify(f)}: use org-identifier=<sender id> or patient=<member id>`, ['Subscription._criteria.extension']);
    }
  }
  const channel = isObject(body.channel) ? body.channel : undefined;
  if (!channel) throw badRequest('Subscription.channel is required', ['Subscription.channel']);
  // A modifier extension changes what the Subscription means; one PriorPath does not know cannot be ignored (R4 §2.4.2.1).
  for (const [where, element] of [['Subscription', body], ['Subscription.channel', channel]] as const) {
    if (element.modifierExtension !== undefined) {
      throw new HttpError(400, outcome('error', 'not-supported', `${where}.modifierExtension is not supported: PriorPath understands no modifier extension`, [`${where}.modifierExtension`]));
    }
  }
  if (body.end !== undefined) {
    if (typeof body.end !== 'string' || !INSTANT.test(body.end) || !Number.isFinite(Date.parse(body.end))) {
      throw badRequest('Subscription.end must be a FHIR instant with a time zone (2027-05-22T00:00:00Z)', ['Subscription.end']);
    }
  }
  if (channel.type !== 'rest-hook') throw new HttpError(400, outcome('error', 'not-supported', 'Only the rest-hook channel is supported (PAS)', ['Subscription.channel.type']));
  const endpoint = channel.endpoint;
  let url: URL | undefined;
  try {
    url = typeof endpoint === 'string' ? new URL(endpoint) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) throw badRequest('Subscription.channel.endpoint must be an absolute http(s) URL', ['Subscription.channel.endpoint']);
  const payload = channel.payload ?? 'application/fhir+json';
  if (payload !== 'application/fhir+json' && payload !== 'application/json') {
    throw new HttpError(400, outcome('error', 'not-supported', 'Subscription.channel.payload must be application/fhir+json', ['Subscription.channel.payload']));
  }
  const payloadExt = isObject(channel._payload) && Array.isArray(channel._payload.extension) ? channel._payload.extension.filter(isObject) : [];
  const content = payloadExt.find((e) => e.url === EXT_PAYLOAD_CONTENT)?.valueCode ?? 'full-resource';
  if (content !== 'full-resource' && content !== 'id-only' && content !== 'empty') {
    throw badRequest('backport-payload-content must be full-resource, id-only or empty', ['Subscription.channel._payload.extension']);
  }
  const channelExt = Array.isArray(channel.extension) ? channel.extension.filter(isObject) : [];
  checkChannelExtensions(channelExt);
  const at = channelExt.findIndex((e) => e.url === EXT_HEARTBEAT_PERIOD);
  const period = at < 0 ? undefined : channelExt[at].valueUnsignedInt;
  if (at >= 0 && !(typeof period === 'number' && Number.isInteger(period) && period >= 1 && period <= MAX_HEARTBEAT_SECONDS)) {
    throw badRequest(`backport-heartbeat-period must be valueUnsignedInt, 1 to ${MAX_HEARTBEAT_SECONDS} seconds`, [`Subscription.channel.extension[${at}].valueUnsignedInt`]);
  }
  const headers = Array.isArray(channel.header) ? channel.header : [];
  headers.forEach((h, i) => {
    const problem = headerProblem(h);
    if (problem) throw badRequest(`Subscription.channel.header[${i}]: ${problem}`, [`Subscription.channel.header[${i}]`]);
  });
  // PASSubscription fixes the payload to full-resource: an id-only or empty one is a backport Subscription only.
  const profile = content === 'full-resource' ? [PROFILE_SUBSCRIPTION, PAS_SUBSCRIPTION] : [PROFILE_SUBSCRIPTION];
  const resource = { ...body, id, status: 'requested', meta: { profile, lastUpdated: now } };
  return {
    id,
    ...(owner ? { owner } : {}),
    status: 'requested',
    topic: PAS_TOPIC,
    filters: filters as string[],
    endpoint: url.toString(),
    headers: headers as string[],
    content,
    resource,
    eventsCount: 0,
    createdAt: now,
    updatedAt: now,
  };
}

/** The most events one `$events` call answers (the oldest of the range first); ask again from the next number. */
const MAX_EVENTS = 100;

/** An `$events` event number parameter (a string of digits, R4 backport), or undefined when absent. */
function eventNumberParam(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d{1,15}$/.test(v)) throw badRequest(`${name} must be one event number (a non-negative integer)`, [name]);
  return Number(v);
}

/**
 * The Subscription as the client reads it back: what it sent, with the server's id and current status (`off` once
 * its `end` has passed, before the notifier has stored that).
 */
function view(s: SubscriptionRecord, now = new Date()): Record<string, unknown> {
  return { ...s.resource, id: s.id, status: currentStatus(s, now), meta: { ...(s.resource.meta as object), lastUpdated: s.updatedAt } };
}

/**
 * PAS Subscriptions on the payer FHIR API (design.md §8; PAS "Subscriptions", R4 Subscriptions Backport): `POST
 * /Subscription` creates a rest-hook subscription to the PAS topic and starts the handshake (status `requested`,
 * then `active` once the endpoint took it), `GET /Subscription` (search: `_id`, `status`, `_count`) and `GET /Subscription/:id`, `GET /Subscription/:id/$status`, `GET /Subscription/:id/$events` (its numbered events), `PUT
 * /Subscription/:id` (the body's id must be the URL's) and `DELETE /Subscription/:id`. A client sees and changes only its own subscriptions. Each route
 * is one line of the payer API gate's route table (its scope: `system/Subscription.*`).
 */
export function createSubscriptionRouter(deps: SubscriptionDeps): express.Router {
  const { storage, notifier, fhirBase } = deps;
  const router = express.Router();
  const body = ensureJsonBody();

  async function owned(req: Request): Promise<SubscriptionRecord> {
    const s = await storage.getSubscription(String(req.params.id));
    const client = payerClientOf(req);
    // Another client's subscription is not there for this one (no hint that it exists).
    if (!s || !readableBy(s.owner, client)) throw notFound(`No Subscription ${String(req.params.id)}`);
    return s;
  }

  /**
   * Refuses, with a 400 naming `Subscription.channel.endpoint`, an endpoint notifications may not go to (design.md §8
   * "Notification endpoints"). A resolver that does not answer right now is no verdict: each notification is checked
   * again on the address it is sent to.
   */
  async function acceptEndpoint(endpoint: string): Promise<void> {
    try {
      await allowedAddresses(new URL(endpoint), deps.endpoints);
    } catch (err) {
      if (err instanceof EndpointRefused) throw badRequest(`Subscription.channel.endpoint: ${err.reason}`, ['Subscription.channel.endpoint']);
    }
  }

  router.post(
    '/Subscription',
    body,
    handler(async (req: Request, res: Response) => {
      const now = new Date().toISOString();
      const parsed = parseSubscription(req.body, randomUUID(), payerClientOf(req), now);
      await acceptEndpoint(parsed.endpoint);
      // Created `off` (as an update may set it): kept, and sent nothing, not even the handshake, until set requested.
      const off = isObject(req.body) && req.body.status === 'off';
      const s: SubscriptionRecord = off ? { ...parsed, status: 'off' } : parsed;
      await storage.saveSubscription(s);
      if (!off) await storage.enqueueHandshake(s.id, now);
      notifier.kick();
      logOf(req, deps.logger).info({ subscription: s.id, content: s.content, filters: s.filters.length }, 'subscription created');
      res.setHeader('Location', `${fhirBase}/Subscription/${s.id}`);
      sendFhir(res, 201, view(s));
    }),
  );
  router.get(
    '/Subscription',
    handler(async (req: Request, res: Response) => {
      // FHIR search: _id and status filter, _count / _offset page (search-bundle.ts), other parameters are ignored.
      const search = readSearch(req.query, { supported: ['_id', 'status'], prefer: req.get('prefer') });
      const ids = search.filters._id?.split(',');
      const statuses = search.filters.status?.split(',');
      const client = payerClientOf(req);
      const mine: SubscriptionRecord[] = [];
      for await (const page of everySubscription(storage, client === undefined ? {} : { readableBy: client }))
        mine.push(...page.filter((s) => (!ids || ids.includes(s.id)) && (!statuses || statuses.includes(currentStatus(s, new Date())))));
      sendFhir(res, 200, searchBundle({ base: fhirBase, type: 'Subscription', search }, mine.map((s) => view(s) as unknown as Resource)));
    }),
  );
  router.get(
    '/Subscription/:id/\\$status',
    handler(async (req: Request, res: Response) => {
      const s = await owned(req);
      const status = subscriptionStatus({ ...s, status: currentStatus(s, new Date()) }, fhirBase, { type: 'handshake' });
      (status.parameter ?? []).find((p) => p.name === 'type')!.valueCode = 'query-status';
      sendFhir(res, 200, { resourceType: 'Bundle', type: 'searchset', total: 1, entry: [{ fullUrl: `urn:uuid:${status.id}`, resource: status, search: { mode: 'match' } }] });
    }),
  );
  router.get(
    '/Subscription/:id/\\$events',
    handler(async (req: Request, res: Response) => {
      const s = await owned(req);
      const since = eventNumberParam(req.query.eventsSinceNumber, 'eventsSinceNumber') ?? 1;
      const until = eventNumberParam(req.query.eventsUntilNumber, 'eventsUntilNumber') ?? s.eventsCount;
      const content = req.query.content ?? s.content;
      if (content !== 'empty' && content !== 'id-only' && content !== 'full-resource') {
        throw badRequest('content must be empty, id-only or full-resource', ['content']);
      }
      const found = until >= since ? await storage.listSubscriptionEvents(s.id, since, until, MAX_EVENTS) : [];
      // Each event with its request's current state, as a notification sent now would carry it.
      const events = await Promise.all(
        found.map(async (e) => {
          const submission = await storage.getPasSubmission(e.submissionId);
          return { eventNumber: e.eventNumber, submissionId: e.submissionId, responseBundle: submission?.responseBundle, at: submission?.updatedAt ?? e.at };
        }),
      );
      sendFhir(res, 200, notificationBundle({ ...s, status: currentStatus(s, new Date()) }, fhirBase, { type: 'query-event', events, content }));
    }),
  );
  router.get(
    '/Subscription/:id',
    handler(async (req: Request, res: Response) => sendFhir(res, 200, view(await owned(req)))),
  );
  router.put(
    '/Subscription/:id',
    body,
    handler(async (req: Request, res: Response) => {
      const current = await owned(req);
      // FHIR R4 RESTful API "update": a body without an id, or with another id than the URL's, SHALL be a 400.
      if (isObject(req.body) && req.body.resourceType === 'Subscription' && req.body.id !== current.id) {
        throw badRequest(
          req.body.id === undefined ? `Subscription.id is required in an update and must be ${current.id}` : `Subscription.id ${JSON.stringify(req.body.id)} does not match the id in the URL (${current.id})`,
          ['Subscription.id'],
        );
      }
      const now = new Date().toISOString();
      const next = parseSubscription(req.body, current.id, current.owner, now);
      await acceptEndpoint(next.endpoint);
      const off = isObject(req.body) && req.body.status === 'off';
      await storage.saveSubscription({ ...next, status: off ? 'off' : 'requested', createdAt: current.createdAt, eventsCount: current.eventsCount });
      if (!off) await storage.enqueueHandshake(current.id, now);
      notifier.kick();
      sendFhir(res, 200, view((await storage.getSubscription(current.id))!));
    }),
  );
  router.delete(
    '/Subscription/:id',
    handler(async (req: Request, res: Response) => {
      const s = await owned(req);
      await storage.deleteSubscription(s.id);
      logOf(req, deps.logger).info({ subscription: s.id }, 'subscription deleted');
      res.status(204).end();
    }),
  );
  return router;
}
