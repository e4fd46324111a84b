/**
 * The DTR steps tests share: the coverage-information of a signed order or a decided response, and the pre-filled
 * draft response of a DTR 2.2 `$questionnaire-package` (design.md §7).
 */
import type {
  Bundle,
  Extension,
  MedicationRequest,
  Parameters,
  QuestionnaireResponse,
  QuestionnaireResponseItem,
  QuestionnaireResponseItemAnswer,
  Resource,
} from '@medplum/fhirtypes';
import type { Express } from 'express';
import request from 'supertest';
import type { buildApp } from './app.js';

type App = ReturnType<typeof buildApp>['app'];

const COVERAGE_INFO = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';

/** The coverage-information extension's parts, on a signed order or a decided response. */
export const coverageInfo = (r: { extension?: Extension[] }) => r.extension!.find((e) => e.url === COVERAGE_INFO)!.extension!;
/** One part of a coverage-information. */
export const sub = (ext: Extension[], url: string) => ext.find((e) => e.url === url);
/** The reasons' texts of a coverage-information. */
export const reasons = (ext: Extension[]) => ext.filter((e) => e.url === 'reason').map((e) => e.valueCodeableConcept?.text ?? '');

/**
 * The output Parameters of `$questionnaire-package` (answered 200) for the order under the Coverage, asked with the
 * order's CRD assertion id as `context` when given (DTR 2.2 input parameters; the input profile stated when given).
 */
export async function packageParameters(app: App | Express, coverage: Resource | undefined, order: MedicationRequest, context?: string, profile?: string): Promise<Parameters> {
  const res = await request(app)
    .post('/fhir/Questionnaire/$questionnaire-package')
    .set('Content-Type', 'application/fhir+json')
    .send(
      JSON.stringify({
        resourceType: 'Parameters',
        ...(profile ? { meta: { profile: [profile] } } : {}),
        parameter: [
          { name: 'coverage', resource: coverage },
          { name: 'order', resource: order },
          ...(context ? [{ name: 'context', valueString: context }] : []),
        ],
      }),
    )
    .expect(200);
  return res.body as Parameters;
}

/** The package Bundle (DTR 2.2 `packagebundle`) for the order under the Coverage. */
export async function packageBundle(app: App, coverage: Resource | undefined, order: MedicationRequest): Promise<Bundle> {
  const out = await packageParameters(app, coverage, order, undefined, 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-qpackage-input-parameters|2.2.0');
  return out.parameter!.find((p) => p.name === 'packagebundle')!.resource as Bundle;
}

/** The package's pre-filled draft response for the order. */
export async function packageDraft(app: App, coverage: Resource | undefined, order: MedicationRequest): Promise<QuestionnaireResponse> {
  const bundle = await packageBundle(app, coverage, order);
  return bundle.entry!.find((e) => e.resource?.resourceType === 'QuestionnaireResponse')!.resource as QuestionnaireResponse;
}

/**
 * The draft's items with `linkId` answered (wherever it is nested; added at the top when the draft has no such item):
 * a clinician completing the one question the chart left open.
 */
export function answering(draft: QuestionnaireResponse, linkId: string, answer: QuestionnaireResponseItemAnswer): QuestionnaireResponseItem[] {
  let found = false;
  const walk = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] | undefined =>
    items?.map((i) => {
      if (i.linkId === linkId) {
        found = true;
        return { ...i, answer: [answer] };
      }
      return i.item ? { ...i, item: walk(i.item) } : i;
    });
  const item = walk(draft.item) ?? [];
  if (!found) item.push({ linkId, answer: [answer] });
  return item;
}
