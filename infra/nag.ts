/**
 * Acknowledging cdk-nag (v3) findings. cdk-nag 3 matches each finding by its exact id — an IAM5
 * finding is `AwsSolutions-IAM5[Resource::<the resource as cdk-nag renders it>]` — so wildcard
 * resources are rendered here with cdk-nag's own function instead of being copied by hand.
 */
import { Stack, Validations } from 'aws-cdk-lib';
// Not re-exported by cdk-nag's index; the version is pinned, and test/infra checks the report.
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference.js';
import type { IConstruct } from 'constructs';

/** Acknowledges one AwsSolutions rule (no per-finding suffix) on `scope` and everything under it. */
export function acknowledgeRule(scope: IConstruct, rule: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: `AwsSolutions-${rule}`, reason });
}

/**
 * Acknowledges the AwsSolutions-IAM5 finding for one wildcard resource (an ARN, possibly with
 * tokens) in the policies under `scope`.
 */
export function acknowledgeWildcardResource(scope: IConstruct, resource: string, reason: string): void {
  const rendered = flattenCfnReference(Stack.of(scope).resolve(resource));
  Validations.of(scope).acknowledge({ id: `AwsSolutions-IAM5[Resource::${rendered}]`, reason });
}
