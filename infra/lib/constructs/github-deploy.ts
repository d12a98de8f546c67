import { CfnOutput, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** GitHub Actions' OIDC issuer and the audience aws-actions/configure-aws-credentials asks for. */
export const GITHUB_OIDC = { url: 'https://token.actions.githubusercontent.com', audience: 'sts.amazonaws.com' } as const;

/** The CDK bootstrap roles `cdk diff` and `cdk deploy` assume (default qualifier). */
export const CDK_BOOTSTRAP_ROLES = ['deploy', 'file-publishing', 'image-publishing', 'lookup'] as const;

/** Properties of {@link GitHubDeploy}. */
export interface GitHubDeployProps {
  /** `owner/name`: only this repository's `main` branch may assume the role. */
  readonly repository: string;
  /** The branch that deploys (the workflow runs on pushes to it). */
  readonly branch?: string;
  /** The proxy Auto Scaling group's name: scripts/smoke.sh runs `systemctl is-active` on its instances. */
  readonly proxyAutoScalingGroupName: string;
  /** The account's existing GitHub OIDC provider; when unset, the stack creates it. */
  readonly existingProviderArn?: string;
}

/**
 * What `.github/workflows/deploy.yml` needs to deploy without stored keys: GitHub's OIDC provider in
 * the account and a role that only `repo:<owner/name>:ref:refs/heads/main` can assume with a
 * GitHub-issued token. The role can do one thing: assume the CDK bootstrap roles of this account
 * and region, which carry the deploy permissions (as `cdk deploy` from a laptop does).
 *
 * An account holds one provider per issuer URL, and creating a second fails (EntityAlreadyExists):
 * in an account that has one (most organisations' do), pass its ARN as `existingProviderArn`
 * (`planb:githubOidcProviderArn`) and the role trusts it instead.
 */
export class GitHubDeploy extends Construct {
  /** The role the workflow assumes (`role-to-assume`). */
  public readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: GitHubDeployProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const branch = props.branch ?? 'main';

    const providerArn =
      props.existingProviderArn ??
      new iam.CfnOIDCProvider(this, 'Provider', {
        url: GITHUB_OIDC.url,
        clientIdList: [GITHUB_OIDC.audience],
      }).attrArn;

    this.role = new iam.Role(this, 'Role', {
      description: `GitHub Actions deploys of ${props.repository} (${branch} only) through the CDK bootstrap roles`,
      assumedBy: new iam.WebIdentityPrincipal(providerArn, {
        StringEquals: {
          'token.actions.githubusercontent.com:aud': GITHUB_OIDC.audience,
          'token.actions.githubusercontent.com:sub': `repo:${props.repository}:ref:refs/heads/${branch}`,
        },
      }),
      inlinePolicies: {
        cdk: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'AssumeCdkBootstrapRoles',
              actions: ['sts:AssumeRole', 'sts:TagSession'],
              resources: CDK_BOOTSTRAP_ROLES.map(
                (r) => `arn:${stack.partition}:iam::${stack.account}:role/cdk-hnb659fds-${r}-role-${stack.account}-${stack.region}`,
              ),
            }),
            // scripts/smoke.sh after the deploy: read the outputs, list the proxies, ask each one
            // whether planb-proxy is active. RunShellScript only on this stack's proxy instances.
            new iam.PolicyStatement({
              sid: 'SmokeReadOutputs',
              actions: ['cloudformation:DescribeStacks'],
              resources: [stack.stackId],
            }),
            new iam.PolicyStatement({
              sid: 'SmokeListProxies',
              actions: ['autoscaling:DescribeAutoScalingGroups', 'ssm:GetCommandInvocation'],
              resources: ['*'],
            }),
            new iam.PolicyStatement({
              sid: 'SmokeRunOnProxies',
              actions: ['ssm:SendCommand'],
              resources: [`arn:${stack.partition}:ec2:${stack.region}:${stack.account}:instance/*`],
              conditions: {
                StringEquals: { 'ssm:resourceTag/aws:autoscaling:groupName': props.proxyAutoScalingGroupName },
              },
            }),
            new iam.PolicyStatement({
              sid: 'SmokeRunShellScript',
              actions: ['ssm:SendCommand'],
              resources: [`arn:${stack.partition}:ssm:${stack.region}::document/AWS-RunShellScript`],
            }),
          ],
        }),
      },
    });

    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Only for autoscaling:DescribeAutoScalingGroups and ssm:GetCommandInvocation, which support no resource-level permission and only read; the commands themselves (ssm:SendCommand) are limited to AWS-RunShellScript on instances of this stack\'s proxy group, and the deploy permissions come from the CDK bootstrap roles by exact ARN.',
    });
    Validations.of(this.role).acknowledge({
      // The finding names the ARN as cdk-nag renders it (partition and region are known at synth).
      id: `AwsSolutions-IAM5[Resource::arn:${stack.partition}:ec2:${stack.region}:<AWS::AccountId>:instance/*]`,
      reason:
        'ssm:SendCommand on instances is narrowed by the condition ssm:resourceTag/aws:autoscaling:groupName to this stack\'s proxy Auto Scaling group, whose instance ids change with every rollout.',
    });

    new CfnOutput(stack, 'GitHubDeployRoleArn', {
      description: 'Set as the repository variable AWS_DEPLOY_ROLE_ARN (deploy.yml role-to-assume)',
      value: this.role.roleArn,
    });
  }
}
