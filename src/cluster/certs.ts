/* Certificates for agents that talk to each other (DESIGN.md §3.13: only with mutual TLS). A
 * cluster gets one CA; each node gets one certificate that serves as both its server certificate
 * (its Observer on the underlay) and its client certificate (when it relays a peer's flows),
 * with the node's name as a DNS subject alternative name (a relay checks that the peer it
 * dialled is the node the registry named) and its underlay addresses as IP names (for clients
 * such as `hubble observe --server IP:4244` that check the address they dialled).
 *
 * Keys are ECDSA P-256: generated in microseconds by the platform (an RSA key in JavaScript
 * takes seconds), and accepted by every TLS stack gRPC uses. node:crypto can parse a certificate
 * but not issue one, so @peculiar/x509 builds and signs them over Node's WebCrypto; that library
 * resolves its parts through tsyringe, which wants the reflect-metadata polyfill loaded first.
 * Only `membrane cluster certs` loads this file: the agent never does.
 *
 * Private keys never leave the files the caller writes (0600); nothing here touches etcd. */
import 'reflect-metadata';
import crypto from 'node:crypto';
import net from 'node:net';
import * as x509 from '@peculiar/x509';
import { invalid } from '../errors.js';

x509.cryptoProvider.set(crypto.webcrypto as Crypto);

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
/** notBefore is set this far in the past, so a node whose clock lags a little accepts a new certificate. */
const CLOCK_SKEW_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

/** A certificate and its private key, both PEM (the key unencrypted PKCS #8). */
export interface PemPair {
  cert: string;
  key: string;
}

export interface NodeIdentity {
  name: string;
  /** Underlay addresses the node is dialled at (may be empty: the name is what relays check). */
  ips: string[];
}

/** Node names become DNS names in the certificate, which TLS compares case-insensitively, label by label. */
const NODE_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?$/;

export function checkNodeIdentity(node: NodeIdentity): void {
  if (!NODE_NAME.test(node.name)) {
    throw invalid(`node name ${JSON.stringify(node.name)} cannot be a certificate name: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit`);
  }
  for (const ip of node.ips) if (!net.isIP(ip)) throw invalid(`${JSON.stringify(ip)} (node ${node.name}) is not an IP address: give NAME=IP, e.g. node1=172.30.0.10`);
}

const serial = () => {
  const bytes = crypto.randomBytes(16);
  bytes[0]! &= 0x7f; // a positive INTEGER, as RFC 5280 asks
  return Buffer.from(bytes).toString('hex');
};

function validity(days: number) {
  const now = Date.now();
  return { notBefore: new Date(now - CLOCK_SKEW_MS), notAfter: new Date(now + days * DAY_MS) };
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await crypto.webcrypto.subtle.exportKey('pkcs8', key));
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

/** A new CA for the cluster, valid `days` days. */
export async function createClusterCa(cluster: string, days: number): Promise<PemPair> {
  const keys = (await crypto.webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const name = `CN=membrane cluster CA ${cluster.replace(/[,+="\\<>;#]/g, '_')}, O=membrane`;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name,
    ...validity(days),
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await keyPem(keys.privateKey) };
}

/** The CA of an earlier run, to sign more nodes with it; refused unless it is a CA this command made. */
export async function loadClusterCa(pair: PemPair, where: string): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  let cert: x509.X509Certificate;
  let keyObject: crypto.KeyObject;
  try {
    cert = new x509.X509Certificate(pair.cert);
    keyObject = crypto.createPrivateKey(pair.key);
  } catch {
    throw invalid(`${where}: ca.crt or ca.key is not a PEM certificate or key: remove both to make a new CA (every node then needs a new certificate)`);
  }
  if (keyObject.asymmetricKeyType !== 'ec' || keyObject.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw invalid(`${where}: ca.key is not an ECDSA P-256 key, as this command makes: sign with the CA's own tools, or remove ca.crt and ca.key to make a new CA`);
  }
  if (!new crypto.X509Certificate(pair.cert).checkPrivateKey(keyObject)) {
    throw invalid(`${where}: ca.key is not the private key of ca.crt: put the matching pair back, or remove both to make a new CA`);
  }
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  const key = await crypto.webcrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, false, ['sign']);
  return { cert, key };
}

/** A node's certificate (server and client authentication) signed by the cluster CA, valid `days` days. */
export async function issueNodeCertificate(ca: { cert: x509.X509Certificate; key: CryptoKey }, node: NodeIdentity, days: number): Promise<PemPair> {
  checkNodeIdentity(node);
  const keys = (await crypto.webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const names: x509.JsonGeneralName[] = [{ type: 'dns', value: node.name }, ...node.ips.map((ip) => ({ type: 'ip' as const, value: ip }))];
  const period = validity(days);
  // Not beyond the CA: a chain is only as valid as its shortest link.
  if (period.notAfter > ca.cert.notAfter) period.notAfter = ca.cert.notAfter;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${node.name}, O=membrane`,
    issuer: ca.cert.subject,
    ...period,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await keyPem(keys.privateKey) };
}
