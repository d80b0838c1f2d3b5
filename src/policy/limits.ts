/* Limits on policy files, and the token pass that enforces them before a document is composed.
 *
 * Policy files come from users (and through the API from any local root process), so reading one
 * must stay bounded in time and memory whatever it holds. The `yaml` package is linear in most
 * things but not all, and slow in absolute terms (measured on the 2-core test VM, reading and
 * validating together: about 2 µs per token, roughly 1 s per MB of ordinary policy YAML), so:
 *   - nesting is checked on the parser's own stack while tokens arrive, so `[[[[...` is refused
 *     at the 65th bracket instead of recursing through 2 MB (which left 1 GiB of heap);
 *   - anchors and aliases are counted (what aliases expand to is bounded in yaml.ts);
 *   - tokens (words, punctuation, spaces, line breaks: everything the lexer yields) are counted,
 *     so the parser's work and the syntax tree it keeps are bounded; a file of 4 MiB of blank
 *     lines is 4 million tokens and, unchecked, took 6 s and 370 MB before composing;
 *   - mappings are watched on the parser's stack, so 40,000 keys stop at the 10,001st;
 *   - documents, empty ones too, are counted before they are composed (each costs about 1 KB).
 * Everything here is one pass over the lexer's output; it stops at the first limit crossed.
 * The exact per-mapping and alias-expanded counts need the composed tree and live in yaml.ts. */
import { CST, Lexer, Parser, type LineCounter } from 'yaml';
import { invalid, quoted } from '../errors.js';

export const POLICY_LIMITS = {
  maxFileBytes: 4 * 1024 * 1024,
  maxDocuments: 1000,
  maxRulesPerDocument: 1000,
  maxPeersPerRule: 10000,
  /** Levels of lists and mappings; a policy needs about 12. */
  maxDepth: 64,
  /** Lexer tokens per file, spaces and line breaks included: about 0.45 per byte of ordinary
   * policy YAML, so about 850 KB of it (1.6 MB of indented JSON), read in well under 1 s. */
  maxTokens: 400_000,
  /** Values per file (scalars, lists, mappings), counting each alias as what it expands to;
   * without aliases, maxTokens binds first (a value takes at least two tokens). */
  maxNodes: 200_000,
  maxKeysPerMapping: 10000,
  maxAnchors: 1000,
  maxAliases: 1000,
};

/** The prefix of every message about a file: its name, quoted onto one line if it needs it. */
export function fileLabel(file: string): string {
  return /^[^\p{Cc}\u2028\u2029"]{1,200}$/u.test(file) ? file : quoted(file, 200);
}

export function checkFileSize(text: string, file: string): void {
  // UTF-8 takes at most 3 bytes per UTF-16 unit, so most files skip the exact count.
  if (text.length * 3 <= POLICY_LIMITS.maxFileBytes) return;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > POLICY_LIMITS.maxFileBytes) {
    throw invalid(
      `${fileLabel(file)}: ${bytes} bytes is larger than the limit of ${POLICY_LIMITS.maxFileBytes} bytes per file (maxFileBytes); split it into several files`,
    );
  }
}

const COLLECTIONS = new Set(['block-map', 'block-seq', 'flow-collection']);

/** The parser's items of an open mapping are its keys, plus at most a trailing separator in a
 * flow mapping; yaml.ts counts exactly. */
function isLongMapping(token: CST.Token | undefined): boolean {
  if (token?.type === 'block-map') return token.items.length > POLICY_LIMITS.maxKeysPerMapping;
  if (token?.type === 'flow-collection' && token.start.source === '{') return token.items.length > POLICY_LIMITS.maxKeysPerMapping + 1;
  return false;
}

/**
 * The CST of `text` (yaml's Parser fed by its Lexer), checked against the limits above while
 * it is built. Throws UserError('invalid', "FILE: line L, column C: ...") at the first limit
 * crossed; syntax errors are left in the tokens for the composer to report.
 */
export function checkedTokens(text: string, file: string, lines: LineCounter): CST.Token[] {
  checkFileSize(text, file);
  const limits = POLICY_LIMITS;
  const parser = new Parser(lines.addNewLine);
  lines.addNewLine(0);
  const out: CST.Token[] = [];
  let tokens = 0;
  let anchors = 0;
  let aliases = 0;
  let documents = 0;
  let emptyDocuments = 0;
  let scalarText = false;
  const fail = (offset: number, problem: string): never => {
    const { line, col } = lines.linePos(offset);
    throw invalid(`${fileLabel(file)}: line ${line}, column ${col}: ${problem}`);
  };
  const take = (token: CST.Token) => {
    // Composing costs about 1 KB per document, empty or not, so both are counted before it.
    if (token.type === 'document') {
      const empty = token.value === undefined;
      if (empty ? ++emptyDocuments > limits.maxDocuments : ++documents > limits.maxDocuments) {
        fail(token.offset, `more than ${limits.maxDocuments} ${empty ? 'empty documents' : 'documents'} in one file (maxDocuments); split it into several files`);
      }
    }
    out.push(token);
  };
  // Every line break is a token: a file of more line breaks than maxTokens is refused before
  // the lexer runs (4 MiB of them took the lexer alone half a second, more on a loaded machine).
  for (let i = text.indexOf('\n'), n = 1; i >= 0; i = text.indexOf('\n', i + 1), n++) {
    if (n > limits.maxTokens) {
      throw invalid(`${fileLabel(file)}: line ${n}: more than ${limits.maxTokens} YAML tokens (words, punctuation and line breaks) in one file (maxTokens); split it into several files`);
    }
  }
  for (const lexeme of new Lexer().lex(text)) {
    const offset = parser.offset;
    if (++tokens > limits.maxTokens) {
      fail(offset, `more than ${limits.maxTokens} YAML tokens (words, punctuation and line breaks) in one file (maxTokens); split it into several files`);
    }
    // The text after a scalar marker is the scalar itself, whatever its first character is.
    const type: string | null = scalarText ? 'scalar-text' : CST.tokenType(lexeme);
    scalarText = type === 'scalar';
    if (type === 'anchor' && ++anchors > limits.maxAnchors) {
      fail(offset, `more than ${limits.maxAnchors} anchors (&name) in one file (maxAnchors); write the values out or split the file`);
    }
    if (type === 'alias' && ++aliases > limits.maxAliases) {
      fail(offset, `more than ${limits.maxAliases} aliases (*name) in one file (maxAliases); write the values out or split the file`);
    }
    for (const token of parser.next(lexeme)) take(token);
    // A mapping being read is on top of the parser's stack, or just below the key being read.
    const stack = parser.stack;
    if (isLongMapping(stack[stack.length - 1]) || isLongMapping(stack[stack.length - 2])) {
      fail(offset, `more than ${limits.maxKeysPerMapping} keys in one mapping (maxKeysPerMapping); split it`);
    }
    // The stack holds the document, the open collections and at most one scalar being read.
    if (stack.length > limits.maxDepth + 1 && stack.filter((t) => COLLECTIONS.has(t.type)).length > limits.maxDepth) {
      fail(offset, `nested more than ${limits.maxDepth} levels deep (maxDepth; a policy needs about 12): check the brackets and the indentation`);
    }
  }
  for (const token of parser.end()) take(token);
  return out;
}
