import { describe, expect, it } from 'vitest';
import { jsonDepth } from '../../src/http/json-body.js';

describe('JSON nesting depth', () => {
  it.each([
    ['{}', 1],
    ['[[[]]]', 3],
    ['{"a":{"b":[1,2,{"c":3}]}}', 4],
    ['{"s":"[[[[{{{{"}', 1],
    ['{"s":"quote \\" then [[[ still a string"}', 1],
    ['{"s":"ends with backslash \\\\"}', 1],
    ['"just a string"', 0],
  ])('counts %s as %d', (text, depth) => {
    expect(jsonDepth(text)).toBe(depth);
    expect(() => JSON.parse(text)).not.toThrow();
  });

  it('counts 100 levels', () => {
    expect(jsonDepth(`${'['.repeat(100)}${']'.repeat(100)}`)).toBe(100);
  });
});
