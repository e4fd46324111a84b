import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { pasSubscription } from './pas-fixtures.js';

// Nothing listens there: the handshake's failure does not matter to what the update answers.
const NOWHERE = 'http://127.0.0.1:9/pas-notifications';

const FHIR = 'application/fhir+json';

describe('PUT /fhir/Subscription/{id} (FHIR R4 update)', () => {
  it('answers 400 for a body without an id or with another id, and changes nothing; the matching id updates', async () => {
    const { app } = buildApp();
    const created = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(pasSubscription(NOWHERE, 'U5521039476'))).expect(201);
    const id: string = created.body.id;
    const changed = pasSubscription('http://127.0.0.1:9/elsewhere', 'U8812340951');

    for (const body of [changed, { ...changed, id: 'another-subscription' }]) {
      const res = await request(app).put(`/fhir/Subscription/${id}`).set('Content-Type', FHIR).send(JSON.stringify(body)).expect(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue[0].expression).toEqual(['Subscription.id']);
    }
    const unchanged = await request(app).get(`/fhir/Subscription/${id}`).expect(200);
    expect(unchanged.body.channel.endpoint).toBe(NOWHERE);

    const updated = await request(app).put(`/fhir/Subscription/${id}`).set('Content-Type', FHIR).send(JSON.stringify({ ...changed, id })).expect(200);
    expect(updated.body.id).toBe(id);
    expect(updated.body.channel.endpoint).toBe('http://127.0.0.1:9/elsewhere');
  });
});
