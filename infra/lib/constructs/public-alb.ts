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

/**
 * Paths ALB1 answers itself with a 404, before the login: the backend's operational endpoints are
 * for ALB2's health check and the metrics scraper inside the task, not for signed-in users.
 */
export const INTERNAL_PATHS = ['/metrics', '/metrics/*', '/ready', '/ready/*'] as const;

/** The API's paths: ALB1 answers them 401 without a session instead of redirecting to the login. */
export const API_PATH_PATTERN = '/api/*';

/** The backend's sign-out route, forwarded without authentication. */
export const LOGOUT_PATH = '/logout';

/** How long ALB1's session cookie lives. */
export const SESSION_HOURS = 8;

/**
 * The HTTPS listener's rule priorities (lowest first). Preflights and `/logout` come before the
 * bearer rule, and the bearer rule before the API's session rule, so a preflight never meets a
 * login and a bearer token never meets the session rule's 401.
 */
export const LISTENER_RULES = {
  internalPaths: 1,
  apiPreflight: 10,
  logout: 20,
  bearer: 30,
  api: 40,
} as const;

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
   * Adds the HTTPS listener and its rules (see {@link LISTENER_RULES}): ALB's own 404 for the
   * internal paths, CORS preflights and `/logout` straight through, bearer tokens validated by
   * ALB (jwt-validation), the API behind a session without a login redirect (401), and the browser
   * login (authenticate-cognito) for everything else. Every rule ends in a forward to `targets`
   * (ALB1's security group is opened to them on `targetPort` only).
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
    const forward = () => elbv2.ListenerAction.forward([targetGroup]);
    // One session for the whole site: both authenticate-cognito actions use the same client, so
    // they share ALB's default session cookie (AWSELBAuthSessionCookie-N).
    const cognitoLogin = (onUnauthenticatedRequest: elbv2.UnauthenticatedAction) =>
      new elbv2Actions.AuthenticateCognitoAction({
        userPool: props.auth.userPool,
        userPoolClient: props.auth.userPoolClient,
        userPoolDomain: props.auth.userPoolDomain,
        scope: 'openid email profile',
        onUnauthenticatedRequest,
        sessionTimeout: Duration.hours(SESSION_HOURS),
        next: forward(),
      });

    const listener = this.loadBalancer.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [this.listenerCertificate],
      open: true,
      // What no rule takes is a page: log the browser in, then forward. ALB answers its own
      // callback (/oauth2/idpresponse) here too, since no rule matches that path.
      defaultAction: cognitoLogin(elbv2.UnauthenticatedAction.AUTHENTICATE),
    });
    // Listener rules run before the default action, lowest priority number first.
    listener.addAction('InternalPaths', {
      priority: LISTENER_RULES.internalPaths,
      conditions: [elbv2.ListenerCondition.pathPatterns([...INTERNAL_PATHS])],
      action: elbv2.ListenerAction.fixedResponse(404, {
        contentType: 'application/json',
        messageBody: '{"error":"not_found","message":"no such resource"}',
      }),
    });
    // A CORS preflight carries no cookie and no Authorization: the backend answers it (its
    // CORS_ALLOWED_ORIGINS), and the real request that follows meets the rules below.
    listener.addAction('ApiPreflight', {
      priority: LISTENER_RULES.apiPreflight,
      conditions: [
        elbv2.ListenerCondition.httpRequestMethods(['OPTIONS']),
        elbv2.ListenerCondition.pathPatterns([API_PATH_PATTERN]),
      ],
      action: forward(),
    });
    // Signing out must work without a session (an expired one included): the backend clears
    // ALB's session cookies and sends the browser to Cognito's /logout.
    listener.addAction('Logout', {
      priority: LISTENER_RULES.logout,
      conditions: [elbv2.ListenerCondition.pathPatterns([LOGOUT_PATH])],
      action: forward(),
    });
    // Machine clients (and anyone holding an access token): ALB checks the token's signature
    // against the pool's JWKS, its issuer and expiry, then forwards it as is; the backend still
    // verifies it fully (client id, token_use, scopes).
    // A rule of its own (as addAction would make it) for the override below.
    const bearer = new elbv2.ApplicationListenerRule(listener, 'BearerRule', {
      listener,
      priority: LISTENER_RULES.bearer,
      // Header values match case-insensitively, so "bearer ..." is taken too.
      conditions: [elbv2.ListenerCondition.httpHeader('Authorization', ['Bearer *'])],
      action: elbv2.ListenerAction.authenticateJwt({
        issuer: props.auth.issuer,
        jwksEndpoint: props.auth.jwksUrl,
        next: forward(),
      }),
    });
    // Cognito signs ID and access tokens with the same keys and issuer; only access tokens are
    // meant for the API. (aws-cdk-lib's authenticateJwt has no option for extra claims.)
    const bearerRule = bearer.node.defaultChild as elbv2.CfnListenerRule;
    bearerRule.addPropertyOverride('Actions.0.JwtValidationConfig.AdditionalClaims', [
      { Format: 'single-string', Name: 'token_use', Values: ['access'] },
    ]);
    // API calls from the page: the session cookie passes, its absence is ALB's 401 (a redirect to
    // the login page is something fetch() cannot follow across origins).
    listener.addAction('Api', {
      priority: LISTENER_RULES.api,
      conditions: [elbv2.ListenerCondition.pathPatterns([API_PATH_PATTERN])],
      action: cognitoLogin(elbv2.UnauthenticatedAction.DENY),
    });
    return { listener, targetGroup };
  }
}
