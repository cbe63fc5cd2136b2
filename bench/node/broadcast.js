// node ws broadcast server: every message goes to every other client (ws's
// own documented broadcast loop), so a publisher does not hear itself.
// usage: node broadcast.js [port]   (127.0.0.1 only)
'use strict';
const WebSocket = require('ws');

const port = Number(process.argv[2] || 7711);
const wss = new WebSocket.WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const client of wss.clients) {
      if (client !== ws && client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    }
  });
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(`node ws broadcast listening on ws://127.0.0.1:${port}/`));
const stop = () => { for (const c of wss.clients) c.terminate(); wss.close(() => process.exit(0)); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
