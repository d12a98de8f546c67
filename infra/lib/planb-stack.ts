import { CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { PlanBConfig } from './config';
import { AccessLogs } from './constructs/access-logs';
import { AccessQueries } from './constructs/access-queries';
import { AwsEndpoints } from './constructs/aws-endpoints';
import { Auth } from './constructs/auth';
import { BackendService } from './constructs/backend-service';
import { GitHubDeploy } from './constructs/github-deploy';
import { Monitoring } from './constructs/monitoring';
import { Network } from './constructs/network';
import { ProxyFleet } from './constructs/proxy-fleet';
import { PublicAlb } from './constructs/public-alb';
import { TraceCollector } from './constructs/trace-collector';
import { WebAcl } from './constructs/web-acl';

/** Properties of {@link PlanBStack}. */
export interface PlanBStackProps extends StackProps {
  /** The validated inputs (see `readConfig`). */
  readonly config: PlanBConfig;
}

/**
 * The whole Plan B path in one stack:
 * user → ALB1 (Cognito login) → planb-proxy fleet → ALB2 (internal) → planb-backend on Fargate.
 *
 * Thin on purpose: each concern is a construct; this class only wires their outputs together.
 */
export class PlanBStack extends Stack {
  constructor(scope: Construct, id: string, props: PlanBStackProps) {
    super(scope, id, props);
    const { config } = props;

    const { vpc } = new Network(this, 'Network', { natGateways: config.natGateways });
    const logs = new AccessLogs(this, 'AccessLogs');

    // ALB1 first: the Cognito client needs its callback URL.
    const publicAlb = new PublicAlb(this, 'PublicAlb', {
      vpc,
      certificate: config.certificate,
      accessLogBucket: logs.bucket,
      loadBalancerName: publicAlbName(config.stackName),
    });

    const auth = new Auth(this, 'Auth', {
      domainPrefix: config.cognitoDomainPrefix,
      stackName: config.stackName,
      callbackUrl: publicAlb.callbackUrl,
      logoutUrl: publicAlb.url,
      mfa: config.mfa,
    });

    const backend = new BackendService(this, 'Backend', {
      vpc,
      userPool: auth.userPool,
      allowedClients: auth.allowedClients,
      cognitoDomainUrl: auth.domainUrl,
      logoutRedirectUrl: publicAlb.url,
      ssmParameterName: config.ssmParameterName,
      architecture: config.architecture,
      minCapacity: config.backendMinCapacity,
      maxCapacity: config.backendMaxCapacity,
      accessLogBucket: logs.bucket,
      trustedAlbArn: config.verifyAlbSignature ? publicAlb.loadBalancer.loadBalancerArn : undefined,
      metricDetail: config.metricDetail,
    });

    new AccessQueries(this, 'AccessQueries', { logGroup: backend.logGroup, folder: config.stackName });
    if (config.traceSampleRatio !== undefined) {
      new TraceCollector(this, 'Traces', {
        taskDefinition: backend.taskDefinition,
        backend: backend.container,
        logGroup: backend.logGroup,
        platform: backend.imagePlatform,
        sampleRatio: config.traceSampleRatio,
      });
    }

    const proxies = new ProxyFleet(this, 'ProxyFleet', {
      vpc,
      binaryPath: config.proxyBinaryPath,
      architecture: config.architecture,
      instanceType: config.proxyInstanceType,
      upstreamParameter: backend.dnsNameParameter,
      upstreamParameterName: config.ssmParameterName,
      minCapacity: config.proxyMinCapacity,
      maxCapacity: config.proxyMaxCapacity,
      cpuCredits: config.proxyCpuCredits,
      metricDetail: config.metricDetail,
    });
    backend.allowFrom(proxies.autoScalingGroup);
    if (config.proxyAwsAccess === 'endpoints') {
      new AwsEndpoints(this, 'AwsEndpoints', { vpc }).allowFrom(proxies.autoScalingGroup);
    } else {
      proxies.allowHttpsAnywhere();
    }

    const edge = publicAlb.forwardAuthenticated({ auth, targets: proxies.autoScalingGroup, targetPort: proxies.port });
    proxies.signalWhenHealthyIn(edge);
    new WebAcl(this, 'WebAcl', {
      loadBalancer: publicAlb.loadBalancer,
      stackName: config.stackName,
      loggedVerdicts: config.wafLoggedVerdicts,
    });

    const monitoring = new Monitoring(this, 'Monitoring', {
      stackName: config.stackName,
      alb1: { loadBalancer: publicAlb.loadBalancer, targetGroup: edge.targetGroup, p99Threshold: Duration.seconds(1) },
      alb2: { loadBalancer: backend.loadBalancer, targetGroup: backend.targetGroup, p99Threshold: Duration.millis(500) },
      backend,
      alarmEmail: config.alarmEmail,
      metricDetail: config.metricDetail,
    });
    // Next to the circuit breaker: a deployment whose tasks make ALB2 answer 5xx is rolled back.
    backend.rollBackOnAlarms(monitoring.backendDeploymentAlarms());

    if (config.githubRepo) {
      new GitHubDeploy(this, 'GitHubDeploy', {
        repository: config.githubRepo,
        proxyAutoScalingGroupName: proxies.autoScalingGroup.autoScalingGroupName,
        existingProviderArn: config.githubOidcProviderArn,
      });
    }

    new CfnOutput(this, 'PublicAlbDnsName', {
      description: "ALB1's DNS name (point your domain's alias here if the stack does not manage it)",
      value: publicAlb.loadBalancer.loadBalancerDnsName,
    });
    new CfnOutput(this, 'Url', { description: 'Open this in a browser to log in', value: publicAlb.url });
    new CfnOutput(this, 'CognitoDomain', {
      description: 'The hosted-UI host ALB1 redirects to for login',
      value: `${auth.userPoolDomain.domainName}.auth.${this.region}.amazoncognito.com`,
    });
    new CfnOutput(this, 'UserPoolId', { value: auth.userPool.userPoolId });
    new CfnOutput(this, 'UserPoolClientId', { value: auth.userPoolClient.userPoolClientId });
    new CfnOutput(this, 'MachineClientId', {
      description: 'The client-credentials app client for callers without a browser (secret: describe-user-pool-client)',
      value: auth.machineClient.userPoolClientId,
    });
    new CfnOutput(this, 'TokenEndpoint', {
      description: 'Where a machine client gets its access token (grant_type=client_credentials)',
      value: `${auth.domainUrl}/oauth2/token`,
    });
    new CfnOutput(this, 'NotesTableName', { value: backend.notesTable.tableName });
    new CfnOutput(this, 'ProxyAutoScalingGroupName', {
      description: 'scripts/smoke.sh checks the proxy service on each instance of this group',
      value: proxies.autoScalingGroup.autoScalingGroupName,
    });
    new CfnOutput(this, 'AlarmTopicArn', { value: monitoring.topic.topicArn });
    new CfnOutput(this, 'SsmParameterName', {
      description: "The SSM parameter holding ALB2's DNS name",
      value: backend.dnsNameParameter.parameterName,
    });
  }
}

/** ALB1's name: the stack name in lower case (at most 32 characters, no trailing hyphen). */
export function publicAlbName(stackName: string): string {
  return `${stackName.toLowerCase().slice(0, 27).replace(/-+$/, '')}-alb1`;
}
