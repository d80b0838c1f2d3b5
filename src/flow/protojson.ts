/* Flows as `hubble observe -o json` prints them: protojson (jsonpb) with proto field names —
 * fields in declaration order, default values left out, enums by name, uint64 as strings,
 * wrapper types printed whenever set, timestamps normalised. What a field is and where it goes
 * is read from the proto descriptor (proto/flow/flow.proto), not copied into a table here. */
import { formatTimestampNs, NS_PER_SECOND, parseTimestampNs } from '../util/time.js';
import { loadObserverProto } from './proto.js';
import type { Flow, GetFlowsResponse } from './types.js';

interface DescriptorField {
  name: string;
  type: string;
  typeName: string;
}

interface Descriptor {
  type: { field?: DescriptorField[]; value?: { name: string; number: number }[] };
}

type FieldKind = { kind: 'message'; schema: Schema } | { kind: 'enum'; zero: string } | { kind: 'wrapper' } | { kind: 'timestamp' } | { kind: 'uint64' } | { kind: 'scalar' };

/** A message's fields in declaration order, with what each one is. */
interface Schema {
  fields: Map<string, FieldKind>;
}

const WRAPPERS = new Set(['BoolValue', 'Int32Value', 'UInt32Value', 'Int64Value', 'UInt64Value', 'StringValue', 'BytesValue', 'FloatValue', 'DoubleValue'].map((w) => `google.protobuf.${w}`));

const schemas = new Map<string, Schema>();

/** The full name of `typeName` as written inside `scope` (a package or message name). */
function resolveType(pkg: Record<string, unknown>, scope: string, typeName: string): string {
  const name = typeName.replace(/^\./, '');
  for (let s = scope; s; s = s.slice(0, Math.max(0, s.lastIndexOf('.')))) {
    if (pkg[`${s}.${name}`]) return `${s}.${name}`;
  }
  return name;
}

function schemaOf(fullName: string): Schema {
  let schema = schemas.get(fullName);
  if (schema) return schema;
  const pkg = loadObserverProto() as unknown as Record<string, Descriptor>;
  const desc = pkg[fullName];
  if (!desc?.type.field) throw new Error(`${fullName} is not a message of the Observer protos`);
  schema = { fields: new Map() };
  schemas.set(fullName, schema); // before the fields: messages may nest themselves
  const scope = fullName.slice(0, fullName.lastIndexOf('.'));
  for (const f of desc.type.field) {
    const type = f.typeName ? resolveType(pkg, scope, f.typeName) : '';
    let kind: FieldKind;
    if (type === 'google.protobuf.Timestamp') kind = { kind: 'timestamp' };
    else if (WRAPPERS.has(type)) kind = { kind: 'wrapper' };
    else if (f.type === 'TYPE_MESSAGE') kind = { kind: 'message', schema: schemaOf(type) };
    else if (f.type === 'TYPE_ENUM') kind = { kind: 'enum', zero: pkg[type]?.type.value?.find((v) => v.number === 0)?.name ?? '' };
    else if (f.type === 'TYPE_UINT64' || f.type === 'TYPE_FIXED64') kind = { kind: 'uint64' };
    else kind = { kind: 'scalar' };
    schema.fields.set(f.name, kind);
  }
  return schema;
}

const isDefault = (v: unknown) =>
  v === undefined || v === null || v === '' || v === 0 || v === false || (Array.isArray(v) && v.length === 0);

/** protojson's Timestamp: UTC, with 0, 3, 6 or 9 fraction digits. Unparseable text is kept as is. */
function protoTimestamp(time: string): string {
  const ns = parseTimestampNs(time);
  if (ns === undefined) return time;
  const nanos = Number(((ns % NS_PER_SECOND) + NS_PER_SECOND) % NS_PER_SECOND);
  const digits = nanos === 0 ? 0 : nanos % 1_000_000 === 0 ? 3 : nanos % 1_000 === 0 ? 6 : 9;
  return formatTimestampNs(ns, digits);
}

function encodeField(out: Record<string, unknown>, key: string, v: unknown, f: FieldKind | undefined): void {
  if (f?.kind === 'wrapper') {
    if (v !== undefined && v !== null) out[key] = v;
    return;
  }
  if (isDefault(v) || (f?.kind === 'enum' && f.zero === v)) return;
  if (f?.kind === 'message' && Array.isArray(v)) out[key] = v.map((item) => encodeMessage(item as Record<string, unknown>, f.schema));
  else if (f?.kind === 'message' && typeof v === 'object') out[key] = encodeMessage(v as Record<string, unknown>, f.schema);
  else if (f?.kind === 'timestamp' && typeof v === 'string') out[key] = protoTimestamp(v);
  else if (f?.kind === 'uint64' && typeof v === 'number') out[key] = String(v);
  else out[key] = v;
}

function encodeMessage(value: Record<string, unknown>, schema: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, f] of schema.fields) if (key in value) encodeField(out, key, value[key], f);
  // Fields the proto does not declare (extensions) come after, in their own order.
  for (const key in value) if (!schema.fields.has(key)) encodeField(out, key, value[key], undefined);
  return out;
}

/** The GetFlowsResponse a flow travels in: the flow, its node and its time. */
export function flowResponse(flow: Flow): GetFlowsResponse {
  return { flow, node_name: flow.node_name, time: flow.time };
}

/** One line of `hubble observe -o json`: `{"flow":{...},"node_name":"...","time":"..."}`, no trailing newline. */
export function formatJson(flow: Flow): string {
  return JSON.stringify(encodeMessage(flowResponse(flow) as unknown as Record<string, unknown>, schemaOf('observer.GetFlowsResponse')));
}
