/* The shapes of the agent API's request bodies, one zod schema each: the check the routes run
 * before anything reads a body, and (through `satisfies`) the wire type it must equal. Flow
 * requests have theirs next to the flow filters (flow/request-schema.ts); DELETE /v1/policies
 * reads its small body by hand, for messages that say which of its two forms to use. */
import { z } from 'zod';
import { checkShape } from '../util/schema.js';
import type { EndpointAddRequest, PolicyFile, ServiceRequest } from './types.js';

const strings = z.array(z.string());

export const namespaceBody = z.object({ labels: strings.optional() });

export const endpointAddBody = z.object({
  namespace: z.string(),
  name: z.string(),
  labels: strings.optional(),
  ipv4: z.string().optional(),
  ports: strings.optional(),
  netns: z.string().optional(),
}) satisfies z.ZodType<EndpointAddRequest>;

export const endpointUpdateBody = z.object({ labels: strings.optional() });

export const policyFilesBody = z.object({
  files: z.array(z.object({ name: z.string(), content: z.string() }) satisfies z.ZodType<PolicyFile>).min(1, 'no policy file given'),
});

export const serviceBody = z.object({
  name: z.string(),
  frontend: z.string(),
  backends: strings.optional(),
  selector: strings.optional(),
  targetPort: z.number().optional(),
  algorithm: z.string().optional(),
  affinity: z.string().optional(),
  affinityTimeout: z.number().optional(),
}) satisfies z.ZodType<ServiceRequest>;

/** The request body (absent: {}) as the schema's type, or a 400 naming the first wrong field. */
export function readBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  return checkShape(schema, body ?? {}, 'the request body is not valid');
}
