import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';

/** Properties of {@link WebAcl}. */
export interface WebAclProps {
  /** ALB1: the ACL is associated with it. */
  readonly loadBalancer: elbv2.IApplicationLoadBalancer;
  /** Names the ACL and its log group (`aws-waf-logs-<stack>`). */
  readonly stackName: string;
  /** Which verdicts are logged: every request's, or only what a rule blocked or counted. */
  readonly loggedVerdicts: 'all' | 'blockAndCount';
}

/** AWS managed rule groups, in evaluation order (cheapest verdicts first). */
export const MANAGED_RULE_GROUPS = [
  // Known-bad source addresses (bots, scanners): dropped before any other work.
  'AWSManagedRulesAmazonIpReputationList',
  // Request patterns of known exploits (Log4j JNDI, Java deserialization, localhost Host headers).
  'AWSManagedRulesKnownBadInputsRuleSet',
  // The OWASP-style baseline: oversized bodies, XSS, path traversal, bad user agents, ...
  'AWSManagedRulesCommonRuleSet',
] as const;

/** Requests one client address may send per 5 minutes before it is blocked for a while. */
export const RATE_LIMIT_PER_5_MIN = 2000;

/** A managed rule group's rules that inspect the request body, and the prefix of their labels. */
export interface BodyRules {
  readonly labelNamespace: string;
  /** Rule names as the group names them (`..._BODY`). */
  readonly rules: readonly string[];
}

/**
 * The managed rules that judge the request body. A note is text its owner stores and reads back
 * (the backend never interprets it), so `<script>`, `../`, a URL or `${jndi:` in it is data, and a
 * 4096-byte text can take 25 KiB of JSON, past WAF's 8 KB body inspection. These rules count (and
 * label) instead of blocking; {@link BODY_RULES_OUTSIDE_NOTES} blocks on their labels everywhere
 * except the notes API, which {@link NOTES_BODY_LIMIT_BYTES} bounds instead.
 */
export const BODY_RULES: Readonly<Partial<Record<(typeof MANAGED_RULE_GROUPS)[number], BodyRules>>> = {
  AWSManagedRulesKnownBadInputsRuleSet: {
    labelNamespace: 'awswaf:managed:aws:known-bad-inputs:',
    rules: ['JavaDeserializationRCE_BODY', 'Log4JRCE_BODY'],
  },
  AWSManagedRulesCommonRuleSet: {
    labelNamespace: 'awswaf:managed:aws:core-rule-set:',
    rules: ['SizeRestrictions_BODY', 'CrossSiteScripting_BODY', 'GenericLFI_BODY', 'GenericRFI_BODY', 'EC2MetaDataSSRF_BODY'],
  },
};

/** The label a managed body rule adds: its group's namespace, the name ending in `_Body`. */
export function bodyRuleLabel(group: BodyRules, rule: string): string {
  return `${group.labelNamespace}${rule.replace(/_BODY$/, '_Body')}`;
}

/** The notes API's paths: `/api/notes` and everything under `/api/notes/`. */
export const NOTES_PATHS = { exactly: '/api/notes', startsWith: '/api/notes/' } as const;

/** The name of the rule re-blocking the counted body rules outside the notes API. */
export const BODY_RULES_OUTSIDE_NOTES = 'BodyRulesOutsideNotes';

/** The name of the rule refusing notes requests that declare a body over {@link NOTES_BODY_LIMIT_BYTES}. */
export const NOTES_BODY_OVER_LIMIT = 'NotesBodyOverLimit';

/**
 * Largest `Content-Length` WAF lets through to the notes API: above the backend's own limit (25 KiB:
 * every JSON spelling of a 4096-byte text), which answers 413 for what lies between. WAF cannot
 * measure a body past its 8 KB inspection limit on an ALB, so the check is on the declared length;
 * a body without one (chunked) is bounded by the backend alone.
 */
export const NOTES_BODY_LIMIT_BYTES = 32768;

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

/**
 * WAFv2 web ACL in front of ALB1: AWS's managed rule groups (their body rules counted, then
 * re-blocked outside the notes API, see {@link BODY_RULES}), a declared-size limit on the notes
 * API and a per-IP rate limit, with every request's verdict logged to CloudWatch Logs. The ACL runs before ALB1's listener rules, so
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
    const notesPath: wafv2.CfnWebACL.StatementProperty = {
      orStatement: {
        statements: [
          { byteMatchStatement: uriPath('EXACTLY', NOTES_PATHS.exactly) },
          { byteMatchStatement: uriPath('STARTS_WITH', NOTES_PATHS.startsWith) },
        ],
      },
    };
    const bodyLabels = Object.values(BODY_RULES).flatMap((group) => group.rules.map((rule) => bodyRuleLabel(group, rule)));
    // After the groups, which add the labels; what the groups would have blocked stays blocked
    // wherever a body is not a note.
    const bodyRulesOutsideNotes: wafv2.CfnWebACL.RuleProperty = {
      name: BODY_RULES_OUTSIDE_NOTES,
      priority: managed.length,
      statement: {
        andStatement: {
          statements: [
            { orStatement: { statements: bodyLabels.map((key) => ({ labelMatchStatement: { scope: 'LABEL', key } })) } },
            { notStatement: { statement: notesPath } },
          ],
        },
      },
      action: { block: {} },
      visibilityConfig: visibility(BODY_RULES_OUTSIDE_NOTES),
    };
    const notesBodyOverLimit: wafv2.CfnWebACL.RuleProperty = {
      name: NOTES_BODY_OVER_LIMIT,
      priority: managed.length + 1,
      statement: {
        andStatement: {
          statements: [
            notesPath,
            {
              regexMatchStatement: {
                fieldToMatch: { singleHeader: { Name: 'content-length' } },
                regexString: decimalAbove(NOTES_BODY_LIMIT_BYTES),
                textTransformations: [{ priority: 0, type: 'NONE' }],
              },
            },
          ],
        },
      },
      action: { block: {} },
      visibilityConfig: visibility(NOTES_BODY_OVER_LIMIT),
    };
    const rateLimit: wafv2.CfnWebACL.RuleProperty = {
      name: 'RateLimitPerIp',
      priority: managed.length + 2,
      statement: { rateBasedStatement: { limit: RATE_LIMIT_PER_5_MIN, aggregateKeyType: 'IP' } },
      action: { block: {} },
      visibilityConfig: visibility('RateLimitPerIp'),
    };

    this.acl = new wafv2.CfnWebACL(this, 'Acl', {
      name: `${props.stackName}-alb1`,
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      rules: [...managed, bodyRulesOutsideNotes, notesBodyOverLimit, rateLimit],
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
