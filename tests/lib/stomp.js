'use strict';
// Real STOMP clients for tests: @stomp/stompjs over `ws` (WebSocket).
const { Client } = require('@stomp/stompjs');
const WebSocket = require('ws');
Object.assign(global, { WebSocket });

// Connect; resolves to { client, frames: [] , wait(pred, ms) } once CONNECTED.
function connectWs(srv, { login = 'alice', passcode = '', heartbeat = 0, protocols, url, headers } = {}) {
  return new Promise((resolve, reject) => {
    const received = [];
    const waiters = [];
    const client = new Client({
      webSocketFactory: () => new WebSocket(url || srv.ws, protocols || ['v12.stomp', 'v11.stomp', 'v10.stomp'], { headers }),
      connectHeaders: { login, passcode },
      heartbeatIncoming: heartbeat,
      heartbeatOutgoing: heartbeat,
      reconnectDelay: 0,
      debug: () => {},
    });
    const c = {
      client, received, errors: [], closed: false,
      subscribe(room, headers = {}, cb) {
        return client.subscribe(`/room/${room}`, (m) => {
          received.push(m);
          if (cb) cb(m);
          for (const w of waiters.slice()) w();
        }, headers);
      },
      // wait until pred() is true (checked on every message), or reject after ms
      wait(pred, ms = 10000, what = 'condition') {
        return new Promise((res, rej) => {
          if (pred()) return res();
          const t = setTimeout(() => { waiters.splice(waiters.indexOf(check), 1); rej(new Error(`timeout waiting for ${what}`)); }, ms);
          function check() { if (pred()) { clearTimeout(t); waiters.splice(waiters.indexOf(check), 1); res(); } }
          waiters.push(check);
        });
      },
      // publish and wait for the RECEIPT; resolves to the receipt frame
      send(room, body, headers = {}) {
        return new Promise((res, rej) => {
          const receipt = 'r' + Math.random().toString(36).slice(2);
          const t = setTimeout(() => rej(new Error('no receipt for SEND')), 10000);
          client.watchForReceipt(receipt, (f) => { clearTimeout(t); res(f); });
          client.publish({ destination: `/room/${room}`, body, headers: Object.assign({ receipt }, headers) });
        });
      },
      close() { c.closed = true; return client.deactivate(); },
    };
    client.onConnect = () => resolve(c);
    client.onStompError = (f) => { c.errors.push(f); reject(new Error('STOMP ERROR: ' + f.headers.message)); for (const w of waiters.slice()) w(); };
    client.onWebSocketClose = (e) => { c.closed = true; c.closeEvent = e; reject(new Error('WebSocket closed: ' + (e && e.code))); for (const w of waiters.slice()) w(); };
    client.activate();
  });
}

module.exports = { connectWs, Client, WebSocket };
