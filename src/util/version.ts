/* Membrane's version, from package.json (this file is src/util/*.ts or dist/util/*.js, two levels
 * below the repository's root). */
import fs from 'node:fs';

export const VERSION = (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
