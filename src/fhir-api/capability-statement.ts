import type { CapabilityStatement } from '@medplum/fhirtypes';


/**
 * The searches every canonical resource the payer serves answers (Questionnaire, ValueSet, Library). Every search also
 * pages with `_count` (and the `_offset` its `next` links carry), and ignores other parameters unless the client sends
 * `Prefer: handling=strict` (src/fhir/search-bundle.ts).
 */
const CANONICAL_SEARCH = [
  { name: 'url', type: 'uri' as const, documentation: 'Canonical URL, optionally with |version' },
  { name: 'version', type: 'token' as const },
  { name: '_id', type: 'token' as const },
  { name: 'name', type: 'string' as const },
  { name: 'status', type: 'token' as const },
];
/**
 * The payer FHIR API's CapabilityStatement (FHIR R4 §CapabilityStatement; DTR `dtr-payer-service`; PAS server). The
 * Claim operations are served by the PAS router mounted on the same base; they are declared here so that one
 * `/fhir/metadata` describes the whole endpoint.
 */
export function capabilityStatement(opts: { fhirBase: string; date: string; version?: string; tokenEndpoint?: string }): CapabilityStatement {
  const op = (name: string, definition: string) => ({ name, definition });
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: opts.date,
    publisher: 'PriorPath',
    kind: 'instance',
    // DTR's payer service and the R4 server of the Subscriptions Backport (Subscription create/read/update/delete,
    // $status, rest-hook: what PAS requires of its server for pended results).
    instantiates: [
      'http://hl7.org/fhir/us/davinci-dtr/CapabilityStatement/dtr-payer-service',
      'http://hl7.org/fhir/uv/subscriptions-backport/CapabilityStatement/backport-subscription-server-r4',
    ],
    software: { name: 'PriorPath', ...(opts.version ? { version: opts.version } : {}) },
    implementation: {
      description: 'PriorPath payer API: Da Vinci DTR (Questionnaire packages, adaptive forms) and PAS',
      url: opts.fhirBase,
    },
    fhirVersion: '4.0.1',
    format: ['json', 'application/fhir+json'],
    rest: [
      {
        mode: 'server',
        documentation:
          'Every error is an OperationOutcome. Questionnaires and ValueSets are generated from PriorPath coverage policies. Every search pages with _count (Bundle.total counts every match; next links carry _offset) and ignores parameters it does not support unless the request sends Prefer: handling=strict.',
        // SMART Backend Services (design.md §8): where clients get tokens; details in .well-known/smart-configuration.
        security: {
          cors: true,
          service: [
            {
              coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }],
              text: 'SMART Backend Services: client_credentials with a private_key_jwt assertion (RS384 or ES384), system/ scopes',
            },
          ],
          ...(opts.tokenEndpoint
            ? {
                extension: [
                  {
                    url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
                    extension: [{ url: 'token', valueUri: opts.tokenEndpoint }],
                  },
                ],
              }
            : {}),
          description: `Every operation except metadata and .well-known/smart-configuration needs a bearer token with a system/ scope: see ${opts.fhirBase}/.well-known/smart-configuration`,
        },
        resource: [
          {
            type: 'Questionnaire',
            profile: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-std-questionnaire',
            interaction: [{ code: 'read' }, { code: 'search-type' }],
            searchParam: CANONICAL_SEARCH,
            operation: [
              op(
                'questionnaire-package',
                'http://hl7.org/fhir/us/davinci-dtr/OperationDefinition/questionnaire-package',
              ),
              op('next-question', 'http://hl7.org/fhir/uv/sdc/OperationDefinition/Questionnaire-next-question'),
              op(
                'log-questionnaire-errors',
                'http://hl7.org/fhir/us/davinci-dtr/OperationDefinition/log-questionnaire-errors',
              ),
            ],
          },
          {
            type: 'ValueSet',
            interaction: [{ code: 'read' }, { code: 'search-type' }],
            searchParam: CANONICAL_SEARCH,
            operation: [op('expand', 'http://hl7.org/fhir/OperationDefinition/ValueSet-expand')],
          },
          {
            type: 'Library',
            interaction: [{ code: 'read' }, { code: 'search-type' }],
            searchParam: CANONICAL_SEARCH,
          },
          {
            type: 'QuestionnaireResponse',
            profile: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-questionnaireresponse',
            interaction: [
              {
                code: 'create',
                documentation: 'A completed or amended response: evaluates the answers and returns the determination in ext-coverage-information. An in-progress or stopped one is stored, not evaluated',
              },
              { code: 'read', documentation: 'The response as stored, with its determination' },
              { code: 'vread', documentation: 'The current version only' },
              {
                code: 'update',
                documentation: 'The next version of a response not yet decided (in-progress or stopped); a completed or amended version decides',
              },
            ],
          },
          {
            type: 'Subscription',
            profile: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription',
            // The backport profile every Subscription here conforms to (an id-only or empty payload is not a
            // PASSubscription), listed as the subscriptions test kit looks for it, then PAS's.
            supportedProfile: [
              'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription',
              'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-subscription',
            ],
            documentation:
              'PAS Subscriptions (R4 Subscriptions Backport): topic http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic, rest-hook channel, full-resource (default), id-only or empty payload; filters org-identifier (the sending system: the interchangeSenderID (ISA06) of the Claim TransmissionIdentifiers, or an identifier of the requesting organization; several may be listed with commas) and patient; backport-heartbeat-period honoured. A decided pended request is notified with its PAS response Bundle; undelivered notifications are retried with backoff, held while the subscription is in error and sent once it is active again; $events returns the numbered events (eventsSinceNumber, eventsUntilNumber, content). Endpoints must resolve to public addresses (https in production) unless SUBSCRIPTION_ENDPOINTS_ALLOW allows them. At Subscription.end the subscription turns off and is sent nothing more (an end already past when the subscription is written is kept as sent, not enforced).',
            extension: [
              {
                url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical',
                valueCanonical: 'http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic',
              },
            ],
            interaction: [{ code: 'create' }, { code: 'read' }, { code: 'update' }, { code: 'delete' }, { code: 'search-type' }],
            searchParam: [
              { name: '_id', type: 'token' },
              { name: 'status', type: 'token' },
            ],
            operation: [
              op('status', 'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status'),
              op('events', 'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events'),
            ],
          },
          {
            type: 'ClaimResponse',
            profile: 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claimresponse',
            documentation: 'The current answer to a PAS request, by the reference number PriorPath gave it (ClaimResponse.id): what an id-only notification names. Only the client that filed the request reads it.',
            interaction: [{ code: 'read' }],
          },
          {
            type: 'Claim',
            profile: 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim',
            operation: [
              op('submit', 'http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-submit'),
              op('inquire', 'http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-inquiry'),
            ],
          },
        ],
        operation: [
          op('questionnaire-package', 'http://hl7.org/fhir/us/davinci-dtr/OperationDefinition/questionnaire-package'),
          op('next-question', 'http://hl7.org/fhir/uv/sdc/OperationDefinition/Questionnaire-next-question'),
        ],
      },
    ],
  };
}
