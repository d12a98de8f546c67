import { Alb1Action, Alb1Conditions, ALB1_SPEC, loadAlb1Spec, specProblems } from '../lib/alb1-spec';
import { decimalAbove } from '../lib/constructs/web-acl';
import { logicalId, synth, Synthesized } from './helpers';

/**
 * ALB1 written once: the synthesized HTTPS listener and web ACL are what infra/alb1.json says,
 * rule for rule. The expectations are built here from the file alone (not by the constructs'
 * code), so a construct that drifts from the file fails, and so does a file edited without
 * the constructs following. The stand-in's side is testkit/e2e/test_alb1_spec.py.
 */

type Cfn = Record<string, any>;

/** The CloudFormation conditions the file's conditions stand for, sorted by field. */
function expectedConditions(c: Alb1Conditions): Cfn[] {
  const out: Cfn[] = [];
  if (c.methods) out.push({ Field: 'http-request-method', HttpRequestMethodConfig: { Values: [...c.methods] } });
  if (c.paths) out.push({ Field: 'path-pattern', PathPatternConfig: { Values: [...c.paths] } });
  if (c.header) out.push({ Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: c.header.name, Values: [...c.header.values] } });
  return out.sort((a, b) => a.Field.localeCompare(b.Field));
}

const byField = (conditions: Cfn[]) => [...conditions].sort((a, b) => a.Field.localeCompare(b.Field));

describe('infra/alb1.json is what the CDK app synthesizes', () => {
  let s: Synthesized;
  let rules: Cfn[];
  let defaultActions: Cfn[];
  let acl: Cfn;
  let forward: Cfn;

  beforeAll(() => {
    s = synth();
    const [httpsId, https] = Object.entries(s.template.findResources('AWS::ElasticLoadBalancingV2::Listener')).find(
      ([, l]) => l.Properties.Port === 443,
    )!;
    defaultActions = https.Properties.DefaultActions;
    rules = Object.values(s.template.findResources('AWS::ElasticLoadBalancingV2::ListenerRule'))
      .map((r) => r.Properties)
      .filter((r) => r.ListenerArn.Ref === httpsId);
    acl = Object.values(s.template.findResources('AWS::WAFv2::WebACL'))[0].Properties;
    forward = { Type: 'forward', TargetGroupArn: { Ref: logicalId(s.stack, 'PublicAlb/ProxyTargets') } };
  });

  /** Checks synthesized `actions` against the file's `action` (each but a fixed response ends in the forward). */
  function expectActions(actions: Cfn[], action: Alb1Action, where: string): void {
    const sorted = [...actions].sort((a, b) => (a.Order ?? 0) - (b.Order ?? 0));
    const types = sorted.map((a) => a.Type);
    switch (action.type) {
      case 'fixed-response':
        expect({ where, actions }).toEqual({
          where,
          actions: [
            {
              Type: 'fixed-response',
              FixedResponseConfig: { StatusCode: String(action.statusCode), ContentType: action.contentType, MessageBody: action.messageBody },
            },
          ],
        });
        return;
      case 'forward':
        expect({ where, actions }).toEqual({ where, actions: [forward] });
        return;
      case 'jwt-validation': {
        expect({ where, types }).toEqual({ where, types: ['jwt-validation', 'forward'] });
        const claims = sorted[0].JwtValidationConfig.AdditionalClaims ?? [];
        expect({ where, claims }).toEqual({
          where,
          claims: action.additionalClaims.map((c) => ({ Format: c.format, Name: c.name, Values: [...c.values] })),
        });
        break;
      }
      case 'authenticate-cognito': {
        expect({ where, types }).toEqual({ where, types: ['authenticate-cognito', 'forward'] });
        const cfg = sorted[0].AuthenticateCognitoConfig;
        expect({ where, on: cfg.OnUnauthenticatedRequest, scope: cfg.Scope, timeout: String(cfg.SessionTimeout) }).toEqual({
          where,
          on: action.onUnauthenticatedRequest,
          scope: ALB1_SPEC.listener.scope,
          timeout: String(ALB1_SPEC.listener.sessionTimeoutSeconds),
        });
        break;
      }
    }
    expect({ where, last: { ...sorted[1], Order: undefined } }).toEqual({ where, last: { ...forward, Order: undefined } });
  }

  test('the HTTPS listener has exactly the rules of the file, at their priorities', () => {
    expect(rules.map((r) => r.Priority).sort((a, b) => a - b)).toEqual(
      ALB1_SPEC.listener.rules.map((r) => r.priority).sort((a, b) => a - b),
    );
  });

  test.each(ALB1_SPEC.listener.rules.map((r) => [r.id, r] as const))('rule %s: its conditions and actions are the file\'s', (id, rule) => {
    const found = rules.filter((r) => r.Priority === rule.priority);
    expect(found).toHaveLength(1);
    expect({ id, conditions: byField(found[0].Conditions) }).toEqual({ id, conditions: expectedConditions(rule.conditions) });
    expectActions(found[0].Actions, rule.action, id);
  });

  test("each rule's construct id is the file's id, so its logical id survives edits elsewhere in the file", () => {
    for (const rule of ALB1_SPEC.listener.rules) {
      const props = s.template.toJSON().Resources[logicalId(s.stack, `PublicAlb/Alb/Https/${rule.id}Rule`)]?.Properties;
      expect({ id: rule.id, priority: props?.Priority }).toEqual({ id: rule.id, priority: rule.priority });
    }
  });

  test("the default action is the file's", () => {
    expectActions(defaultActions, ALB1_SPEC.listener.defaultAction, 'default');
  });

  test('the web ACL: the managed groups in order, the body rules counted, then the body-route rules and the rate limit', () => {
    const sorted = [...acl.Rules].sort((a: Cfn, b: Cfn) => a.Priority - b.Priority);
    const waf = ALB1_SPEC.waf;
    expect(sorted.map((r: Cfn) => r.Name)).toEqual([
      ...waf.managedRuleGroups.map((g) => g.name),
      waf.outsideBodyRoutesRule,
      ...waf.bodyRoutes.map((r) => r.overLimitRule),
      'RateLimitPerIp',
    ]);
    waf.managedRuleGroups.forEach((group, i) => {
      const statement = sorted[i].Statement.ManagedRuleGroupStatement;
      expect({ group: group.name, vendor: statement.VendorName, name: statement.Name, overrides: statement.RuleActionOverrides ?? [] }).toEqual({
        group: group.name,
        vendor: 'AWS',
        name: group.name,
        overrides: (group.bodyRules ?? []).map((Name) => ({ Name, ActionToUse: { Count: {} } })),
      });
    });
    expect(sorted[sorted.length - 1].Statement.RateBasedStatement).toEqual({ Limit: waf.rateLimitPer5Min, AggregateKeyType: 'IP' });
  });

  test("the body rules' labels are blocked outside the file's body routes, and each route is bounded by its declared length", () => {
    const waf = ALB1_SPEC.waf;
    const text = (name: string) => JSON.stringify(acl.Rules.find((r: Cfn) => r.Name === name));
    const outside = text(waf.outsideBodyRoutesRule);
    for (const group of waf.managedRuleGroups) {
      for (const rule of group.bodyRules ?? []) expect(outside).toContain(`"${group.labelNamespace}${rule.replace(/_BODY$/, '_Body')}"`);
    }
    for (const route of waf.bodyRoutes) {
      for (const path of [route.paths.exactly, route.paths.startsWith]) expect(outside).toContain(`"SearchString":"${path}"`);
      const limit = acl.Rules.find((r: Cfn) => r.Name === route.overLimitRule);
      expect(limit.Action).toEqual({ Block: {} });
      const [paths, length] = limit.Statement.AndStatement.Statements;
      expect(JSON.stringify(paths)).toContain(`"SearchString":"${route.paths.exactly}"`);
      expect(JSON.stringify(paths)).toContain(`"SearchString":"${route.paths.startsWith}"`);
      expect(length.RegexMatchStatement.RegexString).toBe(decimalAbove(route.maxContentLength));
    }
    // WAF's default Block answer is 403: no custom response, so the stand-in's 403 is AWS's.
    expect(JSON.stringify(acl.Rules)).not.toContain('CustomResponse');
  });
});

describe('the description file is checked when read', () => {
  test('the shipped file has no problems', () => {
    expect(specProblems(loadAlb1Spec())).toEqual([]);
  });

  test('duplicate priorities, unknown actions and unbounded body routes are named', () => {
    const broken = JSON.parse(JSON.stringify(ALB1_SPEC));
    broken.listener.rules[1].priority = broken.listener.rules[0].priority;
    broken.listener.rules[2].action = { type: 'redirect' };
    broken.waf.bodyRoutes[0].maxContentLength = -1;
    const problems = specProblems(broken).join('\n');
    expect(problems).toMatch(/priority 1 is used twice/);
    expect(problems).toMatch(/unknown action type 'redirect'/);
    expect(problems).toMatch(/maxContentLength -1/);
  });
});
