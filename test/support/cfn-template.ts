/**
 * Reading synthesized CloudFormation in the infrastructure tests (`test/infra/`): references
 * rendered as text, the actions a role may take, a pipeline's state machine.
 */
import type { Template } from 'aws-cdk-lib/assertions';
import { expect } from 'vitest';

/**
 * A synthesized resource. Its properties are CloudFormation JSON whose shape each test knows;
 * typing them loosely keeps the assertions readable (a wrong guess fails the assertion).
 */
// biome-ignore lint/suspicious/noExplicitAny: template JSON, checked by the assertions themselves
export type Json = any;
export type Resource = { Type: string; Properties?: Record<string, Json>; DeletionPolicy?: string };
export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
}
/** Renders an ARN-valued intrinsic as text (`arn:aws:…`; references as `<Logical.Attr>`). */
export function render(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, Json>;
  if (v.Ref === 'AWS::Partition') return 'aws';
  if (v.Ref) return `<${v.Ref}>`;
  if (v['Fn::GetAtt']) return `<${v['Fn::GetAtt'].join('.')}>`;
  if (v['Fn::Join']) return v['Fn::Join'][1].map(render).join(v['Fn::Join'][0]);
  return JSON.stringify(value);
}

export const asArray = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

/** The (action, resource) pairs the role's policies allow, resources rendered. */
export function allowedFor(template: Template, roleLogicalId: string): Array<{ action: string; resource: string }> {
  const policies = Object.values(template.findResources('AWS::IAM::Policy') as Record<string, Resource>).filter(
    (policy) => policy.Properties?.Roles.some((role: { Ref: string }) => role.Ref === roleLogicalId),
  );
  return policies.flatMap((policy) =>
    (policy.Properties!.PolicyDocument.Statement as Statement[])
      .filter((s) => s.Effect === 'Allow')
      .flatMap((s) =>
        asArray<string>(s.Action).flatMap((action) =>
          asArray(s.Resource).map((resource) => ({ action, resource: render(resource) })),
        ),
      ),
  );
}

/** The state machine of one pipeline, with the logical ids of its role, version and alias. */
export function stateMachine(template: Template, pipeline: string) {
  const machines = Object.entries(
    template.findResources('AWS::StepFunctions::StateMachine') as Record<string, Resource>,
  );
  const found = machines.filter(([, m]) =>
    (m.Properties!.Tags as Array<{ Key: string; Value: string }>).some(
      (t) => t.Key === 'stackline:pipeline' && t.Value === pipeline,
    ),
  );
  expect(found, pipeline).toHaveLength(1);
  const [id, resource] = found[0]!;
  const [versionId] = Object.entries(
    template.findResources('AWS::StepFunctions::StateMachineVersion') as Record<string, Resource>,
  ).find(([, v]) => v.Properties!.StateMachineArn.Ref === id)!;
  const alias = Object.values(
    template.findResources('AWS::StepFunctions::StateMachineAlias') as Record<string, Resource>,
  ).find((a) => a.Properties!.RoutingConfiguration[0].StateMachineVersionArn['Fn::GetAtt'][0] === versionId);
  return { id, resource, role: resource.Properties!.RoleArn['Fn::GetAtt'][0] as string, versionId, alias };
}
