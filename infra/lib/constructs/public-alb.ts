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
 * (authenticate-cognito), then forwards to the proxy fleet with the x-amzn-oidc-* headers added.
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
        'ALB1 is the public entry point, so 443 is open to the internet by design and every request on it must pass Cognito login (authenticate-cognito) first; 80 only answers with a redirect to 443.',
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
   * Adds the HTTPS listener: authenticate-cognito with `auth`'s pool, client and domain, then
   * forward to `targets` (ALB1's security group is opened to them on `targetPort` only).
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
      defaultAction: new elbv2Actions.AuthenticateCognitoAction({
        userPool: props.auth.userPool,
        userPoolClient: props.auth.userPoolClient,
        userPoolDomain: props.auth.userPoolDomain,
        scope: 'openid email profile',
        onUnauthenticatedRequest: elbv2.UnauthenticatedAction.AUTHENTICATE,
        sessionTimeout: Duration.hours(8),
        next: elbv2.ListenerAction.forward([targetGroup]),
      }),
    });
    // Listener rules run before the default action (the login), lowest priority number first.
    listener.addAction('InternalPaths', {
      priority: 1,
      conditions: [elbv2.ListenerCondition.pathPatterns([...INTERNAL_PATHS])],
      action: elbv2.ListenerAction.fixedResponse(404, {
        contentType: 'application/json',
        messageBody: '{"error":"not_found","message":"no such resource"}',
      }),
    });
    return { listener, targetGroup };
  }
}
