/**
 * CDS_TRUSTED_CLIENTS parsing — CDS Hooks 2.0 §Trusting CDS Clients.
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
import { describe, expect, it } from 'vitest';
import { parseTrustedClients } from '../../src/auth/trusted-clients.js';

const ecPublic = {
  kty: 'EC',
  crv: 'P-384',
  x: 'nfD7nVvn4SP4mEcAq5ezqtVAfjIk8j5dBvmMNhq0mLxixjBK5gctINQFVF9v0Gni',
  y: 'yLi1fj3J3C5CekJSvXWvu8x5sgNZGEiIKkzzRs6eVTyvsEdhaCWjNnalbanrOOVy',
  kid: 'k1',
};

const parse = (value: unknown) => () => parseTrustedClients(typeof value === 'string' ? value : JSON.stringify(value));

describe('parseTrustedClients', () => {
  it('returns an empty list for an unset or blank variable', () => {
    expect(parseTrustedClients(undefined)).toEqual([]);
    expect(parseTrustedClients('  ')).toEqual([]);
  });

  it('accepts {iss, jku}, {iss, jwks} and {iss, jwksFile} and drops unknown members', () => {
    const clients = parseTrustedClients(
      JSON.stringify([
        { iss: 'https://a.example', jku: 'https://a.example/.well-known/jwks.json', note: 'x' },
        { iss: 'https://b.example', jwks: { keys: [ecPublic] } },
        { iss: 'https://c.example', jwksFile: 'config/c-jwks.json' },
      ]),
    );
    expect(clients).toEqual([
      { iss: 'https://a.example', jku: 'https://a.example/.well-known/jwks.json' },
      { iss: 'https://b.example', jwks: { keys: [ecPublic] } },
      { iss: 'https://c.example', jwksFile: 'config/c-jwks.json' },
    ]);
  });

  it('allows http jku only for 127.0.0.1 and localhost', () => {
    expect(parse([{ iss: 'a', jku: 'http://127.0.0.1:8080/jwks' }])()).toHaveLength(1);
    expect(parse([{ iss: 'a', jku: 'http://localhost/jwks' }])()).toHaveLength(1);
    expect(parse([{ iss: 'a', jku: 'http://ehr.example/jwks' }])).toThrow(/CDS_TRUSTED_CLIENTS\[0\].*must use https/);
    expect(parse([{ iss: 'a', jku: 'http://localhost.evil.example/jwks' }])).toThrow(/must use https/);
    expect(parse([{ iss: 'a', jku: 'ftp://127.0.0.1/jwks' }])).toThrow(/must use https/);
  });

  it.each([
    ['not JSON', '{nope', /CDS_TRUSTED_CLIENTS is not valid JSON/],
    ['not an array', { iss: 'a', jku: 'https://a.example/jwks' }, /CDS_TRUSTED_CLIENTS must be a JSON array/],
    ['an element that is not an object', ['https://a.example'], /CDS_TRUSTED_CLIENTS\[0\] must be an object/],
    ['missing iss', [{ jku: 'https://a.example/jwks' }], /CDS_TRUSTED_CLIENTS\[0\] is missing "iss"/],
    ['empty iss', [{ iss: '', jku: 'https://a.example/jwks' }], /CDS_TRUSTED_CLIENTS\[0\] is missing "iss"/],
    ['none of jku/jwks/jwksFile', [{ iss: 'a' }], /CDS_TRUSTED_CLIENTS\[0\].*needs one of "jku", "jwks" or "jwksFile"/],
    [
      'more than one key source',
      [{ iss: 'a', jku: 'https://a.example/jwks', jwksFile: 'x.json' }],
      /CDS_TRUSTED_CLIENTS\[0\].*exactly one/,
    ],
    ['jku that is not a URL', [{ iss: 'a', jku: 'jwks.json' }], /CDS_TRUSTED_CLIENTS\[0\].*not a valid absolute URL/],
    ['jku that is not a string', [{ iss: 'a', jku: 42 }], /CDS_TRUSTED_CLIENTS\[0\].*must be a URL string/],
    ['jwks without keys', [{ iss: 'a', jwks: {} }], /CDS_TRUSTED_CLIENTS\[0\].*must be a JWK Set/],
    ['jwks key without kty', [{ iss: 'a', jwks: { keys: [{ kid: 'x' }] } }], /CDS_TRUSTED_CLIENTS\[0\].*keys\[0\]/],
    [
      'jwks with private key material',
      [{ iss: 'a', jwks: { keys: [{ ...ecPublic, d: 'secret' }] } }],
      /CDS_TRUSTED_CLIENTS\[0\].*private\/secret key material \(d\)/,
    ],
    [
      'jwks with a symmetric key',
      [{ iss: 'a', jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } }],
      /CDS_TRUSTED_CLIENTS\[0\].*private\/secret key material \(k\)/,
    ],
    ['empty jwksFile', [{ iss: 'a', jwksFile: '' }], /CDS_TRUSTED_CLIENTS\[0\].*"jwksFile" must be a non-empty path/],
    [
      'a duplicate iss',
      [
        { iss: 'a', jku: 'https://a.example/jwks' },
        { iss: 'a', jwksFile: 'a.json' },
      ],
      /CDS_TRUSTED_CLIENTS\[1\]: duplicate iss "a"/,
    ],
  ])('rejects %s with an error naming CDS_TRUSTED_CLIENTS', (_label, value, message) => {
    expect(parse(value)).toThrow(message);
  });
});
