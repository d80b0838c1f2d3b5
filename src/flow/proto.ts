/* Hubble's protos (proto/observer, proto/flow) as the agent loads them: the gRPC server serves
 * them, and every Hubble name the agent prints (drop reasons, ...) is read from them rather than
 * copied into a table of ours. Loaded once, on first use. */
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';

/** <repo>/proto: this file is src/flow/*.ts or dist/flow/*.js, two levels below the root. */
export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

/** How proto-loader maps messages to objects; proto-map.ts is written against exactly these. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  enums: String,
  longs: Number,
  defaults: false,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

let observerProto: protoLoader.PackageDefinition | undefined;

export function loadObserverProto(): protoLoader.PackageDefinition {
  observerProto ??= protoLoader.loadSync('observer/observer.proto', PROTO_LOADER_OPTIONS);
  return observerProto;
}

interface EnumDescriptor {
  type: { value: { name: string; number: number }[] };
}

const enums = new Map<string, Map<number, string>>();

/** The names of a proto enum by number, e.g. hubbleEnum('flow.DropReason').get(133) = 'POLICY_DENIED'. */
export function hubbleEnum(fullName: string): ReadonlyMap<number, string> {
  let names = enums.get(fullName);
  if (!names) {
    const def = loadObserverProto()[fullName] as EnumDescriptor | undefined;
    if (!def?.type?.value) throw new Error(`${fullName} is not an enum of the Observer protos`);
    names = new Map(def.type.value.map((v) => [v.number, v.name]));
    enums.set(fullName, names);
  }
  return names;
}

/** Hubble's name of a drop reason (flow.DropReason), or DROP_REASON_<n> for one it lacks. */
export function dropReasonName(code: number): string {
  return hubbleEnum('flow.DropReason').get(code) ?? `DROP_REASON_${code}`;
}
