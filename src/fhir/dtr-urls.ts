/**
 * Canonical URLs of the SDC and Da Vinci DTR artefacts PriorPath's Questionnaires, packages and responses use.
 * SDC: https://hl7.org/fhir/uv/sdc/ (3.0.0, the base of DTR 2.0.1). DTR: https://hl7.org/fhir/us/davinci-dtr/.
 */

export const SDC = 'http://hl7.org/fhir/uv/sdc/StructureDefinition';
export const DTR = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition';

/** DTR standard (non-adaptive) Questionnaire profile; same id in DTR 2.0.1 and 2.2. */
export const DTR_STD_QUESTIONNAIRE = `${DTR}/dtr-std-questionnaire`;
/** The empty adaptive Questionnaire `$questionnaire-package` returns for the `$next-question` route (DTR 2.0.1 and 2.2). */
export const DTR_ADAPT_SEARCH_QUESTIONNAIRE = `${DTR}/dtr-questionnaire-adapt-search`;
/** The Questionnaire contained in `$next-question` responses (DTR 2.0.1 and 2.2). */
export const DTR_ADAPT_QUESTIONNAIRE = `${DTR}/dtr-questionnaire-adapt`;
export const SDC_ADAPT_QUESTIONNAIRE = `${SDC}/sdc-questionnaire-adapt`;
export const DTR_QR = `${DTR}/dtr-questionnaireresponse`;
export const DTR_QR_ADAPT = `${DTR}/dtr-questionnaireresponse-adapt`;
export const DTR_PACKAGE_BUNDLE = `${DTR}/DTR-QPackageBundle`;
export const DTR_PACKAGE_OUTPUT = `${DTR}/dtr-qpackage-output-parameters`;

export const EXT_LAUNCH_CONTEXT = `${SDC}/sdc-questionnaire-launchContext`;
export const LAUNCH_CONTEXT_SYSTEM = 'http://hl7.org/fhir/uv/sdc/CodeSystem/launchContext';
export const EXT_VARIABLE = 'http://hl7.org/fhir/StructureDefinition/variable';
export const EXT_INITIAL_EXPRESSION = `${SDC}/sdc-questionnaire-initialExpression`;
export const EXT_ENABLE_WHEN_EXPRESSION = `${SDC}/sdc-questionnaire-enableWhenExpression`;
export const EXT_ITEM_CONTROL = 'http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl';
export const ITEM_CONTROL_SYSTEM = 'http://hl7.org/fhir/questionnaire-item-control';
export const EXT_QUESTIONNAIRE_UNIT = 'http://hl7.org/fhir/StructureDefinition/questionnaire-unit';
export const EXT_DESIGN_NOTE = 'http://hl7.org/fhir/StructureDefinition/designNote';
export const EXT_HIDDEN = 'http://hl7.org/fhir/StructureDefinition/questionnaire-hidden';
/** R4 core: the inclusive bounds of an item's answers (SDC §Questionnaire: minValue/maxValue on Questionnaire.item). */
export const EXT_MIN_VALUE = 'http://hl7.org/fhir/StructureDefinition/minValue';
export const EXT_MAX_VALUE = 'http://hl7.org/fhir/StructureDefinition/maxValue';
/** A primitive's value given by an expression (SDC §Expression extensions): a date bound of "today". */
export const EXT_CQF_EXPRESSION = 'http://hl7.org/fhir/StructureDefinition/cqf-expression';
/**
 * PriorPath: the item's minValue is itself not an allowed answer (a weight, a dose: more than 0). minValue is
 * inclusive and R4 has no exclusive bound; a renderer that does not know this extension still refuses what is below.
 */
export const EXT_MIN_VALUE_EXCLUDED = 'https://priorpath.dev/fhir/StructureDefinition/min-value-excluded';
export const EXT_ADAPTIVE = `${SDC}/sdc-questionnaire-questionnaireAdaptive`;

export const EXT_INFORMATION_ORIGIN = `${DTR}/information-origin`;
export const EXT_QR_CONTEXT = `${DTR}/qr-context`;
/** DTR 2.2: the Coverage moves out of qr-context into its own extension. */
export const EXT_QR_COVERAGE = `${DTR}/qr-coverage`;
export const EXT_INTENDED_USE = `${DTR}/intendedUse`;
/** CRD 2.2 code system of the DocReason codes (`withpa`, …) that DTR 2.2's intendedUse binds (FHIR-50276). */
export const CRD_COVERAGE_INFORMATION_CODES = 'http://hl7.org/fhir/us/davinci-crd/CodeSystem/coverage-information-codes';

export const UCUM = 'http://unitsofmeasure.org';

/** DTR version a client speaks, as far as wire shapes differ (DTR 2.0.1 vs 2.2 package and parameter names; design.md §7). */
export type DtrVersion = '2.0.1' | '2.2';

/**
 * X12 306 Action Code, the review actions PAS answers (A1 certified in total, A3 not certified, A4 pended): the package names
 * the decision an order's record holds by the same code (dtr/questionnaire-package.ts `orderDecisionIssue`).
 */
export const X12_306_REVIEW_ACTION = 'https://codesystem.x12.org/005010/306';
