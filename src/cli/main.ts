/* The `membrane` command: `membrane <noun> <verb>`, talking to the agent over its unix socket.
 * One file per noun (agent.ts, endpoint.ts, policy.ts, ...); this one puts them together and
 * turns errors into one line and a non-zero exit. */
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { AgentClient, DEFAULT_SOCKET } from '../api/client.js';
import { AgentUnreachable, ApiError, StartupError, UserError } from '../errors.js';
import { agentCommand } from './agent.js';
import { bpfCommand } from './bpf.js';
import type { CliContext } from './context.js';
import { endpointCommand } from './endpoint.js';
import { identityCommand, ipcacheCommand } from './identity.js';
import { namespaceCommand } from './namespace.js';
import { observeCommand } from './observe.js';
import { policyCommand } from './policy.js';
import { serviceCommand } from './service.js';
import { statusCommand } from './status.js';

const program = new Command('membrane')
  .description('Connect, secure and observe Linux workloads with eBPF')
  .option('--socket <path>', 'agent API socket (env MEMBRANE_SOCKET)')
  .showHelpAfterError('(run with --help for usage)');

const ctx: CliContext = {
  client: () => new AgentClient(program.opts().socket ?? process.env.MEMBRANE_SOCKET ?? DEFAULT_SOCKET),
};

program.addCommand(agentCommand(() => program.opts().socket));
for (const make of [serviceCommand, statusCommand, namespaceCommand, endpointCommand, identityCommand, ipcacheCommand, policyCommand, observeCommand, bpfCommand]) {
  program.addCommand(make(ctx));
}
// Commands made on their own do not inherit the program's settings: a usage hint after every error.
const hintAfterErrors = (cmd: CommandUnknownOpts): void => {
  cmd.showHelpAfterError('(run with --help for usage)');
  for (const sub of cmd.commands) hintAfterErrors(sub);
};
hintAfterErrors(program);

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof ApiError || err instanceof AgentUnreachable || err instanceof UserError || err instanceof StartupError) {
      process.stderr.write(`Error: ${err.message}\n`);
    } else {
      process.stderr.write(`Error: ${(err as Error).stack ?? String(err)}\n`);
    }
    process.exit(1);
  }
}

void main();
