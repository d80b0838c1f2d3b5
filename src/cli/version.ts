/* `membrane version`: the CLI's version, the agent's, and the datapath objects it runs (like
 * `cilium version`). The CLI's own comes first, so it prints even when the agent is away. */
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { AgentUnreachable } from '../errors.js';
import { VERSION } from '../util/version.js';
import { outputOption, type CliContext } from './context.js';
import { parseFormat, print, renderKeyValues } from './output.js';

interface VersionInfo {
  client: { version: string; node: string };
  agent?: { version: string; datapath: Record<string, string>; programsAdopted: boolean };
}

export function versionCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command('version')
    .description('versions of the CLI, the agent and the datapath objects it runs')
    .addOption(outputOption())
    .action(async (o) => {
      const format = parseFormat(o.output);
      const info: VersionInfo = { client: { version: VERSION, node: process.version } };
      let unreachable: AgentUnreachable | undefined;
      try {
        const s = await ctx.client().status();
        info.agent = { version: s.version, datapath: s.datapath.objects, programsAdopted: s.datapath.programsAdopted };
      } catch (err) {
        if (!(err instanceof AgentUnreachable)) throw err;
        unreachable = err;
      }
      if (format !== 'table') print(info, format, []);
      else {
        console.log(
          renderKeyValues([
            ['Client', `${info.client.version} (node ${info.client.node})`],
            ['Agent', info.agent?.version ?? 'unreachable'],
            ...Object.entries(info.agent?.datapath ?? {}).map(([file, hash]): [string, string] => [`Datapath ${file}`, hash]),
          ]),
        );
      }
      // The client's version was printed; an agent that is not there is still an error.
      if (unreachable) throw unreachable;
    });
}
