import { describe, expect, it } from 'vitest';
import { deeperThan } from '../../src/http/json-body.js';

describe('JSON nesting depth', () => {
  it.each([
    ['{}', 1],
    ['[[[]]]', 3],
    ['{"a":{"b":[1,2,{"c":3}]}}', 4],
    ['{"s":"[[[[{{{{"}', 1],
    ['"just a string"', 0],
  ])('measures %s as %d levels', (text, depth) => {
    const value = JSON.parse(text);
    expect(deeperThan(value, depth)).toBe(false);
    if (depth > 0) expect(deeperThan(value, depth - 1)).toBe(true);
  });

  it('finds a deep branch among shallow ones', () => {
    const deep = JSON.parse(`{"a":1,"b":[{"c":2}],"d":${'['.repeat(70)}${']'.repeat(70)}}`);
    expect(deeperThan(deep, 64)).toBe(true);
    expect(deeperThan(deep, 71)).toBe(false);
  });
});
