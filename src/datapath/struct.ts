/* A tiny C-struct codec: fields are laid out with C's natural alignment, so a definition here
 * reads like the struct in bpf/include/layouts.h. Multi-byte integers are host order (x86:
 * little endian) as the kernel stores them, except 'be16' (a port in network order); 'ipv4' is
 * a __u32 in network order shown as a dotted string; 'bytes' is a raw array. */

type Scalar = 'u8' | 'u16' | 'be16' | 'u32' | 'u64' | 'ipv4' | 'mac';
export type FieldType = Scalar | { bytes: number };

type JsOf<T extends FieldType> = T extends 'u64'
  ? bigint
  : T extends 'ipv4' | 'mac'
    ? string
    : T extends { bytes: number }
      ? Buffer
      : number;

export type FieldList = readonly (readonly [string, FieldType])[];
export type Decoded<F extends FieldList> = { [E in F[number] as E[0]]: JsOf<E[1]> };

const sizes: Record<Scalar, [size: number, align: number]> = {
  u8: [1, 1],
  u16: [2, 2],
  be16: [2, 2],
  u32: [4, 4],
  u64: [8, 8],
  ipv4: [4, 4],
  mac: [6, 1],
};

function sizeAlign(t: FieldType): [number, number] {
  return typeof t === 'string' ? sizes[t] : [t.bytes, 1];
}

export interface Field {
  name: string;
  type: FieldType;
  offset: number;
  size: number;
}

export interface Struct<F extends FieldList> {
  readonly name: string;
  readonly size: number;
  readonly fields: readonly Field[];
  encode(value: Partial<Decoded<F>>, into?: Buffer, at?: number): Buffer;
  decode(buf: Buffer, at?: number): Decoded<F>;
}

export function defineStruct<const F extends FieldList>(name: string, list: F): Struct<F> {
  const fields: Field[] = [];
  let offset = 0;
  let maxAlign = 1;
  for (const [fname, type] of list) {
    const [size, align] = sizeAlign(type);
    offset = Math.ceil(offset / align) * align;
    fields.push({ name: fname, type, offset, size });
    offset += size;
    maxAlign = Math.max(maxAlign, align);
  }
  const size = Math.ceil(offset / maxAlign) * maxAlign;

  return {
    name,
    size,
    fields,
    encode(value, into, at = 0) {
      // Always start from zeroes: padding in map keys must be zero or lookups miss.
      const buf = into ?? Buffer.alloc(size);
      if (into) buf.fill(0, at, at + size);
      const v = value as Record<string, unknown>;
      for (const f of fields) {
        const x = v[f.name];
        if (x === undefined) continue;
        writeField(buf, at + f.offset, f, x);
      }
      return buf;
    },
    decode(buf, at = 0) {
      const out: Record<string, unknown> = {};
      for (const f of fields) out[f.name] = readField(buf, at + f.offset, f);
      return out as Decoded<F>;
    },
  };
}

function writeField(buf: Buffer, o: number, f: Field, x: unknown): void {
  switch (f.type) {
    case 'u8':
      buf.writeUInt8(x as number, o);
      return;
    case 'u16':
      buf.writeUInt16LE(x as number, o);
      return;
    case 'be16':
      buf.writeUInt16BE(x as number, o);
      return;
    case 'u32':
      buf.writeUInt32LE(x as number, o);
      return;
    case 'u64':
      buf.writeBigUInt64LE(x as bigint, o);
      return;
    case 'ipv4':
      ipv4ToBuffer(x as string).copy(buf, o);
      return;
    case 'mac':
      macToBuffer(x as string).copy(buf, o);
      return;
    default:
      (x as Buffer).copy(buf, o, 0, f.size);
  }
}

function readField(buf: Buffer, o: number, f: Field): unknown {
  switch (f.type) {
    case 'u8':
      return buf.readUInt8(o);
    case 'u16':
      return buf.readUInt16LE(o);
    case 'be16':
      return buf.readUInt16BE(o);
    case 'u32':
      return buf.readUInt32LE(o);
    case 'u64':
      return buf.readBigUInt64LE(o);
    case 'ipv4':
      return Array.from(buf.subarray(o, o + 4)).join('.');
    case 'mac':
      return Array.from(buf.subarray(o, o + 6), (b) => b.toString(16).padStart(2, '0')).join(':');
    default:
      return Buffer.from(buf.subarray(o, o + f.size));
  }
}

export function ipv4ToBuffer(ip: string): Buffer {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${ip}`);
  }
  return Buffer.from(parts);
}

export function macToBuffer(mac: string): Buffer {
  const parts = mac.split(':').map((h) => parseInt(h, 16));
  if (parts.length !== 6 || parts.some((p) => !(p >= 0 && p <= 255))) throw new Error(`not a MAC address: ${mac}`);
  return Buffer.from(parts);
}

/** The decoded JS shape of a struct defined with defineStruct. */
export type StructValue<S> = S extends Struct<infer F> ? Decoded<F> : never;

/** Byte offset of every field by name, for hot paths that read fields directly. */
export function offsetsOf<F extends FieldList>(s: Struct<F>): { [E in F[number] as E[0]]: number } {
  return Object.fromEntries(s.fields.map((f) => [f.name, f.offset])) as { [E in F[number] as E[0]]: number };
}
