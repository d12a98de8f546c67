import { BODY_ROUTES, BODY_RULES, BODY_RULES_OUTSIDE_ROUTES, bodyRuleLabel, decimalAbove } from '../lib/constructs/web-acl';
import { synth } from './helpers';

/** A request as WAF sees it, with the labels rules earlier in the ACL added. */
interface Request {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly labels: readonly string[];
}

type Statement = Record<string, any>;

/** The notes API's body route: what these tests hold the ACL to. */
const NOTES = BODY_ROUTES.find((r) => r.name === 'Notes')!;
const NOTES_BODY_LIMIT_BYTES = NOTES.maxContentLength;
const NOTES_BODY_OVER_LIMIT = NOTES.overLimitRule;
const BODY_RULES_OUTSIDE_NOTES = BODY_RULES_OUTSIDE_ROUTES;

/**
 * A model of WAF's evaluation (test double: WAF runs only in AWS) for the statement types this
 * ACL's own rules use: and, or, not, label match, byte match on the URI path, regex match on a
 * header. Anything else throws, so a new statement type cannot pass unevaluated.
 */
function matches(st: Statement, req: Request): boolean {
  if (st.AndStatement) return st.AndStatement.Statements.every((s: Statement) => matches(s, req));
  if (st.OrStatement) return st.OrStatement.Statements.some((s: Statement) => matches(s, req));
  if (st.NotStatement) return !matches(st.NotStatement.Statement, req);
  if (st.LabelMatchStatement) {
    expect(st.LabelMatchStatement.Scope).toBe('LABEL');
    return req.labels.includes(st.LabelMatchStatement.Key);
  }
  if (st.ByteMatchStatement) {
    const b = st.ByteMatchStatement;
    expect(b.FieldToMatch).toEqual({ UriPath: {} });
    expect(b.TextTransformations).toEqual([{ Priority: 0, Type: 'NONE' }]);
    if (b.PositionalConstraint === 'EXACTLY') return req.path === b.SearchString;
    if (b.PositionalConstraint === 'STARTS_WITH') return req.path.startsWith(b.SearchString);
    throw new Error(`the model has no ${b.PositionalConstraint}`);
  }
  if (st.RegexMatchStatement) {
    const r = st.RegexMatchStatement;
    const header = r.FieldToMatch.SingleHeader.Name.toLowerCase();
    expect(r.TextTransformations).toEqual([{ Priority: 0, Type: 'NONE' }]);
    const value = Object.entries(req.headers).find(([k]) => k.toLowerCase() === header)?.[1];
    // A missing header does not match (WAF's behaviour for an absent single header).
    return value !== undefined && new RegExp(r.RegexString).test(value);
  }
  throw new Error(`the model cannot evaluate ${Object.keys(st).join(',')}`);
}

/** Every label the managed body rules can add: the worst case, each of them matching. */
const ALL_BODY_LABELS = Object.values(BODY_RULES).flatMap((g) => g.rules.map((r) => bodyRuleLabel(g, r)));

/** A 4096-byte note full of what the body rules look for, as the notes API's JSON body. */
function noteBody(): string {
  const unit = '<script>alert(1)</script> ../../etc/passwd http://169.254.169.254/ ${jndi:ldap://x} ';
  const text = unit.repeat(Math.ceil(4096 / unit.length)).slice(0, 4096);
  expect(Buffer.byteLength(text)).toBe(4096);
  return JSON.stringify({ text });
}

function request(method: string, path: string, body: string, labels: readonly string[] = ALL_BODY_LABELS): Request {
  return { method, path, headers: { 'Content-Length': String(Buffer.byteLength(body)), 'Content-Type': 'application/json' }, labels };
}

describe('WAF and the notes API', () => {
  let rules: any[];

  beforeAll(() => {
    const acl = Object.values(synth().template.findResources('AWS::WAFv2::WebACL'))[0].Properties;
    rules = [...acl.Rules].sort((a, b) => a.Priority - b.Priority);
  });

  const managed = () => rules.filter((r) => r.Statement.ManagedRuleGroupStatement);
  /** The ACL's own blocking rules, evaluated request by request (the rate limit counts, it does not inspect). */
  const ownBlocking = () => rules.filter((r) => r.Action?.Block && !r.Statement.RateBasedStatement);

  test('inside the managed groups the body rules count (and label), every other rule keeps its action', () => {
    for (const rule of managed()) {
      const name = rule.Statement.ManagedRuleGroupStatement.Name as string;
      const overrides = rule.Statement.ManagedRuleGroupStatement.RuleActionOverrides ?? [];
      expect({ name, overrides }).toEqual({
        name,
        overrides: (BODY_RULES[name]?.rules ?? []).map((Name) => ({ Name, ActionToUse: { Count: {} } })),
      });
      // The group itself is not overridden: what is not counted above still blocks.
      expect(rule.OverrideAction).toEqual({ None: {} });
    }
    // The rules that refused valid notes (size, XSS, path traversal) are among the counted ones.
    expect(BODY_RULES.AWSManagedRulesCommonRuleSet?.rules).toEqual(
      expect.arrayContaining(['SizeRestrictions_BODY', 'CrossSiteScripting_BODY', 'GenericLFI_BODY']),
    );
  });

  test('the rules acting on the labels come after the groups that add them', () => {
    const lastGroup = Math.max(...managed().map((r) => r.Priority));
    for (const rule of ownBlocking()) expect(rule.Priority).toBeGreaterThan(lastGroup);
    expect(ownBlocking().map((r) => r.Name)).toEqual([BODY_RULES_OUTSIDE_NOTES, NOTES_BODY_OVER_LIMIT]);
  });

  test.each([
    ['PUT', '/api/notes/n1'],
    ['POST', '/api/notes'],
  ])('a 4096-byte note with <script> and ../ (%s %s) is matched by no blocking rule, even with every body label', (method, path) => {
    const body = noteBody();
    expect(body).toContain('<script>');
    expect(body).toContain('../');
    const req = request(method, path, body);
    expect(ownBlocking().filter((r) => matches(r.Statement, req)).map((r) => r.Name)).toEqual([]);
  });

  test('so is the same note in its longest JSON spelling (every byte \\u-escaped, past 8 KB)', () => {
    const text = noteBody();
    const escaped = `{"text":"${[...Buffer.from(JSON.parse(text).text)].map((b) => `\\u00${b.toString(16).padStart(2, '0')}`).join('')}"}`;
    expect(Buffer.byteLength(escaped)).toBeGreaterThan(8192);
    expect(Buffer.byteLength(escaped)).toBeLessThanOrEqual(NOTES_BODY_LIMIT_BYTES);
    const req = request('PUT', '/api/notes/n1', escaped);
    expect(ownBlocking().filter((r) => matches(r.Statement, req))).toEqual([]);
  });

  test('the same body anywhere but the notes API is blocked, on any one of the labels', () => {
    const body = noteBody();
    for (const path of ['/', '/api/me', '/api/notesx', '/logout', '/api/note']) {
      for (const label of ALL_BODY_LABELS) {
        const hit = ownBlocking().filter((r) => matches(r.Statement, request('POST', path, body, [label])));
        expect({ path, label, hit: hit.map((r) => r.Name) }).toEqual({ path, label, hit: [BODY_RULES_OUTSIDE_NOTES] });
      }
    }
    // And nothing is blocked where no body rule matched.
    expect(ownBlocking().filter((r) => matches(r.Statement, request('POST', '/api/me', '{}', [])))).toEqual([]);
  });

  test(`a notes request declaring more than ${NOTES_BODY_LIMIT_BYTES} bytes is blocked; one at the limit or without a length is not`, () => {
    const over = ownBlocking().filter((r) =>
      matches(r.Statement, { method: 'PUT', path: '/api/notes/n1', headers: { 'content-length': String(NOTES_BODY_LIMIT_BYTES + 1) }, labels: [] }),
    );
    expect(over.map((r) => r.Name)).toEqual([NOTES_BODY_OVER_LIMIT]);
    const lengths: Record<string, string>[] = [{ 'content-length': String(NOTES_BODY_LIMIT_BYTES) }, { 'content-length': '0' }, {}];
    for (const headers of lengths) {
      const req: Request = { method: 'GET', path: '/api/notes', headers, labels: [] };
      expect(ownBlocking().filter((r) => matches(r.Statement, req))).toEqual([]);
    }
  });

  test('the declared-length regex matches exactly the numbers above the limit', () => {
    const above = new RegExp(decimalAbove(NOTES_BODY_LIMIT_BYTES));
    for (let n = 0; n <= 200_000; n++) {
      if (above.test(String(n)) !== n > NOTES_BODY_LIMIT_BYTES) throw new Error(`wrong for ${n}`);
    }
    for (const big of ['1000000', '99999999999999999999', '00032769']) expect(above.test(big)).toBe(true);
    for (const not of ['00032768', '', '-1', '32768 ', '1e9', 'abc']) expect(above.test(not)).toBe(false);
    // Other limits, so the generator is not right by accident for one number.
    for (const limit of [0, 9, 10, 99, 100, 8192, 25600, 99999]) {
      const re = new RegExp(decimalAbove(limit));
      const wrong: number[] = [];
      for (let n = 0; n <= 120_000; n++) if (re.test(String(n)) !== n > limit) wrong.push(n);
      expect({ limit, wrong }).toEqual({ limit, wrong: [] });
      expect(re.test(String(limit))).toBe(false);
      expect(re.test(String(limit + 1))).toBe(true);
    }
  });
});
