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

/**
 * WAFv2 web ACL in front of ALB1: AWS's managed rule groups plus a per-IP rate limit, with every
 * request's verdict logged to CloudWatch Logs. The ACL runs before ALB1's listener rules, so
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

    const managed = MANAGED_RULE_GROUPS.map(
      (name, i): wafv2.CfnWebACL.RuleProperty => ({
        name,
        priority: i,
        statement: { managedRuleGroupStatement: { vendorName: 'AWS', name } },
        overrideAction: { none: {} },
        visibilityConfig: visibility(name),
      }),
    );
    const rateLimit: wafv2.CfnWebACL.RuleProperty = {
      name: 'RateLimitPerIp',
      priority: managed.length,
      statement: { rateBasedStatement: { limit: RATE_LIMIT_PER_5_MIN, aggregateKeyType: 'IP' } },
      action: { block: {} },
      visibilityConfig: visibility('RateLimitPerIp'),
    };

    this.acl = new wafv2.CfnWebACL(this, 'Acl', {
      name: `${props.stackName}-alb1`,
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      rules: [...managed, rateLimit],
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
    });
  }
}
