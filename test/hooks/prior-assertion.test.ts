/**
 * An order's coverage-information from an earlier CRD call speaks for that order only (design.md §8, the one rule in
 * coverage/assertion-speaks-for.ts). An EHR that makes the next cycle by copying the last cycle's order copies its
 * coverage-information too: the copy is another order, and the earlier cycle's approval number is not its approval.
 */
import type { Extension, MedicationRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

const SIGN = '/cds-services/priorpath-order-sign';
/** A Centene patient whose chart satisfies the policy at signing (CP.PHAR.312 I.A.4.a): approved in real time. */
const STORY = 'centene-mrd-positive';
const infoOf = (o: MedicationRequest) => o.extension!.find((e) => e.url === COVERAGE_INFO_URL)!;
const sub = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url);

describe("an order carrying an earlier order's coverage-information", () => {
  it("is not answered with the earlier order's approval number", async () => {
    const { app } = buildApp({});
    const resources = storyResources(STORY);
    const order = storyOrder(STORY, resources);
    const first = (await request(app).post(SIGN).send(orderSignRequest(resources, order)).expect(200)).body.systemActions[0].resource as MedicationRequest;
    const number = sub(infoOf(first), 'satisfied-pa-id')?.valueString;
    expect(number).toBeTruthy();

    const copy: MedicationRequest = { ...structuredClone(first), id: `${order.id}-copy` };
    const again = (await request(app).post(SIGN).send(orderSignRequest(resources, copy)).expect(200)).body.systemActions[0].resource as MedicationRequest;
    const infos = again.extension!.filter((e) => e.url === COVERAGE_INFO_URL);
    const answered = infos[infos.length - 1];
    expect(sub(answered, 'coverage-assertion-id')?.valueString).not.toBe(sub(infoOf(first), 'coverage-assertion-id')?.valueString);
    expect(sub(answered, 'satisfied-pa-id')?.valueString, "the copy's approval is its own").not.toBe(number);
  });
});
