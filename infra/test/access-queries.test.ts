import * as fs from 'fs';
import * as path from 'path';
import { ACCESS_LINE_FIELDS, ACCESS_QUERIES } from '../lib/constructs/access-queries';
import { INFRA_DIR } from '../lib/config';
import { logicalId, synth, Synthesized } from './helpers';

/** The Logs Insights words the saved queries use that are not fields. */
const KEYWORDS = new Set(['fields', 'filter', 'stats', 'sort', 'by', 'as', 'asc', 'desc', 'and', 'or', 'not', 'limit', 'display']);

/**
 * The log fields a Logs Insights query reads: every name but string literals, numbers, keywords,
 * functions (a name before "("), aliases (a name after "as") and the fields CloudWatch Logs adds
 * itself (@timestamp, @message, ...).
 */
function fieldsRead(query: string): string[] {
  const code = query.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, ' ');
  const aliases = new Set([...code.matchAll(/\bas\s+([A-Za-z_][\w.]*)/g)].map((m) => m[1]));
  const names = [...code.matchAll(/(@?[A-Za-z_][\w.]*)(\s*\()?/g)]
    .filter(([, name, call]) => !call && !name.startsWith('@') && !KEYWORDS.has(name.toLowerCase()) && !aliases.has(name))
    .map(([, name]) => name);
  return [...new Set(names)].sort();
}

describe('saved Logs Insights queries on the access line', () => {
  let s: Synthesized;
  let saved: { Name: string; QueryString: string; LogGroupNames: unknown[] }[];

  beforeAll(() => {
    s = synth();
    saved = Object.values(s.template.findResources('AWS::Logs::QueryDefinition')).map((r) => r.Properties);
  });

  test("the reader of query fields sees a name that is not the access line's", () => {
    expect(fieldsRead('filter path = "access" and ispresent(sub)\n| stats count(*) as n by route\n| sort n desc')).toEqual([
      'path',
      'route',
      'sub',
    ]);
  });

  test("each query is saved under the stack's folder, on the backend's log group alone", () => {
    expect(saved.map((q) => q.Name).sort()).toEqual(ACCESS_QUERIES.map((q) => `PlanB/${q.name}`).sort());
    for (const q of saved) expect(q.LogGroupNames).toEqual([{ Ref: logicalId(s.stack, 'Backend/Logs') }]);
  });

  test("the queries read only the access line's fields, and only its lines", () => {
    for (const q of saved) {
      expect({ name: q.Name, unknown: fieldsRead(q.QueryString).filter((f) => !(ACCESS_LINE_FIELDS as readonly string[]).includes(f)) }).toEqual({
        name: q.Name,
        unknown: [],
      });
      expect(q.QueryString.split('\n')[0]).toBe('filter message = "access"');
    }
  });

  test('each query groups by what its name promises', () => {
    const byName = Object.fromEntries(saved.map((q) => [q.Name.replace(/^PlanB\//, ''), q.QueryString]));
    const statsLine = (name: string) => byName[name].split('\n').find((l) => l.startsWith('| stats '))!;
    expect(statsLine('who called a route today')).toMatch(/ by route, method, sub, username, client_id$/);
    expect(statsLine('refusals by code')).toMatch(/ by refusal, route$/);
    expect(byName['refusals by code']).toContain('ispresent(refusal)');
    const slowest = statsLine('the slowest routes');
    for (const stat of ['count(*)', 'avg(duration_ms)', 'pct(duration_ms, 99)', 'max(duration_ms)']) expect(slowest).toContain(stat);
    expect(slowest).toMatch(/ by route$/);
  });

  test("infra/README.md names every saved query", () => {
    const readme = fs.readFileSync(path.join(INFRA_DIR, 'README.md'), 'utf8');
    for (const q of ACCESS_QUERIES) expect(readme).toContain(`"${q.name}"`);
  });

  test('a second stack saves its queries in its own folder', () => {
    const names = Object.values(synth({ 'planb:stackName': 'PlanB-staging' }).template.findResources('AWS::Logs::QueryDefinition')).map(
      (r) => r.Properties.Name,
    );
    expect(names).toHaveLength(ACCESS_QUERIES.length);
    for (const n of names) expect(n).toMatch(/^PlanB-staging\//);
  });
});
