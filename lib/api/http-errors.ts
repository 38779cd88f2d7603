import { ZodError } from 'zod';
import {
  AuthenticationError,
  ConflictError,
  NotFoundError,
  PermissionDeniedError,
  PipelineDefinitionError,
  StackConfigError,
  StacklineError,
  ValidationError,
} from '../errors.ts';

export type HttpErrorStatus = 400 | 401 | 403 | 404 | 409 | 500;

export interface HttpErrorBody {
  error: {
    status: HttpErrorStatus;
    code: string;
    message: string;
    issues?: Array<{ path: string; message: string }>;
    holder?: number;
  };
}

/**
 * The one place errors become HTTP statuses and JSON bodies. Unexpected errors become a 500 that
 * says nothing about internals (the caller's logs have them).
 */
export function httpErrorFor(error: unknown): { status: HttpErrorStatus; body: HttpErrorBody } {
  const make = (
    status: HttpErrorStatus,
    code: string,
    message: string,
    extra: Partial<HttpErrorBody['error']> = {},
  ) => ({
    status,
    body: { error: { status, code, message, ...extra } },
  });
  if (error instanceof ZodError) {
    const issues = error.issues.map((i) => ({
      path: i.path.length ? i.path.map(String).join('.') : '(value)',
      message: i.message,
    }));
    return make(400, 'VALIDATION', issues.map((i) => `${i.path}: ${i.message}`).join('; '), { issues });
  }
  if (error instanceof ValidationError || error instanceof PipelineDefinitionError || error instanceof StackConfigError)
    return make(400, error.code, error.message);
  if (error instanceof AuthenticationError) return make(401, error.code, error.message);
  if (error instanceof PermissionDeniedError) return make(403, error.code, error.message);
  if (error instanceof NotFoundError) return make(404, error.code, error.message);
  if (error instanceof ConflictError) {
    const holder = error.context.holder;
    return make(409, error.code, error.message, typeof holder === 'number' ? { holder } : {});
  }
  if (error instanceof StacklineError) return make(500, error.code, 'Internal error; see the server log.');
  return make(500, 'INTERNAL', 'Internal error; see the server log.');
}
