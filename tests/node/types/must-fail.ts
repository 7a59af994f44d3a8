// Must NOT type-check (tests/node/types.test.js): proves tsc reads piston's
// own declarations, so usage.ts passing means something.
import { createServer } from 'piston';

const notAServer: number = createServer();
void notAServer;
