import type { Extension, Questionnaire, QuestionnaireResponse, ValueSet } from '@medplum/fhirtypes';

/**
 * The slice of the LHC-Forms API (lforms 40, `LForms.Util`) the DTR app uses. LHC-Forms is loaded from
 * `/dtr/vendor/lforms-40.1.3/` by classic script tags before the app module runs.
 * @see https://lhncbc.github.io/lforms/ (API), https://github.com/lhncbc/lforms/blob/master/sdc-support.md
 */
export interface LFormsUtil {
  setFHIRContext(client: unknown, vars?: Record<string, unknown>): void;
  addFormToPage(form: unknown, container: HTMLElement, options?: Record<string, unknown>): Promise<void>;
  convertFHIRQuestionnaireToLForms(q: Questionnaire, version: 'R4'): unknown;
  mergeFHIRDataIntoLForms(
    type: 'QuestionnaireResponse',
    qr: QuestionnaireResponse,
    form: unknown,
    version: 'R4',
  ): unknown;
  getFormFHIRData(
    type: 'QuestionnaireResponse',
    version: 'R4',
    container: HTMLElement,
    options?: Record<string, unknown>,
  ): unknown;
  checkValidity(container: HTMLElement): string[] | null;
  removeFormsFromPage(container: HTMLElement): void;
}

export function lforms(): LFormsUtil {
  const lf = (window as unknown as { LForms?: { Util?: LFormsUtil } }).LForms;
  if (!lf?.Util) throw new Error('The form renderer (LHC-Forms) did not load.');
  return lf.Util;
}

/**
 * LHC-Forms' bundled fhirpath.js with its R4 model (`LForms.FHIR.R4.fhirpath`, `.fhirpathModel`), for the expressions
 * LHC-Forms does not evaluate itself (a date item's maxValue: bounds.ts); undefined when this build does not carry it.
 */
export function fhirpathR4(): ((resource: QuestionnaireResponse, expression: string) => unknown[]) | undefined {
  const r4 = (window as unknown as {
    LForms?: { FHIR?: { R4?: { fhirpath?: { evaluate(r: unknown, e: string, ctx: unknown, model: unknown): unknown[] }; fhirpathModel?: unknown } } };
  }).LForms?.FHIR?.R4;
  const fp = r4?.fhirpath;
  if (!fp) return undefined;
  return (resource, expression) => fp.evaluate(resource, expression, { resource }, r4.fhirpathModel);
}

/**
 * A copy of the Questionnaire whose `answerValueSet`s point at contained, expanded copies of the package's ValueSets
 * (`#id`), so the renderer needs no terminology server: the EHR's FHIR server does not hold the payer's value sets,
 * and the package already carries them expanded (DTR §Questionnaire package: "every external ValueSet, expanded").
 */
export function withContainedValueSets(q: Questionnaire, valueSets: ValueSet[]): Questionnaire {
  const copy = structuredClone(q);
  const contained = [...(copy.contained ?? [])];
  const byCanonical = new Map<string, ValueSet>();
  for (const vs of valueSets) {
    if (!vs.url || !vs.expansion) continue;
    byCanonical.set(vs.url, vs);
    if (vs.version) byCanonical.set(`${vs.url}|${vs.version}`, vs);
  }
  const added = new Set<string>();
  const visit = (items: Questionnaire['item']) => {
    for (const item of items ?? []) {
      const vs = item.answerValueSet ? byCanonical.get(item.answerValueSet) : undefined;
      if (vs) {
        const id = (vs.id ?? `vs${added.size}`).replace(/[^A-Za-z0-9\-.]/g, '-');
        if (!added.has(id)) {
          contained.push({ ...structuredClone(vs), id } as ValueSet);
          added.add(id);
        }
        item.answerValueSet = `#${id}`;
      }
      visit(item.item);
    }
  };
  visit(copy.item);
  if (contained.length) copy.contained = contained;
  return copy;
}

/**
 * Sets the form's view mode from the screen width before it is added to the page. LHC-Forms' automatic mode starts
 * at the desktop layout and only changes on a window resize, so a form opened on a phone could keep the two-column
 * layout and scroll sideways; the thresholds are LHC-Forms' own (≤ 400 px small, ≤ 600 px medium).
 */
export function withViewMode(form: unknown, width: number = window.innerWidth): unknown {
  const f = form as { templateOptions?: Record<string, unknown> };
  const viewMode = width <= 400 ? 'sm' : width <= 600 ? 'md' : 'lg';
  f.templateOptions = { ...(f.templateOptions ?? {}), viewMode };
  return f;
}

/** The name an SDC population extension declares: a launch context's name code or a variable's name. */
function declaredName(e: Extension): string | undefined {
  if (e.url.endsWith('/variable')) return e.valueExpression?.name ? `variable:${e.valueExpression.name}` : undefined;
  if (/launchContext$/.test(e.url)) {
    const code = e.extension?.find((x) => x.url === 'name')?.valueCoding?.code;
    return code ? `launchContext:${code}` : undefined;
  }
  return undefined;
}

/**
 * A `$next-question` Questionnaire with the launch contexts and `x-fhir-query` variables of the static form added where
 * the payer's contained form does not declare them already (SDC §launchContext, §variable): its items' pre-fill
 * expressions read them. Adding a name twice would declare it twice, which LHC-Forms does not accept.
 */
export function withPopulationContext(contained: Questionnaire, population: Extension[]): Questionnaire {
  const own = new Set((contained.extension ?? []).map(declaredName).filter((n): n is string => !!n));
  const missing = population.filter((e) => {
    const name = declaredName(e);
    return name !== undefined && !own.has(name);
  });
  return missing.length === 0 ? contained : { ...contained, extension: [...(contained.extension ?? []), ...missing] };
}

/** The slice of LHC-Forms 40's form object (`LForms.LFormsData`) {@link responseWithoutInvalid} reads. */
interface LFormsData {
  itemList?: { linkId?: string; _validationErrors?: unknown[]; _skipLogicStatus?: string }[];
  getFormData(...args: unknown[]): { items?: FormDataItem[] };
  _invalidData?: boolean;
}
interface FormDataItem {
  linkId?: string;
  items?: FormDataItem[];
}

/**
 * The response the form gives with the answers LHC-Forms cannot encode left out (letters in a number field, 2.5 for a
 * count), and the linkIds left out; undefined when nothing is invalid, or when this build of LHC-Forms does not
 * expose what is needed (then no response, as before). LHC-Forms gives no response at all while one answer is
 * invalid (`getFormFHIRData` returns null), so a draft could not be saved and a reload lost every answer typed
 * meanwhile (review ui s44 L4). Its own QuestionnaireResponse conversion is run over the form's data without those
 * items. Reads LHC-Forms 40.1.3 internals (`_getFormObjectInScope`, `itemList[]._validationErrors`, `_invalidData`,
 * `LForms.FHIR.R4.SDC.convertLFormsToQuestionnaireResponse`), pinned by the vendored copy and its browser test.
 */
export function responseWithoutInvalid(container: HTMLElement): { qr: QuestionnaireResponse; leftOut: string[] } | undefined {
  const lf = (window as unknown as {
    LForms?: {
      Util?: { _getFormObjectInScope?: (el: HTMLElement) => LFormsData | undefined; checkValidity(el: HTMLElement): unknown };
      FHIR?: { R4?: { SDC?: { convertLFormsToQuestionnaireResponse?: (data: unknown, noExtensions?: boolean) => QuestionnaireResponse | null } } };
    };
  }).LForms;
  const data = lf?.Util?._getFormObjectInScope?.(container);
  const sdc = lf?.FHIR?.R4?.SDC;
  if (!data?.itemList || !sdc?.convertLFormsToQuestionnaireResponse) return undefined;
  // checkValidity sets each item's validation errors (a disabled item has none that count).
  lf!.Util!.checkValidity(container);
  const leftOut = new Set(
    data.itemList
      .filter((i) => i.linkId && i._validationErrors?.length && i._skipLogicStatus !== 'target-disabled')
      .map((i) => i.linkId!),
  );
  if (leftOut.size === 0) return undefined;
  const prune = (items: FormDataItem[] | undefined): FormDataItem[] | undefined =>
    items?.filter((i) => !leftOut.has(i.linkId ?? '')).map((i) => (i.items ? { ...i, items: prune(i.items) } : i));
  // The conversion reads the form's data through getFormData and refuses it when `_invalidData` is set: a view of the
  // form whose data leaves the invalid answers out, and so is valid.
  const view = Object.create(data) as LFormsData;
  view.getFormData = (...args: unknown[]) => {
    const d = data.getFormData(...args);
    return { ...d, items: prune(d.items) };
  };
  view._invalidData = false;
  const qr = sdc.convertLFormsToQuestionnaireResponse(view);
  return qr ? { qr, leftOut: [...leftOut] } : undefined;
}
