/* `membrane observe`: flows, filtered like `hubble observe`, printed compact, as JSON, a table or records. */
import { Command as UntypedCommand } from 'commander';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { streamFlows } from '../api/client.js';
import { ApiError, UserError } from '../errors.js';
import type { NodeStatusEvent } from '../flow/cluster-view.js';
import { formatCompact, formatDict, formatNodeStatus, formatTable } from '../flow/printer.js';
import type { Flow } from '../flow/types.js';
import { colourWanted } from '../util/style.js';
import type { CliContext } from './context.js';
import { buildRequest, registerObserveOptions, type ObserveFlags, type ObserveOutputFormat } from './observe-flags.js';

const OBSERVE_EXAMPLES = `
Examples:
  membrane observe --namespace shop --type drop --last 3       # recent drops, each naming its policy
  membrane observe --follow --to-pod shop/backend              # stream flows to one endpoint
  membrane observe --from-label app=frontend --to-port 8080 -o json | jq .flow.verdict
  membrane observe --type policy-verdict --not --verdict FORWARDED   # only denials
  membrane observe --to-service web --since 5m -o table
  membrane observe --node node2 --last 10 --print-node-name   # in a cluster: only node2's flows`;

export function observeCommand(ctx: CliContext): CommandUnknownOpts {
  // The filter flags are registered in a loop (observe-flags.ts), so their types are declared
  // there (ObserveFlags) rather than inferred.
  const cmd = registerObserveOptions(
    new UntypedCommand('observe').description("show flows: what talked to what, and why it was dropped (filters combine like Hubble's); in a cluster, every node's"),
  )
    .addHelpText('after', OBSERVE_EXAMPLES)
    .action(async (o: ObserveFlags) => {
    const req = buildRequest(o, new Date());
    const format = (o.output ?? 'compact') as ObserveOutputFormat;
    if (format === 'table' && req.follow) throw new UserError('invalid', '-o table cannot be used with --follow: use compact, json or dict');
    const nodeName = o.printNodeName ?? false;
    const colour = colourWanted(process.stdout);
    const collected: Flow[] = [];
    const controller = new AbortController();
    process.once('SIGINT', () => controller.abort());
    process.once('SIGTERM', () => controller.abort());
    await streamFlows(
      ctx.client().socketPath,
      req,
      (line) => {
        const msg = JSON.parse(line) as {
          flow?: Flow;
          lost_events?: { source: string; num_events_lost: number };
          node_status?: NodeStatusEvent;
          node_name?: string;
          time?: string;
          error?: { code: string; message: string };
        };
        if (msg.error) throw new ApiError(500, msg.error.code, msg.error.message);
        if (msg.node_status) {
          // As `hubble observe`: node statuses go to stderr, so stdout holds flows only.
          if (msg.node_status.state_change !== 'NODE_UNAVAILABLE' && msg.node_status.state_change !== 'NODE_ERROR') return;
          const text = format === 'json' || format === 'jsonpb' ? line : formatNodeStatus({ node_status: msg.node_status, node_name: msg.node_name ?? '', time: msg.time ?? '' }, format);
          if (text !== undefined) process.stderr.write(text + '\n');
          return;
        }
        if (msg.lost_events) {
          const why = msg.lost_events.source === 'PERF_EVENT_RING_BUFFER' ? 'the datapath ring buffer was full' : 'this reader fell behind';
          process.stderr.write(`EVENTS LOST: ${msg.lost_events.source} ${msg.lost_events.num_events_lost} (${why})\n`);
          return;
        }
        if (!msg.flow) return;
        if (format === 'json' || format === 'jsonpb') process.stdout.write(line + '\n');
        else if (format === 'table') collected.push(msg.flow);
        else if (format === 'dict') process.stdout.write(formatDict(msg.flow, { nodeName, colour }) + '\n');
        else process.stdout.write(formatCompact(msg.flow, { nodeName, colour }) + '\n');
      },
      controller.signal,
    );
    if (format === 'table') process.stdout.write(formatTable(collected, { nodeName }) + '\n');
  });
  // One class at run time: extra-typings only adds types to commander's Command.
  return cmd as unknown as CommandUnknownOpts;
}
