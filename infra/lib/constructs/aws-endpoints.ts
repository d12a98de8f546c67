import { CfnResource, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';

/**
 * The AWS APIs a proxy instance calls, each reached through an interface endpoint in the VPC:
 * SSM (the ALB2 parameter; the agent's registration), Session Manager's two channels, CloudWatch
 * Logs (the agent ships the journal and the metrics as EMF), ELB (user data waits for ALB1's
 * health verdict) and CloudFormation (cfn-signal).
 */
export const PROXY_INTERFACE_ENDPOINTS = {
  Ssm: ec2.InterfaceVpcEndpointAwsService.SSM,
  SsmMessages: ec2.InterfaceVpcEndpointAwsService.SSM_MESSAGES,
  Ec2Messages: ec2.InterfaceVpcEndpointAwsService.EC2_MESSAGES,
  Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
  ElasticLoadBalancing: ec2.InterfaceVpcEndpointAwsService.ELASTIC_LOAD_BALANCING,
  CloudFormation: ec2.InterfaceVpcEndpointAwsService.CLOUDFORMATION,
} as const;

/** The construct id aws-cdk-lib gives the one provider function of every AwsCustomResource in a stack. */
const AWS_CUSTOM_RESOURCE_PROVIDER = 'AWS679f53fac002430cb0da5b7982bd2287';

/** Properties of {@link AwsEndpoints}. */
export interface AwsEndpointsProps {
  /** The VPC (with its S3 gateway endpoint, see network.ts). */
  readonly vpc: ec2.IVpc;
}

/**
 * Where the proxy fleet's HTTPS may go, so its egress needs no 0.0.0.0/0: the interface
 * endpoints of {@link PROXY_INTERFACE_ENDPOINTS} behind one security group, and S3 (the binary;
 * Amazon Linux 2023's dnf repositories, which are S3 buckets in the region) through the gateway
 * endpoint, named in a security group rule by the region's S3 prefix list.
 *
 * The prefix list's id differs per region and CloudFormation exposes it nowhere, so a custom
 * resource reads it at deploy time (`ec2:DescribeManagedPrefixLists`): synth stays offline.
 */
export class AwsEndpoints extends Construct {
  /** The interface endpoints' security group. */
  public readonly securityGroup: ec2.SecurityGroup;
  /** The id (`pl-…`) of the region's S3 prefix list, resolved at deploy time. */
  public readonly s3PrefixListId: string;

  constructor(scope: Construct, id: string, props: AwsEndpointsProps) {
    super(scope, id);
    const { vpc } = props;

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc,
      description: 'Interface endpoints of the AWS APIs: HTTPS from the VPC',
      allowAllOutbound: false,
    });
    // From the whole VPC: with private DNS on, every resource in it (the backend's log driver too)
    // resolves these services' names to the endpoints.
    this.securityGroup.addIngressRule(ec2.Peer.ipv4(vpc.vpcCidrBlock), ec2.Port.tcp(443), 'HTTPS from the VPC');
    Validations.of(this.securityGroup).acknowledge({
      id: 'AwsSolutions-EC23',
      reason:
        'The only ingress is 443 from the VPC\'s own CIDR block (a token cdk-nag cannot read, hence the finding): with private DNS on, every resource in the VPC resolves these AWS API names to the endpoints, and the backend\'s log driver goes there too; nothing outside the VPC can reach an interface endpoint.',
    });
    for (const [name, service] of Object.entries(PROXY_INTERFACE_ENDPOINTS)) {
      vpc.addInterfaceEndpoint(name, {
        service,
        privateDnsEnabled: true,
        securityGroups: [this.securityGroup],
        open: false,
        subnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      });
    }

    const region = Stack.of(this).region;
    const lookup = new cr.AwsCustomResource(this, 'S3PrefixList', {
      onUpdate: {
        service: 'EC2',
        action: 'describeManagedPrefixLists',
        parameters: { Filters: [{ Name: 'prefix-list-name', Values: [`com.amazonaws.${region}.s3`] }] },
        physicalResourceId: cr.PhysicalResourceId.of(`s3-prefix-list-${region}`),
        outputPaths: ['PrefixLists.0.PrefixListId'],
      },
      policy: cr.AwsCustomResourcePolicy.fromSdkCalls({ resources: cr.AwsCustomResourcePolicy.ANY_RESOURCE }),
      installLatestAwsSdk: false,
    });
    this.s3PrefixListId = lookup.getResponseField('PrefixLists.0.PrefixListId');
    Validations.of(lookup).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ec2:DescribeManagedPrefixLists supports no resource-level permission; it is the only action of this policy and only reads the names and ids of AWS\'s managed prefix lists, at deploy time.',
    });
    // The custom resource's provider function (one per stack, made by aws-cdk-lib).
    const provider = Stack.of(this).node.tryFindChild(AWS_CUSTOM_RESOURCE_PROVIDER);
    if (provider) {
      Validations.of(provider).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason:
          'The role of aws-cdk-lib\'s custom-resource provider function, which runs only during deployments: AWSLambdaBasicExecutionRole grants nothing but writing its own CloudWatch log streams.',
      });
      // aws-cdk-lib makes the function DependsOn the role it also GetAtts: harmless, but cfn-lint
      // warns (W3005) about the redundant half; silence exactly that check on exactly this resource.
      (provider.node.defaultChild as CfnResource).addMetadata('cfn-lint', { config: { ignore_checks: ['W3005'] } });
    }
  }

  /** Lets `peer` (the proxy fleet) reach the interface endpoints and S3, on 443 only. */
  public allowFrom(peer: ec2.IConnectable): void {
    for (const sg of peer.connections.securityGroups) {
      sg.addEgressRule(this.securityGroup, ec2.Port.tcp(443), 'HTTPS to the AWS API endpoints');
      sg.addEgressRule(ec2.Peer.prefixList(this.s3PrefixListId), ec2.Port.tcp(443), 'HTTPS to S3 (binary, dnf repositories)');
    }
  }
}
