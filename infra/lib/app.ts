import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readConfig } from './config';
import { PlanBStack } from './planb-stack';

/**
 * Builds the Plan B app into `app`: reads the context, adds the stack and registers cdk-nag's
 * AwsSolutions pack, so synth fails on any finding that is not acknowledged with a reason.
 * `bin/app.ts` and the tests share this, so the tests check exactly what `cdk synth` builds.
 */
export function buildApp(app: App): PlanBStack {
  const config = readConfig(app.node);
  const stack = new PlanBStack(app, config.stackName, {
    // Region only: the account stays a deploy-time token, so synth needs no credentials and does no
    // lookups (availability zones come from Fn::GetAZs).
    env: { region: config.region },
    description: 'Plan B: ALB1 (Cognito) -> planb-proxy (EC2 ASG) -> ALB2 (internal) -> planb-backend (Fargate)',
    config,
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stack;
}
