/**
 * A PAS denial is the order's decision (design.md §8 "One authorization per order"): signing the same order again
 * answers it, whatever its start. So the advice signing gives for a timing exclusion (a live vaccine too close to the
 * start) must not be "change the start date and sign again", which cannot work for that order, but to write a new
 * order with the later start.
 */
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { claimResponseOf, reviewActions, storyBundle, TODAY } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const STORY = 'ohsu-live-vaccine';

describe('signing an order whose PAS request was denied for its start date', () => {
  it('says to write a new order with the later start, not to change the start and sign again', async () => {
    const { app } = buildApp({ today: TODAY });
    const resources = storyResources(STORY);
    const order = storyOrder(STORY, resources);
    const reasonOf = (body: { cards: { detail?: string }[]; systemActions?: unknown[] }) => JSON.stringify(body);

    // Before any request, signing gives the timing advice.
    const before = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200);
    expect(reasonOf(before.body)).toMatch(/would meet .*: change the start date and sign again\./);

    const denied = claimResponseOf((await request(app).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(storyBundle(STORY)).expect(200)).body);
    expect(reviewActions(denied)).toEqual([`${X12}#A3`]);

    const after = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200);
    const text = reasonOf(after.body);
    expect(text).toMatch(/Prior authorization denied/);
    expect(text).toMatch(/would meet .*: this order's request was denied, so write a new order with the later start\./);
    expect(text).not.toMatch(/sign again/);
  });
});
