/* Reserved identities keep Cilium's numbers so flows and policies read the same. */
export interface ReservedIdentity {
  id: number;
  name: string;
}

export const RESERVED_IDENTITIES: readonly ReservedIdentity[] = [
  { id: 1, name: 'host' },
  { id: 2, name: 'world' },
  { id: 3, name: 'unmanaged' },
  { id: 4, name: 'health' },
  { id: 5, name: 'init' },
  { id: 6, name: 'remote-node' },
  { id: 7, name: 'kube-apiserver' },
  { id: 8, name: 'ingress' },
];

export const IDENTITY_HOST = 1;
export const IDENTITY_WORLD = 2;
export const IDENTITY_REMOTE_NODE = 6;
export const MIN_ALLOCATED_IDENTITY = 256;
export const MAX_ALLOCATED_IDENTITY = 65535;
