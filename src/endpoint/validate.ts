/* Validation of endpoint and namespace names and named ports, with messages that say the fix. */
import { invalid, quoted } from '../errors.js';
import type { NamedPort } from '../policy/ports.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/;

export function validateNamespaceName(name: string): void {
  if (!DNS_LABEL.test(name)) {
    throw invalid(`namespace ${quoted(name)}: must be a DNS label (lowercase letters, digits and '-', at most 63 characters)`);
  }
}

export function validateEndpointName(name: string): void {
  if (!DNS_SUBDOMAIN.test(name)) {
    throw invalid(`endpoint name ${quoted(name)}: must be lowercase letters, digits, '-' and '.', starting and ending alphanumeric`);
  }
}

/** Splits `NS/NAME`. */
export function parseEndpointRef(ref: string): { namespace: string; name: string } {
  const parts = ref.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    throw invalid(`${quoted(ref)} is not an endpoint reference: write NAMESPACE/NAME, e.g. default/web`);
  }
  return { namespace: parts[0], name: parts[1] };
}

/** Parses `NAME:PORT[/PROTO]` (protocol defaults to TCP). */
export function parseNamedPort(text: string): NamedPort {
  const m = /^([^:]+):(\d+)(?:\/([A-Za-z]+))?$/.exec(text);
  if (!m) throw invalid(`port ${quoted(text)}: expected NAME:PORT/PROTO, e.g. http:80/TCP`);
  const [, name, portText, protoText] = m as unknown as [string, string, string, string | undefined];
  if (!PORT_NAME.test(name) || !/[a-z]/.test(name)) {
    throw invalid(`port ${quoted(text)}: name must be 1-15 lowercase letters, digits or '-', with at least one letter`);
  }
  const port = Number(portText);
  if (port < 1 || port > 65535) throw invalid(`port ${quoted(text)}: ${port} is out of range 1-65535`);
  const protocol = (protoText ?? 'TCP').toUpperCase();
  if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP') {
    throw invalid(`port ${quoted(text)}: protocol must be TCP, UDP or SCTP`);
  }
  return { name, port, protocol };
}

export function parseNamedPorts(list: string[] | undefined): NamedPort[] {
  const ports = (list ?? []).map(parseNamedPort);
  const seen = new Set<string>();
  for (const p of ports) {
    if (seen.has(p.name)) throw invalid(`port name "${p.name}" is given twice: port names are unique per endpoint`);
    seen.add(p.name);
  }
  return ports;
}
