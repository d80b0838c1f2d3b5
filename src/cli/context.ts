/* What every command of the `membrane` CLI shares: the agent client (the global --socket, or
 * MEMBRANE_SOCKET), the -o option and option parsers. */
import { Option } from '@commander-js/extra-typings';
import type { AgentClient } from '../api/client.js';

export interface CliContext {
  /** The agent at --socket, MEMBRANE_SOCKET or the default socket. */
  client(): AgentClient;
}

export const outputOption = () => new Option('-o, --output <format>', 'table, json or yaml').default('table');

/** A repeatable option's values. */
export const collect = (v: string, prev: string[] = []) => [...prev, v];

/** A comma-separated list that may also be repeated. */
export const collectList = (v: string, prev: string[] = []) => [...prev, ...v.split(',').filter((s) => s !== '')];
