import { Duration, Validations } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as elbv2Actions from 'aws-cdk-lib/aws-elasticloadbalancingv2-actions';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as route53Targets from 'aws-cdk-lib/aws-route53-targets';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { Alb1Action, Alb1Rule, Alb1Conditions, ALB1_SPEC } from '../alb1-spec';
import { CertificateSource } from '../config';
import { ALB1_IDLE_TIMEOUT_SECS } from '../keepalive';
import { Auth } from './auth';

/** Properties of {@link PublicAlb}. */
export interface PublicAlbProps {
  readonly vpc: ec2.IVpc;
  readonly certificate: CertificateSource;
  /** Where ALB1 writes its access logs. */
  readonly accessLogBucket: s3.IBucket;
  /** ALB1's name; lower case (see the constructor). */
  readonly loadBalancerName: string;
}

/** The listener's rules by id, each with its priority (alb1.json; lowest priority number first). */
export const LISTENER_RULES: Readonly<Record<string, number>> = Object.fromEntries(
  ALB1_SPEC.listener.rules.map((rule) => [rule.id, rule.priority]),
);

/** How long ALB1's session cookie lives (alb1.json). */
export const SESSION_TIMEOUT = Duration.seconds(ALB1_SPEC.listener.sessionTimeoutSeconds);

/** alb1.json's `onUnauthenticatedRequest` values as CDK names them. */
const UNAUTHENTICATED: Record<Extract<Alb1Action, { type: 'authenticate-cognito' }>['onUnauthenticatedRequest'], elbv2.UnauthenticatedAction> = {
  deny: elbv2.UnauthenticatedAction.DENY,
  authenticate: elbv2.UnauthenticatedAction.AUTHENTICATE,
  allow: elbv2.UnauthenticatedAction.ALLOW,
};

/** The conditions of a rule, in the order ALB lists them: method, path, header. */
function conditionsOf(c: Alb1Conditions): elbv2.ListenerCondition[] {
  return [
    ...(c.methods?.length ? [elbv2.ListenerCondition.httpRequestMethods([...c.methods])] : []),
    ...(c.paths?.length ? [elbv2.ListenerCondition.pathPatterns([...c.paths])] : []),
    ...(c.header ? [elbv2.ListenerCondition.httpHeader(c.header.name, [...c.header.values])] : []),
  ];
}

/** What {@link PublicAlb.forwardAuthenticated} needs: who logs users in and where requests go. */
export interface AuthenticatedForwardProps {
  readonly auth: Auth;
  /** The proxy fleet's Auto Scaling group. */
  readonly targets: autoscaling.AutoScalingGroup;
  /** The proxy's listen port, which also serves /healthz. */
  readonly targetPort: number;
}

/** What {@link PublicAlb.forwardAuthenticated} made: the HTTPS listener and the proxies' target group. */
export interface AuthenticatedForward {
  readonly listener: elbv2.ApplicationListener;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
}

/**
 * ALB1, the internet-facing entry: HTTP redirects to HTTPS; HTTPS logs the user in with Cognito
 * (authenticate-cognito), then forwards to the proxy fleet with the x-amzn-oidc-* headers added;
 * bearer tokens are validated by ALB1 instead, and the API answers 401 rather than redirecting.
 *
 * Built in two steps because Cognito's app client needs ALB1's callback URL and ALB1's HTTPS
 * listener needs the app client: the constructor makes the load balancer (so {@link callbackUrl}
 * is known), {@link forwardAuthenticated} adds the HTTPS listener once the client exists.
 */
export class PublicAlb extends Construct {
  /** ALB1. */
  public readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  /** The host name users open: the custom domain, or ALB1's DNS name when there is none. */
  public readonly hostName: string;
  /** `https://<hostName>/`. */
  public readonly url: string;
  /** ALB1's OIDC callback, to register on the Cognito app client. */
  public readonly callbackUrl: string;
  private readonly listenerCertificate: elbv2.ListenerCertificate;

  constructor(scope: Construct, id: string, props: PublicAlbProps) {
    super(scope, id);

    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'ALB1 (internet-facing): 443 and 80 (redirect only) from anywhere; out to the proxies and the IdP',
      allowAllOutbound: false,
    });
    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'Alb', {
      vpc: props.vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroup,
      // An explicit lower-case name gives a lower-case DNS name. The ALB builds its redirect_uri
      // from the host the browser sent (lower case), and Cognito compares callback URLs exactly,
      // so a generated mixed-case name would break the login with redirect_mismatch.
      loadBalancerName: props.loadBalancerName,
      dropInvalidHeaderFields: true,
      // Below the proxy's downstream_keepalive_secs (see keepalive.ts): ALB1 closes idle first.
      idleTimeout: Duration.seconds(ALB1_IDLE_TIMEOUT_SECS),
    });
    this.loadBalancer.logAccessLogs(props.accessLogBucket, 'alb1');
    Validations.of(securityGroup).acknowledge({
      id: 'AwsSolutions-EC23',
      reason:
        'ALB1 is the public entry point, so 443 is open to the internet by design: every request on it passes a Cognito session (authenticate-cognito) or ALB\'s validation of a Cognito access token (jwt-validation) first, except CORS preflights on /api/* and /logout, which carry no credentials and which the backend answers without any data; 80 only answers with a redirect to 443.',
    });

    const cert = props.certificate;
    this.hostName = cert.domainName ?? this.loadBalancer.loadBalancerDnsName;
    this.url = `https://${this.hostName}/`;
    this.callbackUrl = `https://${this.hostName}/oauth2/idpresponse`;

    // fromHostedZoneAttributes, not fromLookup: synth stays offline and credential-free.
    const zone = cert.hostedZone
      ? route53.HostedZone.fromHostedZoneAttributes(this, 'Zone', {
          hostedZoneId: cert.hostedZone.hostedZoneId,
          zoneName: cert.hostedZone.zoneName,
        })
      : undefined;
    if (cert.kind === 'arn') {
      this.listenerCertificate = elbv2.ListenerCertificate.fromArn(cert.certificateArn);
    } else {
      const certificate = new acm.Certificate(this, 'Certificate', {
        domainName: cert.domainName,
        validation: acm.CertificateValidation.fromDns(zone),
      });
      this.listenerCertificate = elbv2.ListenerCertificate.fromCertificateManager(certificate);
    }
    if (zone && cert.domainName) {
      new route53.ARecord(this, 'AliasRecord', {
        zone,
        recordName: cert.domainName,
        target: route53.RecordTarget.fromAlias(new route53Targets.LoadBalancerTarget(this.loadBalancer)),
      });
    }

    this.loadBalancer.addListener('Http', {
      port: 80,
      protocol: elbv2.ApplicationProtocol.HTTP,
      open: true,
      defaultAction: elbv2.ListenerAction.redirect({ protocol: 'HTTPS', port: '443', permanent: true }),
    });
  }

  /**
   * Adds the HTTPS listener and its rules, as alb1.json describes them (see {@link LISTENER_RULES}):
   * ALB's own 404 for the internal paths, CORS preflights and `/logout` straight through, bearer
   * tokens validated by ALB (jwt-validation), the API behind a session without a login redirect
   * (401), and the browser login (authenticate-cognito) for everything else. Every action but a
   * fixed response ends in a forward to `targets` (ALB1's security group is opened to them on
   * `targetPort` only).
   */
  public forwardAuthenticated(props: AuthenticatedForwardProps): AuthenticatedForward {
    const targetGroup = new elbv2.ApplicationTargetGroup(this, 'ProxyTargets', {
      vpc: this.loadBalancer.vpc,
      port: props.targetPort,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targetType: elbv2.TargetType.INSTANCE,
      targets: [props.targets],
      healthCheck: {
        path: '/healthz',
        healthyHttpCodes: '200',
        interval: Duration.seconds(15),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
      // Above Pingora's graceful_shutdown_timeout_seconds, so in-flight requests finish.
      deregistrationDelay: Duration.seconds(30),
    });
    const listener = this.loadBalancer.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [this.listenerCertificate],
      open: true,
      defaultAction: this.action(ALB1_SPEC.listener.defaultAction, props, targetGroup),
    });
    // Listener rules run before the default action, lowest priority number first.
    for (const rule of ALB1_SPEC.listener.rules) this.addRule(listener, rule, props, targetGroup);
    return { listener, targetGroup };
  }

  /** One rule of alb1.json on `listener`, its construct id `<id>Rule` as `addAction` names it. */
  private addRule(listener: elbv2.ApplicationListener, rule: Alb1Rule, props: AuthenticatedForwardProps, targets: elbv2.ApplicationTargetGroup): void {
    const made = new elbv2.ApplicationListenerRule(listener, `${rule.id}Rule`, {
      listener,
      priority: rule.priority,
      conditions: conditionsOf(rule.conditions),
      action: this.action(rule.action, props, targets),
    });
    if (rule.action.type === 'jwt-validation' && rule.action.additionalClaims.length) {
      // aws-cdk-lib's authenticateJwt has no option for extra claims.
      (made.node.defaultChild as elbv2.CfnListenerRule).addPropertyOverride(
        'Actions.0.JwtValidationConfig.AdditionalClaims',
        rule.action.additionalClaims.map((c) => ({ Format: c.format, Name: c.name, Values: [...c.values] })),
      );
    }
  }

  /** An action of alb1.json as CDK's listener action; all but a fixed response end in a forward to `targets`. */
  private action(action: Alb1Action, props: AuthenticatedForwardProps, targets: elbv2.ApplicationTargetGroup): elbv2.ListenerAction {
    const forward = () => elbv2.ListenerAction.forward([targets]);
    switch (action.type) {
      case 'fixed-response':
        return elbv2.ListenerAction.fixedResponse(action.statusCode, { contentType: action.contentType, messageBody: action.messageBody });
      case 'forward':
        return forward();
      case 'jwt-validation':
        return elbv2.ListenerAction.authenticateJwt({ issuer: props.auth.issuer, jwksEndpoint: props.auth.jwksUrl, next: forward() });
      case 'authenticate-cognito':
        // One session for the whole site: every authenticate-cognito action uses the same client,
        // so they share ALB's default session cookie (AWSELBAuthSessionCookie-N).
        return new elbv2Actions.AuthenticateCognitoAction({
          userPool: props.auth.userPool,
          userPoolClient: props.auth.userPoolClient,
          userPoolDomain: props.auth.userPoolDomain,
          scope: ALB1_SPEC.listener.scope,
          onUnauthenticatedRequest: UNAUTHENTICATED[action.onUnauthenticatedRequest],
          sessionTimeout: SESSION_TIMEOUT,
          next: forward(),
        });
    }
  }
}
