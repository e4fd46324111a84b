import { readFileSync } from 'node:fs';
import express from 'express';

/**
 * The bare Express baseline of design.md §9: parses the same JSON body and answers the same response bytes, in its
 * own process. Usage: tsx bench/baseline-server.ts <response-file> <port>
 */
const [responseFile, port] = process.argv.slice(2);
const bytes = readFileSync(responseFile);
const app = express();
app.use(express.json({ limit: '1mb' }));
app.post('/cds-services/:id', (req, res) => {
  if (!req.body || typeof req.body !== 'object') {
    res.status(400).end();
    return;
  }
  res.type('application/json').send(bytes);
});
app.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
