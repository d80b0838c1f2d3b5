/* The `membrane` command: `membrane <noun> <verb>`, talking to the agent over its unix socket.
 * One file per noun (agent.ts, endpoint.ts, policy.ts, ...); this one puts them together and
 * turns errors into one line and a non-zero exit. */
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { AgentClient, DEFAULT_SOCKET } from '../api/client.js';
import { AgentUnreachable, ApiError, StartupError, UserError } from '../errors.js';
import { agentCommand } from './agent.js';
import { bpfCommand } from './bpf.js';
import { clusterCommand } from './cluster.js';
import { completionCommand } from './completion.js';
import type { CliContext } from './context.js';
import { colourWanted, styled } from '../util/style.js';
import { endpointCommand } from './endpoint.js';
import { identityCommand, ipcacheCommand } from './identity.js';
import { nodeCommand } from './node.js';
import { namespaceCommand } from './namespace.js';
import { observeCommand } from './observe.js';
import { applyCommand, policyCommand } from './policy.js';
import { serviceCommand } from './service.js';
import { statusCommand } from './status.js';
import { versionCommand } from './version.js';
import { VERSION } from '../util/version.js';

const program = new Command('membrane')
  .description('Connect, secure and observe Linux workloads with eBPF')
  .option('--socket <path>', 'agent API socket (env MEMBRANE_SOCKET)')
  .version(VERSION, '--version', "the CLI's version (membrane version also shows the agent's)")
  .showHelpAfterError('(run with --help for usage)');

const ctx: CliContext = {
  client: () => new AgentClient(program.opts().socket ?? process.env.MEMBRANE_SOCKET ?? DEFAULT_SOCKET),
};

program.addCommand(agentCommand(() => program.opts().socket));
for (const make of [versionCommand, serviceCommand, statusCommand, namespaceCommand, endpointCommand, identityCommand, ipcacheCommand, nodeCommand, clusterCommand, policyCommand, applyCommand, observeCommand, bpfCommand]) {
  program.addCommand(make(ctx));
}
program.addCommand(completionCommand(program));
// Commands made on their own do not inherit the program's settings: a usage hint after every error.
const hintAfterErrors = (cmd: CommandUnknownOpts): void => {
  cmd.showHelpAfterError('(run with --help for usage)');
  for (const sub of cmd.commands) hintAfterErrors(sub);
};
hintAfterErrors(program);

// A reader that stopped reading (`| head -1`, `| grep -m1`) ends the command quietly: what it
// wanted it has, and nothing is wrong. Any other output error is.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    const label = styled('Error:', 'red', colourWanted(process.stderr));
    if (err instanceof ApiError || err instanceof AgentUnreachable || err instanceof UserError || err instanceof StartupError) {
      process.stderr.write(`${label} ${err.message}\n`);
    } else {
      process.stderr.write(`${label} ${(err as Error).stack ?? String(err)}\n`);
    }
    process.exit(1);
  }
}

void main();
