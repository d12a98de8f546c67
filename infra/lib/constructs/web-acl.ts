import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { Alb1BodyRoute, ALB1_SPEC } from '../alb1-spec';

/** Properties of {@link WebAcl}. */
export interface WebAclProps {
  /** ALB1: the ACL is associated with it. */
  readonly loadBalancer: elbv2.IApplicationLoadBalancer;
  /** Names the ACL and its log group (`aws-waf-logs-<stack>`). */
  readonly stackName: string;
  /** Which verdicts are logged: every request's, or only what a rule blocked or counted. */
  readonly loggedVerdicts: 'all' | 'blockAndCount';
}

/** AWS managed rule groups, in evaluation order (alb1.json: cheapest verdicts first). */
export const MANAGED_RULE_GROUPS: readonly string[] = ALB1_SPEC.waf.managedRuleGroups.map((g) => g.name);

/** Requests one client address may send per 5 minutes before it is blocked for a while (alb1.json). */
export const RATE_LIMIT_PER_5_MIN = ALB1_SPEC.waf.rateLimitPer5Min;

/** A managed rule group's rules that inspect the request body, and the prefix of their labels. */
export interface BodyRules {
  readonly labelNamespace: string;
  /** Rule names as the group names them (`..._BODY`). */
  readonly rules: readonly string[];
}

/**
 * The managed rules that judge the request body, by group (alb1.json). These rules count (and
 * label) instead of blocking; {@link BODY_RULES_OUTSIDE_ROUTES} blocks on their labels everywhere
 * except the body routes ({@link BODY_ROUTES}), which their declared length bounds instead.
 */
export const BODY_RULES: Readonly<Record<string, BodyRules>> = Object.fromEntries(
  ALB1_SPEC.waf.managedRuleGroups
    .filter((g) => g.bodyRules?.length)
    .map((g) => [g.name, { labelNamespace: g.labelNamespace!, rules: g.bodyRules! }]),
);

/** The label a managed body rule adds: its group's namespace, the name ending in `_Body`. */
export function bodyRuleLabel(group: BodyRules, rule: string): string {
  return `${group.labelNamespace}${rule.replace(/_BODY$/, '_Body')}`;
}

/**
 * The routes that take a body (alb1.json): what the body rules look for may be data there (a note
 * is text its owner stores and reads back), and a body may be past WAF's 8 KB inspection, so each
 * is bounded by its declared `Content-Length` instead. WAF cannot measure a body past its 8 KB
 * inspection limit on an ALB; a body without a length (chunked) is bounded by the backend alone.
 */
export const BODY_ROUTES: readonly Alb1BodyRoute[] = ALB1_SPEC.waf.bodyRoutes;

/** The name of the rule re-blocking the counted body rules outside the body routes. */
export const BODY_RULES_OUTSIDE_ROUTES = ALB1_SPEC.waf.outsideBodyRoutesRule;

/**
 * A regular expression matching exactly the decimal numbers above `limit` (leading zeros
 * allowed): WAF compares strings, not numbers, so "greater than" is spelled digit by digit.
 */
export function decimalAbove(limit: number): string {
  if (!Number.isSafeInteger(limit) || limit < 0) throw new Error(`not a non-negative integer: ${limit}`);
  const digits = String(limit);
  const n = digits.length;
  // Longer than the limit: any number of more digits with no leading zero.
  const alternatives = [`[1-9][0-9]{${n},}`];
  // As long: the same first i digits, then a greater digit at i, then anything.
  for (let i = 0; i < n; i++) {
    const d = Number(digits[i]);
    if (d === 9) continue;
    const rest = n - i - 1;
    const head = digits.slice(0, i);
    const greater = d === 8 ? '9' : `[${d + 1}-9]`;
    if (i === 0 && n === 1) alternatives.push(greater);
    else alternatives.push(`${head}${greater}${rest > 0 ? `[0-9]{${rest}}` : ''}`);
  }
  return `^0*(${alternatives.join('|')})$`;
}

/** A WAF logging filter keeping the requests a rule blocked or counted, dropping the rest. */
export const BLOCK_AND_COUNT_ONLY = {
  DefaultBehavior: 'DROP',
  Filters: [
    {
      Behavior: 'KEEP',
      Requirement: 'MEETS_ANY',
      Conditions: [{ ActionCondition: { Action: 'BLOCK' } }, { ActionCondition: { Action: 'COUNT' } }],
    },
  ],
};

/** A byte match on the URI path as ALB1 received it (no transformation: the backend routes on it as is). */
function uriPath(positionalConstraint: 'EXACTLY' | 'STARTS_WITH', searchString: string): wafv2.CfnWebACL.ByteMatchStatementProperty {
  return { fieldToMatch: { uriPath: {} }, positionalConstraint, searchString, textTransformations: [{ priority: 0, type: 'NONE' }] };
}

/** A body route's paths: exactly the one, or starting with the other. */
function routePath(route: Alb1BodyRoute): wafv2.CfnWebACL.StatementProperty {
  return {
    orStatement: {
      statements: [
        { byteMatchStatement: uriPath('EXACTLY', route.paths.exactly) },
        { byteMatchStatement: uriPath('STARTS_WITH', route.paths.startsWith) },
      ],
    },
  };
}

/** One statement, or the or of several (WAF's or needs at least two). */
function anyOf(statements: wafv2.CfnWebACL.StatementProperty[]): wafv2.CfnWebACL.StatementProperty {
  return statements.length === 1 ? statements[0] : { orStatement: { statements } };
}

/**
 * WAFv2 web ACL in front of ALB1: AWS's managed rule groups (their body rules counted, then
 * re-blocked outside the body routes, see {@link BODY_RULES}), a declared-size limit on each
 * body route and a per-IP rate limit, with every request's verdict logged to CloudWatch Logs. The ACL runs before ALB1's listener rules, so
 * floods and exploit probes are dropped before the Cognito redirect or the proxies see them.
 */
export class WebAcl extends Construct {
  /** The web ACL. */
  public readonly acl: wafv2.CfnWebACL;
  /** Where WAF writes its logs; the name must start with `aws-waf-logs-`. */
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: WebAclProps) {
    super(scope, id);
    const metricPrefix = props.stackName;
    const visibility = (name: string): wafv2.CfnWebACL.VisibilityConfigProperty => ({
      cloudWatchMetricsEnabled: true,
      metricName: `${metricPrefix}-${name}`,
      sampledRequestsEnabled: true,
    });

    const managed = MANAGED_RULE_GROUPS.map((name, i): wafv2.CfnWebACL.RuleProperty => {
      const counted = BODY_RULES[name]?.rules ?? [];
      return {
        name,
        priority: i,
        statement: {
          managedRuleGroupStatement: {
            vendorName: 'AWS',
            name,
            ruleActionOverrides: counted.length
              ? counted.map((rule) => ({ name: rule, actionToUse: { count: {} } }))
              : undefined,
          },
        },
        overrideAction: { none: {} },
        visibilityConfig: visibility(name),
      };
    });
    const bodyLabels = Object.values(BODY_RULES).flatMap((group) => group.rules.map((rule) => bodyRuleLabel(group, rule)));
    const anyBodyLabel = anyOf(bodyLabels.map((key) => ({ labelMatchStatement: { scope: 'LABEL', key } })));
    const routePaths = BODY_ROUTES.map(routePath);
    // After the groups, which add the labels; what the groups would have blocked stays blocked
    // wherever the path is no body route.
    const bodyRulesOutsideRoutes: wafv2.CfnWebACL.RuleProperty = {
      name: BODY_RULES_OUTSIDE_ROUTES,
      priority: managed.length,
      statement: routePaths.length
        ? { andStatement: { statements: [anyBodyLabel, { notStatement: { statement: anyOf(routePaths) } }] } }
        : anyBodyLabel,
      action: { block: {} },
      visibilityConfig: visibility(BODY_RULES_OUTSIDE_ROUTES),
    };
    const overLimit = BODY_ROUTES.map((route, i): wafv2.CfnWebACL.RuleProperty => ({
      name: route.overLimitRule,
      priority: managed.length + 1 + i,
      statement: {
        andStatement: {
          statements: [
            routePaths[i],
            {
              regexMatchStatement: {
                fieldToMatch: { singleHeader: { Name: 'content-length' } },
                regexString: decimalAbove(route.maxContentLength),
                textTransformations: [{ priority: 0, type: 'NONE' }],
              },
            },
          ],
        },
      },
      action: { block: {} },
      visibilityConfig: visibility(route.overLimitRule),
    }));
    const rateLimit: wafv2.CfnWebACL.RuleProperty = {
      name: 'RateLimitPerIp',
      priority: managed.length + 1 + overLimit.length,
      statement: { rateBasedStatement: { limit: RATE_LIMIT_PER_5_MIN, aggregateKeyType: 'IP' } },
      action: { block: {} },
      visibilityConfig: visibility('RateLimitPerIp'),
    };

    this.acl = new wafv2.CfnWebACL(this, 'Acl', {
      name: `${props.stackName}-alb1`,
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      rules: [...managed, bodyRulesOutsideRoutes, ...overLimit, rateLimit],
      visibilityConfig: visibility('alb1'),
    });
    new wafv2.CfnWebACLAssociation(this, 'Alb1Association', {
      resourceArn: props.loadBalancer.loadBalancerArn,
      webAclArn: this.acl.attrArn,
    });

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `aws-waf-logs-${props.stackName}`,
      retention: logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // WAF wants the log group's ARN without the trailing ":*" that CDK's logGroupArn carries.
    const logGroupArn = Stack.of(this).formatArn({
      service: 'logs',
      resource: 'log-group',
      resourceName: this.logGroup.logGroupName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    // The log group's name in the ARN is a Ref: CloudFormation creates the group first.
    new wafv2.CfnLoggingConfiguration(this, 'Logging', {
      resourceArn: this.acl.attrArn,
      logDestinationConfigs: [logGroupArn],
      // Cookies carry ALB1's session and Authorization a bearer token: never written to logs.
      redactedFields: [{ singleHeader: { Name: 'cookie' } }, { singleHeader: { Name: 'authorization' } }],
      loggingFilter: props.loggedVerdicts === 'blockAndCount' ? BLOCK_AND_COUNT_ONLY : undefined,
    });
  }
}
