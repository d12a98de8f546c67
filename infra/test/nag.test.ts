import * as fs from 'fs';
import * as path from 'path';
import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IConstruct } from 'constructs';
import { INFRA_DIR } from '../lib/config';
import { CUSTOM_DOMAIN, synth } from './helpers';

/** Every cdk-nag acknowledgement recorded in the tree: 'rule id @ construct path' → reason. */
function acknowledgements(root: IConstruct): Map<string, string> {
  const found = new Map<string, string>();
  for (const c of root.node.findAll()) {
    for (const entry of c.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
        // aws-cdk-lib acknowledges some of its own template-validation rules; those are not ours.
        if (!/^(annotation::)?AwsSolutions-/i.test(id)) continue;
        found.set(`${id.replace(/^annotation::/i, '')} @ ${c.node.path}`, reason);
      }
    }
  }
  return found;
}

/** The acknowledged rules, as infra/README.md lists them. */
const EXPECTED = [
  'AwsSolutions-AS3',
  'AwsSolutions-EC23',
  'AwsSolutions-ECS2',
  'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
  'AwsSolutions-IAM5[Resource::*]',
  'AwsSolutions-S1',
  'AwsSolutions-SMG4',
];

describe('cdk-nag AwsSolutions', () => {
  test.each([
    ['defaults', {}],
    [
      'custom domain, x86_64, optional MFA, alarm e-mail, GitHub deploy role',
      {
        ...CUSTOM_DOMAIN,
        'planb:architecture': 'x86_64',
        'planb:mfa': 'optional',
        'planb:alarmEmail': 'ops@example.com',
        'planb:githubRepo': 'example/planb',
      },
    ],
    ['traces on (the collector sidecar, its X-Ray statement)', { 'planb:traceSampleRatio': '0.1' }],
  ])('no unacknowledged error or warning (%s)', (_name, overrides) => {
    const { stack } = synth(overrides);
    const report = new AwsSolutionsChecks().validateScope(stack);
    const findings = report.violations.map(
      (v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
    );
    expect(findings).toEqual([]);
    expect(report.success).toBe(true);
  });

  test('the pack runs inside synth, so `cdk synth` fails on a new finding', () => {
    const { app } = synth();
    // The plugin is registered on the app (buildApp); synth with it succeeded above.
    expect(() => app.synth({ force: true })).not.toThrow();
  });

  test('every acknowledgement carries a real reason, and README lists each one', () => {
    const acks = acknowledgements(synth().stack);
    const ids = [...new Set([...acks.keys()].map((k) => k.split(' @ ')[0]))].sort();
    expect(ids).toEqual(EXPECTED);
    for (const [where, reason] of acks) {
      expect({ where, long: reason.length > 80 }).toEqual({ where, long: true });
    }
    const readme = fs.readFileSync(path.join(INFRA_DIR, 'README.md'), 'utf8');
    for (const id of ids) expect(readme).toContain(id);
  });

  test("with traces on, the task role's X-Ray statement is the one acknowledged IAM5 on it", () => {
    const acks = acknowledgements(synth({ 'planb:traceSampleRatio': '0.1' }).stack);
    const reason = acks.get('AwsSolutions-IAM5[Resource::*] @ PlanB/Backend/Task/TaskRole');
    expect(reason).toContain('X-Ray has no resource-level permissions');
    // Off, the task role has no "*" to acknowledge.
    expect(acknowledgements(synth().stack).has('AwsSolutions-IAM5[Resource::*] @ PlanB/Backend/Task/TaskRole')).toBe(false);
  });

  test('the optional-MFA variant acknowledges COG2 with its reason', () => {
    const acks = acknowledgements(synth({ 'planb:mfa': 'optional' }).stack);
    expect([...acks.keys()].some((k) => k.startsWith('AwsSolutions-COG2 @'))).toBe(true);
  });
});
