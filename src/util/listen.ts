/* Who may read a TCP listener of the agent. Loopback answers only processes of the node itself,
 * so plaintext is acceptable there; any wider address (0.0.0.0, ::, a node address, an empty host,
 * a host name) is reachable from endpoints and other hosts, and what the agent serves (flows
 * naming workloads, labels and policies; metrics) must then travel over TLS, or the operator
 * must say out loud that plaintext is fine. The Observer gRPC listener and /metrics share these
 * rules and flag names (Cilium's: --hubble-tls-cert-file, --hubble-tls-key-file,
 * --hubble-tls-client-ca-files, --hubble-disable-tls, and the same with --metrics-). */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { invalid } from '../errors.js';

export interface HostPort {
  /** Without brackets; '' means every interface. */
  host: string;
  port: number;
}

/** The TLS flags of one listener, as given. */
export interface TlsFiles {
  certFile?: string;
  keyFile?: string;
  clientCaFiles?: string[];
}

export interface ListenerFlags extends TlsFiles {
  /** host:port; '' disables the listener. */
  address: string;
  /** Plaintext on a non-loopback address is accepted. */
  disableTls?: boolean;
}

/** What a TLS listener serves, checked to load. */
export interface ServerTls {
  /** PEM certificate chain, the server's own certificate first. */
  cert: Buffer;
  key: Buffer;
  /**
   * PEM CA certificates a client certificate must be signed by (mutual TLS). Absent: clients
   * are not asked for a certificate, so TLS only keeps the traffic private and the server known.
   */
  clientCa?: Buffer;
}

/** tls: the server is authenticated and the traffic private; mtls: clients are authenticated too. */
export type TlsMode = 'plaintext' | 'tls' | 'mtls';

export interface Listener extends HostPort {
  loopback: boolean;
  mode: TlsMode;
  tls?: ServerTls;
  /** Something worth a log line that does not stop the agent. */
  warning?: string;
}

/** Loopback: the node's own processes only (IPv4-mapped forms of 127/8 included). */
const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

const show = (text: string) => JSON.stringify(text);

/** HOST:PORT, [IPV6]:PORT or :PORT (every interface); `flag` names the input in the error. */
export function parseHostPort(address: string, flag: string): HostPort {
  const bad = (why: string) =>
    invalid(`${flag} ${show(address)} ${why}: write HOST:PORT, e.g. 127.0.0.1:4245 or [::1]:4245 (port 0 picks a free one)`);
  const i = address.lastIndexOf(':');
  if (i < 0) throw bad('has no port');
  const portText = address.slice(i + 1);
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port > 65535) throw bad('has no valid port');
  let host = address.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1);
    if (net.isIPv6(host)) return { host, port };
    throw bad('has no IPv6 address inside the brackets');
  }
  if (host.includes(':')) throw bad('is ambiguous (an IPv6 address needs brackets)');
  if (host.includes('[') || host.includes(']') || /\s/.test(host)) throw bad('has no valid host');
  return { host, port };
}

/** host:port with an IPv6 host in brackets. */
export function joinHostPort(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Whether only the node's own processes can reach `host`. A host name other than localhost
 * counts as reachable from outside: what it resolves to can change under the agent.
 */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const family = net.isIP(host);
  return family !== 0 && LOOPBACK.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Checks one listener's flags, named after `name` (`--${name}-address`, `--${name}-tls-cert-file`,
 * ...), and loads its TLS material, so a mistake stops the agent before it starts with one line
 * naming the flag and the fix. Undefined when the listener is disabled (address '').
 */
export function checkListener(name: string, flags: ListenerFlags): Listener | undefined {
  const flag = {
    address: `--${name}-address`,
    cert: `--${name}-tls-cert-file`,
    key: `--${name}-tls-key-file`,
    clientCa: `--${name}-tls-client-ca-files`,
    disable: `--${name}-disable-tls`,
  };
  const hostPort = flags.address === '' ? undefined : parseHostPort(flags.address, flag.address);
  const clientCaFiles = flags.clientCaFiles ?? [];

  if (flags.certFile && !flags.keyFile) throw invalid(`${flag.cert} needs ${flag.key}: give the certificate's private key too`);
  if (flags.keyFile && !flags.certFile) throw invalid(`${flag.key} needs ${flag.cert}: give the certificate the key belongs to`);
  if (clientCaFiles.length && !flags.certFile) {
    throw invalid(`${flag.clientCa} needs ${flag.cert} and ${flag.key}: mutual TLS needs the server's own certificate too`);
  }
  if (flags.disableTls && flags.certFile) {
    throw invalid(`${flag.disable} contradicts ${flag.cert}: give the TLS files to serve TLS, or ${flag.disable} to serve plaintext, not both`);
  }

  let tls: ServerTls | undefined;
  if (flags.certFile && flags.keyFile) {
    const cert = readPemCertificates(flag.cert, flags.certFile);
    const key = readPrivateKey(flag.key, flags.keyFile);
    if (!cert.leaf.checkPrivateKey(key.object)) {
      throw invalid(`${flag.key} ${show(flags.keyFile)} is not the private key of the certificate in ${flag.cert} ${show(flags.certFile)}: give the matching pair`);
    }
    tls = { cert: cert.pem, key: key.pem };
    if (clientCaFiles.length) tls.clientCa = Buffer.concat(clientCaFiles.map((f) => readPemCertificates(flag.clientCa, f).pem));
  }

  if (!hostPort) return undefined;
  const loopback = isLoopbackHost(hostPort.host);
  if (!loopback && !tls && !flags.disableTls) {
    throw invalid(
      `${flag.address} ${show(flags.address)} is not a loopback address, and plaintext there is readable by anyone who reaches it: ` +
        `give ${flag.cert} and ${flag.key} (with ${flag.clientCa} for mutual TLS), or pass ${flag.disable} to accept plaintext`,
    );
  }
  const mode: TlsMode = !tls ? 'plaintext' : tls.clientCa ? 'mtls' : 'tls';
  const listener: Listener = { ...hostPort, loopback, mode, ...(tls ? { tls } : {}) };
  if (mode === 'tls' && !loopback) {
    listener.warning = `${flag.address} serves TLS without ${flag.clientCa}: any client that reaches it can read it`;
  }
  return listener;
}

function readFile(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    // "ENOENT: no such file or directory, open '<file>'": the file is named already.
    const why = ((err as Error).message.split(',')[0] ?? '').trim();
    throw invalid(`${flag} ${show(file)} cannot be read (${why}): give a readable PEM file`);
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** Every PEM certificate of the file, each parsed, so a truncated or garbled one is caught here. */
function readPemCertificates(flag: string, file: string): { pem: Buffer; leaf: crypto.X509Certificate } {
  const blocks = readFile(flag, file).toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw invalid(`${flag} ${show(file)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  const parsed = blocks.map((block, i) => {
    try {
      return new crypto.X509Certificate(block);
    } catch {
      throw invalid(`${flag} ${show(file)}: certificate ${i + 1} of ${blocks.length} is not a valid X.509 certificate`);
    }
  });
  // Exactly the blocks checked here are served: a key bundled in the same file stays behind.
  return { pem: Buffer.from(blocks.join('\n') + '\n'), leaf: parsed[0]! };
}

function readPrivateKey(flag: string, file: string): { pem: Buffer; object: crypto.KeyObject } {
  const pem = readFile(flag, file);
  try {
    return { pem, object: crypto.createPrivateKey(pem) };
  } catch {
    throw invalid(`${flag} ${show(file)} is not an unencrypted PEM private key`);
  }
}

/** The files of the Observer for peers (--hubble-peer-tls-*), as given. */
export interface PeerTlsFiles {
  certFile?: string;
  keyFile?: string;
  caFile?: string;
}

/**
 * What a node of a cluster serves its peers and dials them with: its certificate (server and
 * client), its key, and the cluster CA that every peer's certificate must be signed by.
 */
export interface PeerTls {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** Default port of the Observer for peers (Hubble's agents serve theirs on 4244). */
export const PEER_OBSERVER_PORT = 4244;

/**
 * Checks and loads the peer TLS files of node `nodeName`, so a mistake stops the agent at start
 * with one line: all three or none, a key that is the certificate's, a certificate the CA signed,
 * that names this node (relays check the name) and allows both server and client use. The
 * listener for peers is mutual TLS only: there is no flag for plaintext on the underlay, and an
 * address without these files is refused (`checkPeerAddress`). Undefined when none is given.
 */
export function checkPeerTls(files: PeerTlsFiles, nodeName: string): PeerTls | undefined {
  const flag = { cert: '--hubble-peer-tls-cert-file', key: '--hubble-peer-tls-key-file', ca: '--hubble-peer-tls-ca-file' };
  const given = { cert: files.certFile, key: files.keyFile, ca: files.caFile };
  const missing = (Object.keys(given) as (keyof typeof given)[]).filter((k) => !given[k]);
  if (missing.length === 3) return undefined;
  if (missing.length > 0) {
    throw invalid(`${missing.map((k) => flag[k]).join(' and ')} missing: peers are reached with mutual TLS only, which needs the node's certificate, its key and the cluster CA (membrane cluster certs makes them)`);
  }
  const cert = readPemCertificates(flag.cert, files.certFile!);
  const key = readPrivateKey(flag.key, files.keyFile!);
  const ca = readPemCertificates(flag.ca, files.caFile!);
  const certName = `${flag.cert} ${show(files.certFile!)}`;
  if (!cert.leaf.checkPrivateKey(key.object)) {
    throw invalid(`${flag.key} ${show(files.keyFile!)} is not the private key of the certificate in ${certName}: give the matching pair`);
  }
  if (!cert.leaf.checkIssued(ca.leaf) || !cert.leaf.verify(ca.leaf.publicKey)) {
    throw invalid(`the certificate in ${certName} is not signed by the CA in ${flag.ca} ${show(files.caFile!)}: give the cluster's CA, or a certificate it signed`);
  }
  if (cert.leaf.checkHost(nodeName) === undefined) {
    throw invalid(`the certificate in ${certName} does not name this node (${nodeName}): its peers check the name; give this node's own certificate (membrane cluster certs --node ${nodeName}=IP)`);
  }
  const usages = cert.leaf.keyUsage; // extended key usage OIDs; undefined means any use
  if (usages && !(usages.includes('1.3.6.1.5.5.7.3.1') && usages.includes('1.3.6.1.5.5.7.3.2'))) {
    throw invalid(`the certificate in ${certName} is not for both TLS server and client use: a node serves its peers and dials them with the same certificate`);
  }
  return { cert: cert.pem, key: key.pem, ca: ca.pem };
}

/**
 * The address of the Observer for peers: `address` as given ('' disables it), else the node's
 * underlay address on PEER_OBSERVER_PORT when it has peer TLS. An address without peer TLS is
 * refused: nothing is served in plaintext on the underlay.
 */
export function checkPeerAddress(address: string | undefined, tls: PeerTls | undefined, underlayIp: string): string | undefined {
  if (address === '') return undefined;
  if (address === undefined) return tls ? joinHostPort(underlayIp, PEER_OBSERVER_PORT) : undefined;
  parseHostPort(address, '--hubble-peer-address');
  if (!tls) {
    throw invalid(`--hubble-peer-address ${show(address)} serves flows to other nodes, over mutual TLS only: give --hubble-peer-tls-cert-file, --hubble-peer-tls-key-file and --hubble-peer-tls-ca-file (membrane cluster certs makes them)`);
  }
  return address;
}
