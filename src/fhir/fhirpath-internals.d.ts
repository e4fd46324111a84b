/**
 * Types for the part of fhirpath.js's value classes the compiled FHIRPath uses (src/fhir/fhirpath-compiler.ts): dates,
 * date-times and quantities, whose arithmetic and comparison are delegated to fhirpath.js itself so they agree exactly
 * (https://hl7.org/fhirpath/N1/#datetime-arithmetic). fhirpath.js ships no declarations for this module.
 */
declare module 'fhirpath/src/types.js' {
  export interface FpContext {
    getDecimal(value: unknown): unknown;
    model: unknown;
  }
  export class FP_Type {
    equals(other: unknown): boolean | undefined;
    compare(other: unknown): number | null;
    plus(other: unknown): FP_Type | null;
    minus(other: unknown): FP_Type | null;
    negate(): FP_Type;
    toString(): string;
    toJSON(): unknown;
  }
  export class FP_DateTime extends FP_Type {
    constructor(ctx: FpContext, text: string);
    asStr: string;
    static checkString(ctx: FpContext, text: string): FP_DateTime | null;
  }
  export class FP_Date extends FP_DateTime {
    static checkString(ctx: FpContext, text: string): FP_Date | null;
  }
  export class FP_Instant extends FP_DateTime {}
  export class FP_Time extends FP_Type {
    static checkString(ctx: FpContext, text: string): FP_Time | null;
  }
  export class FP_Quantity extends FP_Type {
    constructor(ctx: FpContext, value: unknown, unit: string);
  }
  export class FP_Decimal_Native {
    static getDecimal(value: unknown): unknown;
  }
  const types: {
    FP_Type: typeof FP_Type;
    FP_Date: typeof FP_Date;
    FP_DateTime: typeof FP_DateTime;
    FP_Instant: typeof FP_Instant;
    FP_Time: typeof FP_Time;
    FP_Quantity: typeof FP_Quantity;
    FP_Decimal_Native: typeof FP_Decimal_Native;
  };
  export default types;
}
