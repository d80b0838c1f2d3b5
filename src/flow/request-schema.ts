/* The shape of a GetFlowsRequest as the agent API receives it (JSON, Hubble's field names):
 * checked before anything reads it, so a malformed request gets one line saying which field is
 * wrong and a 400, never a 500 from code that trusted its types. A field Membrane does not
 * filter on is refused rather than ignored: ignoring it would return more flows than asked. */
import { z } from 'zod';
import { checkShape } from '../util/schema.js';
import type { GetFlowsRequest } from './types.js';

const strings = z.array(z.string());
const verdicts = z.array(z.enum(['VERDICT_UNKNOWN', 'FORWARDED', 'DROPPED', 'ERROR', 'AUDIT', 'REDIRECTED', 'TRACED', 'TRANSLATED']));
const directions = z.array(z.enum(['TRAFFIC_DIRECTION_UNKNOWN', 'INGRESS', 'EGRESS']));
const tcpFlags = z.strictObject({
  FIN: z.boolean().optional(),
  SYN: z.boolean().optional(),
  RST: z.boolean().optional(),
  PSH: z.boolean().optional(),
  ACK: z.boolean().optional(),
  URG: z.boolean().optional(),
  ECE: z.boolean().optional(),
  CWR: z.boolean().optional(),
  NS: z.boolean().optional(),
});

const workload = z.strictObject({ name: z.string().optional(), kind: z.string().optional() });

const flowFilter = z.strictObject({
  uuid: strings.optional(),
  source_ip: strings.optional(),
  destination_ip: strings.optional(),
  source_pod: strings.optional(),
  destination_pod: strings.optional(),
  source_label: strings.optional(),
  destination_label: strings.optional(),
  source_service: strings.optional(),
  destination_service: strings.optional(),
  source_workload: z.array(workload).optional(),
  destination_workload: z.array(workload).optional(),
  source_identity: z.array(z.number().int().nonnegative()).optional(),
  destination_identity: z.array(z.number().int().nonnegative()).optional(),
  verdict: verdicts.optional(),
  event_type: z.array(z.strictObject({ type: z.number().int(), match_sub_type: z.boolean().optional(), sub_type: z.number().int().optional() })).optional(),
  protocol: strings.optional(),
  source_port: strings.optional(),
  destination_port: strings.optional(),
  reply: z.array(z.boolean()).optional(),
  traffic_direction: directions.optional(),
  tcp_flags: z.array(tcpFlags).optional(),
  node_name: strings.optional(),
  ip_version: strings.optional(),
});

const getFlowsRequest = z.strictObject({
  number: z.number().int().nonnegative().optional(),
  first: z.boolean().optional(),
  follow: z.boolean().optional(),
  since: z.string().optional(),
  until: z.string().optional(),
  whitelist: z.array(flowFilter).optional(),
  blacklist: z.array(flowFilter).optional(),
}) satisfies z.ZodType<GetFlowsRequest>;

/** The body as a GetFlowsRequest, or UserError('invalid') naming the first wrong field. */
export function parseFlowsRequest(body: unknown): GetFlowsRequest {
  return checkShape(getFlowsRequest, body ?? {}, 'the flows request is not a valid GetFlowsRequest');
}
