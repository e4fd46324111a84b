import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';

const FHIR = 'application/fhir+json';

/** A PASSubscription (R4 backport, rest-hook, full-resource) for one member's decisions. */
function pasSubscription(memberId: string) {
  return {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'Decisions on pended prior authorization requests',
    criteria: 'http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic',
    _criteria: { extension: [{ url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria', valueString: `patient=${memberId}` }] },
    channel: {
      type: 'rest-hook',
      // Nothing listens there: the handshake's failure does not matter to what the update answers.
      endpoint: 'http://127.0.0.1:9/pas-notifications',
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content', valueCode: 'full-resource' }] },
    },
  };
}

describe('PUT /fhir/Subscription/{id} (FHIR R4 update)', () => {
  it('answers 400 for a body without an id or with another id, and changes nothing; the matching id updates', async () => {
    const { app } = buildApp();
    const created = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(pasSubscription('U5521039476'))).expect(201);
    const id: string = created.body.id;
    const changed = { ...pasSubscription('U8812340951'), channel: { ...pasSubscription('').channel, endpoint: 'http://127.0.0.1:9/elsewhere' } };

    for (const body of [changed, { ...changed, id: 'another-subscription' }]) {
      const res = await request(app).put(`/fhir/Subscription/${id}`).set('Content-Type', FHIR).send(JSON.stringify(body)).expect(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue[0].expression).toEqual(['Subscription.id']);
    }
    const unchanged = await request(app).get(`/fhir/Subscription/${id}`).expect(200);
    expect(unchanged.body.channel.endpoint).toBe('http://127.0.0.1:9/pas-notifications');

    const updated = await request(app).put(`/fhir/Subscription/${id}`).set('Content-Type', FHIR).send(JSON.stringify({ ...changed, id })).expect(200);
    expect(updated.body.id).toBe(id);
    expect(updated.body.channel.endpoint).toBe('http://127.0.0.1:9/elsewhere');
  });
});
