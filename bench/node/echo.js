// node ws echo server: every message goes back to its sender, unchanged.
// usage: node echo.js [port]   (127.0.0.1 only)
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 7710);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(`node ws echo listening on ws://127.0.0.1:${port}/`));
const stop = () => wss.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
