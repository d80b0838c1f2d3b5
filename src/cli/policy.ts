/* `membrane policy import|validate|get|delete|selectors`: network policies. */
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import type { PolicyFile, PolicySummary, SelectorRow } from '../api/types.js';
import { UserError } from '../errors.js';
import { collect, outputOption, type CliContext } from './context.js';
import { parseFormat, print, type Column } from './output.js';

/** The files named on the command line, `-` being standard input (as kubectl's `-f -`). */
async function readPolicyFiles(paths: string[]): Promise<PolicyFile[]> {
  const { readFile, stat } = await import('node:fs/promises');
  if (paths.length === 0) throw new UserError('invalid', 'no policy file given: name files, or -f FILE (-f - reads standard input)');
  if (paths.filter((p) => p === '-').length > 1) throw new UserError('invalid', '-f - reads standard input once: give it one time');
  return Promise.all(
    paths.map(async (p) => {
      if (p === '-') return { name: '<stdin>', content: await readStdin() };
      const st = await stat(p).catch(() => undefined);
      if (!st?.isFile()) throw new UserError('invalid', `${p}: no such file`);
      if (st.size > 4 * 1024 * 1024) throw new UserError('invalid', `${p}: larger than 4 MiB; split it into several files`);
      return { name: p, content: await readFile(p, 'utf8') };
    }),
  );
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > 4 * 1024 * 1024) throw new UserError('invalid', 'standard input: larger than 4 MiB; split it into several files');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** What the agent said about the files besides errors (e.g. a policy put into namespace default). */
function printNotes(notes: string[] | undefined): void {
  for (const note of notes ?? []) process.stderr.write(`Note: ${note}\n`);
}

const IMPORT_EXAMPLES = `
Examples:
  membrane policy import shop.yaml            # one or more files
  membrane policy import -f a.yaml -f b.yaml  # kubectl's flag, repeatable
  cat shop.yaml | membrane apply -f -         # standard input; apply is an alias of import`;

/** \`policy import\` and its alias \`apply\`: files as arguments or -f, atomically, enforced on return. */
function importCommand(ctx: CliContext, name: 'import' | 'apply') {
  return new Command(name)
    .argument('[files...]')
    .description('validate and apply policy files atomically; returns once the datapath enforces them')
    .option('-f, --filename <file>', 'a policy file, - for standard input (repeatable)', collect)
    .addOption(outputOption())
    .addHelpText('after', IMPORT_EXAMPLES)
    .action(async (paths, o) => {
      const format = parseFormat(o.output);
      const r = await ctx.client().importPolicies(await readPolicyFiles([...paths, ...(o.filename ?? [])]));
      printNotes(r.notes);
      if (format !== 'table') return print(r, format, []);
      console.log(`Revision: ${r.revision}`);
      print(r.policies, format, policySummaryColumns);
    });
}

/** \`membrane apply -f FILE\`: kubectl's habit, the same as \`policy import\`. */
export function applyCommand(ctx: CliContext): CommandUnknownOpts {
  return importCommand(ctx, 'apply');
}

const policySummaryColumns: Column<PolicySummary>[] = [
  { header: 'KIND', value: (p) => p.kind },
  { header: 'NAMESPACE', value: (p) => p.namespace ?? '-' },
  { header: 'NAME', value: (p) => p.name },
  { header: 'RULES', value: (p) => p.rules },
  { header: 'REVISION', value: (p) => p.revision },
];

const selectorColumns: Column<SelectorRow>[] = [
  { header: 'SELECTOR', value: (s) => s.selector },
  { header: 'USERS', value: (s) => s.users },
  { header: 'IDENTITIES', value: (s) => s.identities.map(String) },
];

export function policyCommand(ctx: CliContext): CommandUnknownOpts {
  const policy = new Command('policy').alias('pol').description('network policies (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy, NetworkPolicy)');
  policy.addCommand(importCommand(ctx, 'import'));
  policy
    .command('validate')
    .argument('[files...]')
    .description('check policy files without changing anything')
    .option('-f, --filename <file>', 'a policy file, - for standard input (repeatable)', collect)
    .action(async (paths, o) => {
      const r = await ctx.client().validatePolicies(await readPolicyFiles([...paths, ...(o.filename ?? [])]));
      printNotes(r.notes);
      console.log(`${r.policies.length} policies are valid`);
    });
  policy
    .command('get')
    .argument('[ref]')
    .description('imported policies (NAMESPACE/NAME, or NAME for clusterwide ones); -o yaml prints their sources')
    .addOption(outputOption())
    .action(async (ref, o) => {
      const format = parseFormat(o.output);
      const list = await ctx.client().listPolicies();
      let policies = list.policies;
      if (ref) {
        const [a, b] = ref.includes('/') ? ref.split('/', 2) : [undefined, ref];
        policies = policies.filter((p) => p.name === b && (p.namespace ?? undefined) === a);
        if (policies.length === 0) throw new UserError('not-found', `no policy named ${ref} (see 'membrane policy get')`);
      }
      if (format === 'table') {
        console.log(`Revision: ${list.revision}`);
        return print(policies, format, policySummaryColumns);
      }
      print(policies.map((p) => p.source), format, []);
    });
  policy
    .command('delete')
    .argument('[ref]')
    .description('delete NAMESPACE/NAME (or NAME for a clusterwide policy), or every policy with --all')
    .option('--all', 'delete every policy')
    .action(async (ref, o) => {
      if (!ref && !o.all) throw new UserError('invalid', 'name a policy (NAMESPACE/NAME or NAME) or use --all');
      const target = o.all ? { all: true as const } : ref!.includes('/') ? { namespace: ref!.split('/')[0], name: ref!.split('/')[1]! } : { name: ref! };
      const r = await ctx.client().deletePolicy(target);
      console.log(`Revision: ${r.revision}`);
    });
  policy
    .command('selectors')
    .description('each selector in use and the identities it selects')
    .addOption(outputOption())
    .action(async (o) => print(await ctx.client().policySelectors(), parseFormat(o.output), selectorColumns));
  return policy;
}
