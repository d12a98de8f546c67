import { Duration, Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/**
 * The S3 bucket both load balancers write their access logs to (ALB1 under `alb1/`, ALB2 under
 * `alb2/`): the record of every request that reached the edge and the backend.
 */
export class AccessLogs extends Construct {
  /** The log bucket; pass it to `ApplicationLoadBalancer.logAccessLogs`. */
  public readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string) {
    super(scope, id);

    this.bucket = new s3.Bucket(this, 'Bucket', {
      // ELB log delivery only writes to buckets encrypted with SSE-S3.
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(90) }],
      // Kept on stack deletion (the default): logs are evidence and outlive the stack.
    });
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'This bucket is itself the access-log destination; logging its own reads into another bucket would only move the same finding there (the chain has to end somewhere), and CloudTrail covers access to it.',
    });
  }
}
