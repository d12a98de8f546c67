import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** Properties of {@link Network}. */
export interface NetworkProps {
  /** NAT gateways: 1 is cheaper, 2 survives the loss of an AZ. */
  readonly natGateways: number;
}

/**
 * The VPC: public subnets for ALB1 and the NAT gateways, private subnets with egress for
 * everything else (proxy instances, ALB2, backend tasks), across two AZs.
 *
 * The backend needs NAT egress: it fetches its JWKS from Cognito's public endpoint (Cognito has no
 * VPC endpoint for it) and ALB1's signing keys from the regional ELB key endpoint.
 */
export class Network extends Construct {
  /** The VPC every other construct is placed in. */
  public readonly vpc: ec2.Vpc;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);

    this.vpc = new ec2.Vpc(this, 'Vpc', {
      // Two AZs: enough for ALBs (they need two) and for the fleets to survive an AZ loss.
      maxAzs: 2,
      natGateways: props.natGateways,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
      ],
      // Restricting the default SG takes a Lambda-backed custom resource; nothing in this stack uses
      // the default SG (every resource gets its own), so that Lambda would guard an empty room.
      restrictDefaultSecurityGroup: false,
      gatewayEndpoints: {
        // Free, and keeps the proxy's asset download and the image layers pulled by Fargate (ECR
        // stores them in S3) off the NAT gateway.
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
        // Free too: the backend's notes traffic to DynamoDB stays off the NAT gateway (and its
        // per-GB charge), and inside AWS's network.
        DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
      },
    });

    // Flow logs: the audit trail for "who talked to what" in a stack whose whole point is
    // controlling who may reach the backend.
    const flowLogGroup = new logs.LogGroup(this, 'FlowLogs', {
      retention: logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogGroup),
      trafficType: ec2.FlowLogTrafficType.ALL,
    });
  }
}
