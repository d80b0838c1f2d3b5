/* Policy file text -> the plain JS value of each YAML document, in linear time and bounded memory.
 *
 * The token pass (limits.ts) bounds the input; then yaml's Composer builds the documents with
 * `uniqueKeys: false`, because its own duplicate check compares every key with every earlier one
 * (40,000 keys took 13 s). Our own conversion below replaces both that check and `toJS`:
 *   - duplicate keys are found with a Set per mapping, and keys must be plain scalars;
 *   - aliases are resolved with a map of anchors, where yaml's toJS searches the document for
 *     each alias, and each alias counts as the values it expands to, so a small file cannot
 *     stand for a huge one (`maxNodes`); an alias to a node that contains it is refused;
 *   - merge keys (`<<`, YAML 1.1 only) are refused rather than half supported.
 * Values are plain objects, arrays, strings, numbers, booleans and null (YAML 1.1 tags may add
 * Date or Uint8Array): all structured-cloneable, so they can cross a worker boundary. An alias
 * shares its anchor's value, as yaml's toJS does. */
import { Composer, LineCounter, isAlias, isMap, isPair, isScalar, isSeq, type YAMLError } from 'yaml';
import { UserError, invalid, quoted } from '../errors.js';
import { POLICY_LIMITS, checkedTokens, fileLabel } from './limits.js';

export interface YamlDocument {
  /** 1-based position in the file, counting empty documents. */
  index: number;
  value: unknown;
}

/** The non-empty documents of `text`. Throws UserError('invalid', one line naming the file, the
 * line and column) at the first syntax error anywhere in the file, before any document is
 * converted, then at the first problem of the conversion. */
export function readYamlDocuments(text: string, file: string): YamlDocument[] {
  const lines = new LineCounter();
  const composer = new Composer({ uniqueKeys: false, prettyErrors: false });
  const docs = yamlLibrary(file, () => Array.from(composer.compose(checkedTokens(text, file, lines))));
  const where = new Where(fileLabel(file), lines);
  const syntax = (error: YAMLError, document?: number) => invalid(`${where.at(error.pos[0], document)}: invalid YAML: ${oneLine(error.message)}`);
  const streamError = composer.streamInfo().errors[0];
  if (streamError) throw syntax(streamError);
  docs.forEach((doc, i) => {
    const error = doc.errors[0];
    if (error) throw syntax(error, i + 1);
  });
  const nonEmpty = docs.filter((d) => d.contents !== null).length;
  if (nonEmpty > POLICY_LIMITS.maxDocuments) {
    throw invalid(`${where.file}: ${nonEmpty} documents is more than the limit of ${POLICY_LIMITS.maxDocuments} per file (maxDocuments); split it into several files`);
  }
  const converter = new Converter(where);
  const out: YamlDocument[] = [];
  docs.forEach((doc, i) => {
    if (doc.contents !== null) out.push({ index: i + 1, value: converter.document(doc.contents, i + 1) });
  });
  return out;
}

/** yaml reports syntax errors as data; should it throw on some input all the same, that is
 * still that input's problem (a 400 naming the file), not the agent's. */
function yamlLibrary<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw invalid(`${fileLabel(file)}: invalid YAML: ${oneLine(err instanceof Error ? err.message : String(err))}`);
  }
}

/** yaml's messages can quote the input; keep them on one line and short. */
function oneLine(message: string): string {
  const text = message.replace(/[\s\p{Cc}]+/gu, ' ').trim();
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

/** "FILE: line L, column C (document N)" for offsets into the file. */
class Where {
  constructor(
    readonly file: string,
    private readonly lines: LineCounter,
  ) {}

  at(offset: number, document?: number): string {
    const { line, col } = this.lines.linePos(offset);
    return `${this.file}: line ${line}, column ${col}${document === undefined ? '' : ` (document ${document})`}`;
  }

  line(node: unknown): number {
    return this.lines.linePos(offsetOf(node)).line;
  }
}

const offsetOf = (node: unknown): number => (node as { range?: [number, number, number] | null } | null)?.range?.[0] ?? 0;

interface Anchor {
  value: unknown;
  /** Values the anchored node expands to; undefined while it is being converted. */
  size?: number;
}

class Converter {
  /** Values so far in the file, aliases expanded. */
  private nodes = 0;
  private anchors = new Map<string, Anchor>();
  private index = 0;

  constructor(private readonly where: Where) {}

  document(contents: unknown, index: number): unknown {
    this.anchors = new Map(); // anchors do not cross documents
    this.index = index;
    return this.value(contents, contents);
  }

  private fail(node: unknown, problem: string): never {
    throw invalid(`${this.where.at(offsetOf(node), this.index)}: ${problem}`);
  }

  private count(node: unknown, n: number): void {
    this.nodes += n;
    if (this.nodes > POLICY_LIMITS.maxNodes) {
      this.fail(node, `more than ${POLICY_LIMITS.maxNodes} values in one file, aliases expanded (maxNodes); write fewer aliases or split the file`);
    }
  }

  /** `parent` locates a missing node (an empty value has no node in yaml's tree). */
  private value(node: unknown, parent: unknown): unknown {
    if (node === null || node === undefined) {
      this.count(parent, 1);
      return null;
    }
    if (isAlias(node)) {
      const anchor = this.anchors.get(node.source);
      const name = quoted(`*${node.source}`);
      if (!anchor) this.fail(node, `invalid YAML: alias ${name} has no anchor of that name before it in this document (an anchor must come first)`);
      if (anchor.size === undefined) this.fail(node, `invalid YAML: alias ${name} is inside the node it refers to (a cycle)`);
      this.count(node, anchor.size);
      return anchor.value;
    }
    const name = (node as { anchor?: string }).anchor;
    const anchor: Anchor | undefined = name ? { value: undefined } : undefined;
    if (name && anchor) this.anchors.set(name, anchor); // a later anchor of the same name wins
    const before = this.nodes;
    this.count(node, 1);
    const value = this.convert(node);
    if (anchor) {
      anchor.value = value;
      anchor.size = this.nodes - before;
    }
    return value;
  }

  private convert(node: unknown): unknown {
    if (isScalar(node)) return node.value;
    if (isSeq(node)) return node.items.map((item) => (isPair(item) ? this.mapping(node, [item]) : this.value(item, node)));
    if (isMap(node)) return this.mapping(node, node.items);
    return this.fail(node, 'invalid YAML: unsupported node');
  }

  private mapping(node: unknown, items: unknown[]): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const seen = new Map<string, unknown>();
    for (const item of items) {
      if (!isPair(item)) this.fail(node, 'invalid YAML: unsupported mapping entry');
      const keyNode = item.key ?? node;
      if (seen.size === POLICY_LIMITS.maxKeysPerMapping) {
        this.fail(keyNode, `more than ${POLICY_LIMITS.maxKeysPerMapping} keys in one mapping (maxKeysPerMapping); split it`);
      }
      const key = this.key(keyNode);
      const first = seen.get(key);
      if (first !== undefined) {
        this.fail(keyNode, `invalid YAML: duplicate key ${quoted(key)} (map keys must be unique; the first one is on line ${this.where.line(first)})`);
      }
      seen.set(key, keyNode);
      this.count(keyNode, 1);
      const value = this.value(item.value, keyNode);
      // A plain assignment to "__proto__" would set the prototype instead of adding the key.
      if (key === '__proto__') Object.defineProperty(out, key, { value, writable: true, enumerable: true, configurable: true });
      else out[key] = value;
    }
    return out;
  }

  /** The property name a key becomes, as yaml's toJS names it; only scalars qualify. */
  private key(key: unknown): string {
    if (isScalar(key)) {
      const v = key.value;
      if (v === null) return '';
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
      if (typeof v === 'symbol') this.fail(key, 'invalid YAML: merge keys (<<) are not supported (write the fields out)');
      this.fail(key, 'invalid YAML: a mapping key must be a string');
    }
    const what = isAlias(key) ? 'an alias' : isSeq(key) ? 'a list' : isMap(key) ? 'a mapping' : 'this';
    return this.fail(key, `invalid YAML: a mapping key must be a string, not ${what}`);
  }
}
