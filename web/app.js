/*
 * Parley web client: STOMP over WebSocket (@stomp/stompjs, the published
 * browser bundle next to this file) plus the REST API with Basic auth.
 *
 * What it speaks (see doc/protocol.md and doc/media.md):
 *   CONNECT login/passcode; SUBSCRIBE /room/NAME with history:50 the first
 *   time and since:<last position seen> after a reconnect, so nothing is
 *   missed or repeated; SEND with event:typing, event:edit / event:delete
 *   plus ref-id, and media-id for attachments (uploaded first with
 *   POST /api/v1/media).  Older pages come from
 *   GET /api/v1/rooms/NAME/messages?before=POSITION.
 *
 * Everything a user typed is put in the page with textContent, never as
 * HTML.  Positions are 64-bit: kept as BigInt.
 */
(function () {
  'use strict';

  const HISTORY = 50;
  const TYPING_SEND_MS = 3000;
  const TYPING_SHOW_MS = 5000;
  const MAX_KEPT = 2000;			// messages kept per room

  const $ = (id) => document.getElementById(id);
  const el = {
    loginView: $('login-view'), loginForm: $('login-form'), loginName: $('login-name'),
    loginPass: $('login-pass'), loginError: $('login-error'), loginButton: $('login-button'),
    chatView: $('chat-view'), status: $('status'), me: $('me'), logout: $('logout-button'),
    menu: $('menu-button'), sidebar: $('sidebar'), joined: $('joined'), rooms: $('rooms'),
    createForm: $('create-form'), createName: $('create-name'), createError: $('create-error'),
    roomTitle: $('room-title'), emptyHint: $('empty-hint'), panel: $('room-panel'),
    notice: $('notice'), older: $('older-button'), messages: $('messages'), typing: $('typing'),
    composer: $('composer'), input: $('composer-input'), file: $('file-input'),
    uploadStatus: $('upload-status'), template: $('message-template'),
  };

  const S = {
    login: '', pass: '', me: '',
    client: null,
    everConnected: false,
    rooms: new Map(),	// name -> room
    active: null,		// room name
    lastTypingSent: 0,
    media: new Map(),	// media id -> Promise<{url, type, name}>
  };

  // ------------------------------------------------------------ helpers

  function authHeader() {
    const bytes = new TextEncoder().encode(`${S.login}:${S.pass}`);
    let bin = '';
    for (const b of bytes) bin += String.fromCharCode(b);
    return 'Basic ' + btoa(bin);
  }

  async function api(method, path, body) {
    const headers = { Authorization: authHeader() };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let json = null;
    try { json = await r.json(); } catch (e) { /* no body */ }
    if (!r.ok) throw Object.assign(new Error((json && json.error) || `HTTP ${r.status}`), { status: r.status });
    return json;
  }

  function big(s) {
    try { return BigInt(s); } catch (e) { return 0n; }
  }

  function show(node, on) { node.hidden = !on; }

  function setStatus(state, text) {
    el.status.dataset.state = state;
    el.status.textContent = text;
  }

  function notice(text) {
    el.notice.textContent = text;
    show(el.notice, !!text);
  }

  function fmtTime(ms) {
    const d = new Date(Number(ms));
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function save() {
    try {
      localStorage.setItem('parley.login', S.login);
      localStorage.setItem(`parley.rooms.${S.me}`, JSON.stringify([...S.rooms.keys()]));
      if (S.active) localStorage.setItem(`parley.active.${S.me}`, S.active);
    } catch (e) { /* private mode */ }
  }

  function remembered(key, def) {
    try { return localStorage.getItem(key) || def; } catch (e) { return def; }
  }

  // ------------------------------------------------------------ rooms

  function newRoom(name) {
    return {
      name,
      sub: null,
      msgs: new Map(),		// id -> message
      last: 0n,			// highest position seen (any event)
      oldest: null,		// lowest chat position held
      hasMore: true,
      typing: new Map(),	// login -> until (ms)
      unread: 0,
      loadingOlder: false,
    };
  }

  function subscribe(room) {
    const headers = { id: `room-${room.name}` };
    if (room.last > 0n) headers.since = room.last.toString();
    else headers.history = String(HISTORY);
    room.sub = S.client.subscribe(`/room/${room.name}`, (frame) => onFrame(room, frame), headers);
  }

  function join(name, activate = true) {
    let room = S.rooms.get(name);
    if (!room) {
      room = newRoom(name);
      S.rooms.set(name, room);
      if (S.client && S.client.connected) subscribe(room);
      save();
    }
    renderJoined();
    if (activate) activate_(name);
  }

  function leave(name) {
    const room = S.rooms.get(name);
    if (!room) return;
    if (room.sub && S.client && S.client.connected) {
      try { room.sub.unsubscribe(); } catch (e) { /* closed */ }
    }
    S.rooms.delete(name);
    if (S.active === name) S.active = S.rooms.size ? [...S.rooms.keys()][0] : null;
    save();
    renderJoined();
    renderRoom();
  }

  function activate_(name) {
    S.active = name;
    const room = S.rooms.get(name);
    if (room) room.unread = 0;
    save();
    renderJoined();
    renderRoom();
    if (window.matchMedia('(max-width: 700px)').matches) toggleSidebar(false);
    el.input.focus();
  }

  async function loadRooms() {
    try {
      const r = await api('GET', '/api/v1/rooms');
      el.rooms.replaceChildren();
      for (const info of r.rooms.sort((a, b) => a.name.localeCompare(b.name))) {
        const li = document.createElement('li');
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'room-link';
        b.textContent = info.name;
        if (info.topic) b.title = info.topic;
        b.addEventListener('click', () => join(info.name));
        li.append(b);
        el.rooms.append(li);
      }
    } catch (e) {
      if (e.status === 401) return;
      notice(`Cannot list rooms: ${e.message}`);
    }
  }

  function renderJoined() {
    el.joined.replaceChildren();
    for (const room of S.rooms.values()) {
      const li = document.createElement('li');
      li.className = 'joined-room';
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'room-link';
      b.textContent = room.name;
      if (room.name === S.active) b.setAttribute('aria-current', 'true');
      if (room.unread > 0) {
        const u = document.createElement('span');
        u.className = 'unread';
        u.textContent = room.unread;
        u.setAttribute('aria-label', `${room.unread} unread`);
        b.append(' ', u);
      }
      b.addEventListener('click', () => activate_(room.name));
      const x = document.createElement('button');
      x.type = 'button';
      x.className = 'leave';
      x.textContent = '×';
      x.setAttribute('aria-label', `Leave room ${room.name}`);
      x.title = `Leave ${room.name}`;
      x.addEventListener('click', () => leave(room.name));
      li.append(b, x);
      el.joined.append(li);
    }
  }

  // ------------------------------------------------------------ messages

  function msgFromFrame(room, f) {
    const h = f.headers;
    return {
      id: h['message-id'],
      position: big(h.position),
      sender: h.sender || '',
      ts: Number(h.timestamp || Date.now()),
      body: f.body,
      mediaId: h['media-id'] || null,
      edited: false,
      deleted: false,
    };
  }

  function msgFromJson(m) {
    return {
      id: m.id,
      position: big(m.position),
      sender: m.sender || '',
      ts: Number(m.timestamp),
      body: m.body || '',
      mediaId: m.media_id || null,
      edited: !!m.edited,
      deleted: !!m.deleted,
    };
  }

  function sortedMessages(room) {
    return [...room.msgs.values()].sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
  }

  function addMessage(room, m) {
    if (!m.id || room.msgs.has(m.id)) return false;
    // a replayed tombstone: no body, no media
    if (m.body === '' && !m.mediaId) m.deleted = true;
    room.msgs.set(m.id, m);
    if (m.position > 0n && (room.oldest === null || m.position < room.oldest)) room.oldest = m.position;
    if (room.msgs.size > MAX_KEPT) {
      const first = sortedMessages(room)[0];
      room.msgs.delete(first.id);
      room.hasMore = true;
      room.oldest = sortedMessages(room)[0].position;
      if (room.name === S.active && first.el) first.el.remove();
    }
    if (room.name === S.active) placeMessage(room, m);
    return true;
  }

  function placeMessage(room, m) {
    const node = renderMessage(room, m);
    // keep the list in position order
    let next = null;
    for (const li of el.messages.children) {
      if (li.dataset.position && big(li.dataset.position) > m.position) { next = li; break; }
    }
    el.messages.insertBefore(node, next);
  }

  function renderMessage(room, m) {
    const node = el.template.content.firstElementChild.cloneNode(true);
    m.el = node;
    node.dataset.id = m.id;
    node.dataset.position = m.position.toString();
    if (m.sender === S.me) node.classList.add('mine');
    node.querySelector('.sender').textContent = m.sender;
    const time = node.querySelector('.time');
    time.textContent = fmtTime(m.ts);
    time.dateTime = new Date(m.ts).toISOString();
    time.title = new Date(m.ts).toLocaleString();
    fillMessage(room, m);
    return node;
  }

  function fillMessage(room, m) {
    const node = m.el;
    if (!node) return;
    const body = node.querySelector('.body');
    const att = node.querySelector('.attachment');
    const actions = node.querySelector('.actions');
    node.classList.toggle('deleted', m.deleted);
    show(node.querySelector('.edited'), m.edited && !m.deleted);
    if (m.deleted) {
      body.textContent = 'Message deleted';
      att.replaceChildren();
      show(att, false);
      show(actions, false);
      return;
    }
    body.textContent = m.body;
    show(body, m.body !== '');
    if (m.mediaId) {
      show(att, true);
      if (!att.dataset.media) {
        att.dataset.media = m.mediaId;
        showMedia(att, m);
      }
    }
    if (m.sender === S.me) {
      show(actions, true);
      const edit = actions.querySelector('.edit');
      const del = actions.querySelector('.delete');
      edit.onclick = () => startEdit(room, m);
      edit.setAttribute('aria-label', `Edit your message: ${m.body.slice(0, 40)}`);
      del.onclick = () => confirmDelete(room, m, del);
      del.setAttribute('aria-label', `Delete your message: ${m.body.slice(0, 40)}`);
      del.textContent = 'Delete';
    }
  }

  function systemLine(room, text, position) {
    if (room.name !== S.active) return;
    const li = document.createElement('li');
    li.className = 'system';
    li.textContent = text;
    if (position) li.dataset.position = position.toString();
    el.messages.append(li);
    scrollToEnd();
  }

  function nearBottom() {
    const m = el.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function scrollToEnd() {
    el.messages.scrollTop = el.messages.scrollHeight;
  }

  function renderRoom() {
    const room = S.active ? S.rooms.get(S.active) : null;
    show(el.emptyHint, !room);
    show(el.panel, !!room);
    el.roomTitle.textContent = room ? `#${room.name}` : '';
    document.title = room ? `#${room.name} – Parley` : 'Parley';
    el.messages.replaceChildren();
    notice('');
    if (!room) return;
    el.messages.setAttribute('aria-label', `Messages in ${room.name}`);
    for (const m of sortedMessages(room)) el.messages.append(renderMessage(room, m));
    show(el.older, room.hasMore);
    renderTyping();
    scrollToEnd();
  }

  // ------------------------------------------------------------ media

  function mediaUrl(id) { return `/api/v1/media/${encodeURIComponent(id)}`; }

  function fetchMedia(id) {
    if (!S.media.has(id)) {
      const p = fetch(mediaUrl(id), { headers: { Authorization: authHeader() } }).then(async (r) => {
        if (!r.ok) throw new Error(r.status === 404 ? 'file not found' : r.status === 403 ? 'not allowed' : `HTTP ${r.status}`);
        const blob = await r.blob();
        const disp = r.headers.get('Content-Disposition') || '';
        const nm = /filename="([^"]*)"/.exec(disp);
        return { url: URL.createObjectURL(blob), type: blob.type || r.headers.get('Content-Type') || '', name: nm ? nm[1] : id, size: blob.size };
      });
      p.catch(() => S.media.delete(id));
      S.media.set(id, p);
    }
    return S.media.get(id);
  }

  function showMedia(att, m) {
    const wait = document.createElement('span');
    wait.className = 'loading';
    wait.textContent = 'Loading attachment…';
    att.replaceChildren(wait);
    fetchMedia(m.mediaId).then((f) => {
      if (/^image\/(png|jpeg|gif|webp)$/.test(f.type)) {
        const img = document.createElement('img');
        img.className = 'media';
        img.alt = m.body ? `Picture from ${m.sender}: ${m.body}` : `Picture from ${m.sender}`;
        img.src = f.url;
        img.loading = 'lazy';
        const stick = nearBottom();
        img.addEventListener('load', () => { if (stick) scrollToEnd(); });
        const a = document.createElement('a');
        a.href = f.url;
        a.target = '_blank';
        a.rel = 'noopener';
        a.append(img);
        att.replaceChildren(a);
      } else {
        const a = document.createElement('a');
        a.href = f.url;
        a.download = f.name;
        a.className = 'file';
        a.textContent = `Download ${f.name} (${Math.max(1, Math.round(f.size / 1024))} KiB)`;
        att.replaceChildren(a);
      }
    }, (e) => {
      wait.textContent = `Attachment unavailable (${e.message})`;
      wait.className = 'error';
    });
  }

  function uploadFile(file) {
    const room = S.active;
    if (!room || !file) return;
    el.uploadStatus.textContent = `Uploading ${file.name}…`;
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/v1/media?name=${encodeURIComponent(file.name)}&room=${encodeURIComponent(room)}`);
    xhr.setRequestHeader('Authorization', authHeader());
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) el.uploadStatus.textContent = `Uploading ${file.name}: ${Math.round(100 * e.loaded / e.total)}%`;
    };
    xhr.onerror = () => { el.uploadStatus.textContent = `Upload of ${file.name} failed: network error`; };
    xhr.onload = () => {
      let j = null;
      try { j = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status !== 201 || !j) {
        el.uploadStatus.textContent = `Upload of ${file.name} failed: ${(j && j.error) || 'HTTP ' + xhr.status}`;
        return;
      }
      el.uploadStatus.textContent = `Sent ${file.name}.`;
      // the caption, or the file name: text-only clients see something
      const caption = el.input.value.trim() || file.name;
      el.input.value = '';
      publish(room, caption, { 'media-id': j.id });
    };
    xhr.send(file);
  }

  // ------------------------------------------------------------ sending

  function publish(room, body, headers = {}) {
    if (!S.client || !S.client.connected) {
      notice('Not connected: the message was not sent. Reconnecting…');
      return false;
    }
    S.client.publish({ destination: `/room/${room}`, body, headers });
    return true;
  }

  function startEdit(room, m) {
    const body = m.el.querySelector('.body');
    const form = document.createElement('form');
    form.className = 'edit-form';
    const label = document.createElement('label');
    label.className = 'visually-hidden';
    label.textContent = 'Edit message';
    const ta = document.createElement('textarea');
    ta.value = m.body;
    ta.id = `edit-${m.id}`;
    label.htmlFor = ta.id;
    const saveB = document.createElement('button');
    saveB.type = 'submit';
    saveB.textContent = 'Save';
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.textContent = 'Cancel';
    form.append(label, ta, saveB, cancel);
    body.replaceChildren(form);
    show(body, true);
    ta.focus();
    const done = () => fillMessage(room, m);
    cancel.onclick = done;
    ta.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') done();
      if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const text = ta.value.trim();
      if (text && text !== m.body) publish(room.name, text, { event: 'edit', 'ref-id': m.id });
      done();
    });
  }

  function confirmDelete(room, m, button) {
    if (button.dataset.armed) {
      publish(room.name, '', { event: 'delete', 'ref-id': m.id });
      return;
    }
    button.dataset.armed = '1';
    button.textContent = 'Really delete?';
    setTimeout(() => { delete button.dataset.armed; if (button.isConnected) button.textContent = 'Delete'; }, 4000);
  }

  // ------------------------------------------------------------ typing

  function renderTyping() {
    const room = S.active ? S.rooms.get(S.active) : null;
    if (!room) { el.typing.textContent = ''; return; }
    const now = Date.now();
    const who = [...room.typing.entries()].filter(([, until]) => until > now).map(([l]) => l);
    el.typing.textContent = who.length === 0 ? '' : who.length === 1 ? `${who[0]} is typing…` :
      `${who.slice(0, -1).join(', ')} and ${who[who.length - 1]} are typing…`;
  }
  setInterval(renderTyping, 1000);

  // ------------------------------------------------------------ frames

  function onFrame(room, f) {
    const h = f.headers;
    const ev = h.event;
    const pos = big(h.position);
    if (ev !== 'resumed' && pos > room.last) room.last = pos;
    switch (ev) {
      case 'typing':
        if (h.sender !== S.me) {
          room.typing.set(h.sender, Date.now() + TYPING_SHOW_MS);
          renderTyping();
        }
        return;
      case 'join':
      case 'leave':
        room.typing.delete(h.sender);
        if (h.sender !== S.me) systemLine(room, `${h.sender} ${ev === 'join' ? 'joined' : 'left'}`);
        return;
      case 'edit':
      case 'delete': {
        const m = room.msgs.get(h['ref-id']);
        if (!m) return;
        if (ev === 'edit') { m.body = f.body; m.edited = true; } else { m.deleted = true; m.mediaId = null; }
        fillMessage(room, m);
        return;
      }
      case 'resumed':
        if (h.recovered === 'false') {
          notice('Some messages could not be recovered after the reconnect; reloading recent history.');
          reloadRecent(room);
        }
        return;
      default: {
        const stick = room.name !== S.active || nearBottom();
        const m = msgFromFrame(room, f);
        if (addMessage(room, m)) {
          room.typing.delete(m.sender);
          renderTyping();
          if (room.name !== S.active) { room.unread++; renderJoined(); } else if (stick || m.sender === S.me) scrollToEnd();
        }
      }
    }
  }

  async function loadOlder(room) {
    if (room.loadingOlder || !room.hasMore) return;
    room.loadingOlder = true;
    el.older.disabled = true;
    try {
      const before = room.oldest !== null ? `before=${room.oldest}&` : '';
      const r = await api('GET', `/api/v1/rooms/${encodeURIComponent(room.name)}/messages?${before}limit=${HISTORY}`);
      const list = el.messages;
      const h0 = list.scrollHeight;
      for (const j of r.messages) addMessage(room, msgFromJson(j));
      room.hasMore = !!r.has_more;
      if (room.name === S.active) {
        list.scrollTop += list.scrollHeight - h0;	// keep the view still
        show(el.older, room.hasMore);
      }
    } catch (e) {
      notice(`Cannot load older messages: ${e.message}`);
    } finally {
      room.loadingOlder = false;
      el.older.disabled = false;
    }
  }

  async function reloadRecent(room) {
    try {
      const r = await api('GET', `/api/v1/rooms/${encodeURIComponent(room.name)}/messages?limit=${HISTORY}`);
      for (const j of r.messages) addMessage(room, msgFromJson(j));
    } catch (e) {
      notice(`Cannot reload history: ${e.message}`);
    }
  }

  // ------------------------------------------------------------ connection

  function connect() {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    const client = new StompJs.Client({
      brokerURL: url,
      connectHeaders: { login: S.login, passcode: S.pass },
      heartbeatIncoming: 10000,
      heartbeatOutgoing: 10000,
      reconnectDelay: 1000,
      maxReconnectDelay: 15000,
      reconnectTimeMode: StompJs.ReconnectionTimeMode ? StompJs.ReconnectionTimeMode.EXPONENTIAL : undefined,
      debug: () => {},
    });
    client.onConnect = (frame) => {
      S.me = frame.headers['user-name'] || S.login;
      el.me.textContent = S.me;
      const first = !S.everConnected;
      S.everConnected = true;
      setStatus('connected', 'Connected');
      if (first) enterChat();
      notice('');
      // (re)subscribe: resume each room after the last position seen
      for (const room of S.rooms.values()) subscribe(room);
      loadRooms();
    };
    client.onStompError = (frame) => {
      const msg = frame.headers.message || 'error';
      if (/authentication failed/.test(msg)) {
        client.deactivate();
        S.client = null;
        if (!S.everConnected) loginFailed('Wrong login or password.');
        else logout('Your session was refused: sign in again.');
        return;
      }
      // a room we may no longer read: drop it, or every reconnect
      // would subscribe again and be refused again
      const denied = /^permission denied: read on room (\S+)$/.exec(msg);
      if (denied && S.rooms.has(denied[1])) {
        S.rooms.delete(denied[1]);
        if (S.active === denied[1]) S.active = S.rooms.size ? [...S.rooms.keys()][0] : null;
        save();
        renderJoined();
        renderRoom();
      }
      notice(`Server: ${msg}${frame.body ? ' — ' + frame.body : ''}`);
    };
    client.onWebSocketClose = () => {
      if (S.client === client && S.everConnected) setStatus('reconnecting', 'Reconnecting…');
    };
    client.onWebSocketError = () => {
      if (!S.everConnected) loginFailed('Cannot reach the server.');
    };
    S.client = client;
    client.activate();
  }

  function enterChat() {
    show(el.loginView, false);
    show(el.chatView, true);
    el.loginButton.disabled = false;
    let names = [];
    try { names = JSON.parse(remembered(`parley.rooms.${S.me}`, '[]')); } catch (e) { /* ignore */ }
    for (const name of Array.isArray(names) ? names : []) {
      if (typeof name === 'string' && !S.rooms.has(name)) S.rooms.set(name, newRoom(name));
    }
    const active = remembered(`parley.active.${S.me}`, '');
    S.active = S.rooms.has(active) ? active : (S.rooms.size ? [...S.rooms.keys()][0] : null);
    renderJoined();
    renderRoom();
  }

  function loginFailed(text) {
    if (S.client) { S.client.deactivate(); S.client = null; }
    el.loginError.textContent = text;
    show(el.loginError, true);
    el.loginButton.disabled = false;
    el.loginPass.focus();
  }

  function logout(text) {
    if (S.client) S.client.deactivate();
    S.client = null;
    S.everConnected = false;
    S.pass = '';
    S.rooms.clear();
    S.active = null;
    for (const p of S.media.values()) p.then((f) => URL.revokeObjectURL(f.url), () => {});
    S.media.clear();
    show(el.chatView, false);
    show(el.loginView, true);
    el.loginPass.value = '';
    el.loginError.textContent = text || '';
    show(el.loginError, !!text);
    el.loginName.focus();
  }

  // ------------------------------------------------------------ UI events

  el.loginForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const login = el.loginName.value.trim();
    if (!login) {
      el.loginError.textContent = 'Enter your login.';
      show(el.loginError, true);
      el.loginName.focus();
      return;
    }
    S.login = login;
    S.pass = el.loginPass.value;
    show(el.loginError, false);
    el.loginButton.disabled = true;
    try { localStorage.setItem('parley.login', login); } catch (err) { /* private mode */ }
    connect();
  });

  el.logout.addEventListener('click', () => logout(''));

  el.createForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = el.createName.value.trim();
    show(el.createError, false);
    try {
      await api('POST', '/api/v1/rooms', { name });
    } catch (err) {
      if (err.status !== 409) {
        el.createError.textContent = err.message;
        show(el.createError, true);
        return;
      }
    }
    el.createName.value = '';
    await loadRooms();
    join(name);
  });

  el.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = el.input.value.trim();
    if (!text || !S.active) return;
    if (publish(S.active, text)) {
      el.input.value = '';
      S.lastTypingSent = 0;
    }
  });

  el.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      el.composer.requestSubmit();
    }
  });

  el.input.addEventListener('input', () => {
    const now = Date.now();
    if (S.active && el.input.value && now - S.lastTypingSent > TYPING_SEND_MS && S.client && S.client.connected) {
      S.lastTypingSent = now;
      S.client.publish({ destination: `/room/${S.active}`, body: '', headers: { event: 'typing' } });
    }
  });

  el.file.addEventListener('change', () => {
    const f = el.file.files && el.file.files[0];
    if (f) uploadFile(f);
    el.file.value = '';
  });

  el.older.addEventListener('click', () => {
    const room = S.active && S.rooms.get(S.active);
    if (room) loadOlder(room);
  });

  el.messages.addEventListener('scroll', () => {
    const room = S.active && S.rooms.get(S.active);
    if (room && el.messages.scrollTop === 0 && room.hasMore) loadOlder(room);
  });

  function toggleSidebar(open) {
    const on = open === undefined ? !el.sidebar.classList.contains('open') : open;
    el.sidebar.classList.toggle('open', on);
    el.menu.setAttribute('aria-expanded', on ? 'true' : 'false');
  }
  el.menu.addEventListener('click', () => toggleSidebar());

  setInterval(() => { if (S.client && S.client.connected) loadRooms(); }, 30000);

  el.loginName.value = remembered('parley.login', '');
  (el.loginName.value ? el.loginPass : el.loginName).focus();

  // for tests and the curious: the client's state, read-only use
  window.parley = { state: S };
}());
