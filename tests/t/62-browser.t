#!/usr/bin/env node
'use strict';
// The web client in a real browser (Debian's chromium driven by
// playwright-core): two people sign in (one at phone width), create and join
// a room, chat, see typing and join, edit and delete, one sends a picture
// the other sees decoded, a dropped connection resumes without gaps or
// duplicates, and a reload shows the history.  Screenshots go to tests/out/.
const fs = require('fs');
const path = require('path');
const t = require('../lib/tap');
const { startParley, httpRequest, basic, sleep, ROOT } = require('../lib/parley');
const M = require('../lib/media');

const CHROMIUM = '/usr/bin/chromium';
const OUT = path.join(ROOT, 'tests', 'out');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
  '--disable-background-networking', '--disable-component-update', '--no-first-run'];

async function signIn(page, url, login) {
  await page.goto(url);
  await page.fill('#login-name', login);
  await page.fill('#login-pass', 'pw');
  await page.click('#login-button');
  await page.waitForSelector('#chat-view:not([hidden])', { timeout: 10000 });
  await page.waitForFunction(() => document.getElementById('status').dataset.state === 'connected', null, { timeout: 10000 });
}

// Text of the message bodies shown in the room, in order.
const bodies = (page) => page.$$eval('#messages li.message .body', (ns) => ns.map((n) => n.textContent));

t.run(async () => {
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    t.ok(false, 'playwright-core is installed (npm ci): ' + e.message);
    return;
  }
  if (!fs.existsSync(CHROMIUM)) {
    t.ok(false, `${CHROMIUM} exists (apt-get install chromium; contrib/setup-debian.sh --test)`);
    return;
  }
  fs.mkdirSync(OUT, { recursive: true });
  const srv = await startParley({ ini: { server: { web_root: path.join(ROOT, 'web') } } });
  let browser;
  const pageErrors = [];
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
    const ctxA = await browser.newContext({ viewport: { width: 1100, height: 760 } });
    const ctxB = await browser.newContext({ viewport: { width: 390, height: 800 }, isMobile: true, hasTouch: true });
    const alice = await ctxA.newPage();
    const bob = await ctxB.newPage();
    for (const [who, p] of [['alice', alice], ['bob', bob]]) {
      p.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
      p.on('console', (m) => { if (m.type() === 'error' && !/favicon|the server responded with a status of 40[134]/.test(m.text())) pageErrors.push(`${who} console: ${m.text()}`); });
    }

    // ---- served by parleyd, accessible markup
    const home = await httpRequest('GET', `${srv.http}/`);
    t.ok(home.status === 200 && /text\/html/.test(home.headers['content-type']), 'parleyd serves the web client at /');
    const lic = await httpRequest('GET', `${srv.http}/stomp.LICENSE.txt`);
    t.ok(lic.status === 200 && /Apache License/.test(lic.body), 'the STOMP bundle ships with its licence');
    await alice.goto(`${srv.http}/`);
    const unlabeled = await alice.$$eval('input:not([type=hidden]), textarea', (ns) =>
      ns.filter((n) => !(n.labels && n.labels.length) && !n.getAttribute('aria-label')).map((n) => n.id));
    t.deep(unlabeled, [], 'every form field has a label');

    // ---- a refused sign-in says so on the form
    await alice.fill('#login-name', 'not a login');
    await alice.click('#login-button');
    await alice.waitForSelector('#login-error:not([hidden])', { timeout: 10000 });
    t.is(await alice.textContent('#login-error'), 'Wrong login or password.', 'a refused login is reported on the form');

    // ---- sign in, create and join a room
    await signIn(alice, `${srv.http}/`, 'alice');
    t.is(await alice.textContent('#me'), 'alice', 'alice is signed in (name from CONNECTED user-name)');
    await alice.fill('#create-name', 'garden');
    await alice.click('#create-form button[type=submit]');
    await alice.waitForFunction(() => document.getElementById('room-title').textContent === '#garden');
    t.ok(true, 'alice created room garden and is in it');

    await signIn(bob, `${srv.http}/`, 'bob');
    t.ok(!(await bob.isVisible('#sidebar')), 'phone width: the room list is folded away');
    await bob.click('#menu-button');
    t.ok(await bob.isVisible('#sidebar'), 'the Rooms button opens it');
    await bob.click('#rooms button:has-text("garden")');
    await bob.waitForFunction(() => document.getElementById('room-title').textContent === '#garden');
    t.ok(!(await bob.isVisible('#sidebar')), 'choosing a room folds the list again');
    const overflow = await bob.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    t.ok(overflow <= 0, `no horizontal scrolling at 390px (overflow ${overflow}px)`);
    await alice.waitForSelector('#messages li.system:has-text("bob joined")', { timeout: 5000 });
    t.ok(true, 'alice sees "bob joined"');

    // ---- typing and chat
    await alice.type('#composer-input', 'hello bo', { delay: 20 });
    await bob.waitForFunction(() => /alice is typing/.test(document.getElementById('typing').textContent), null, { timeout: 5000 });
    t.ok(true, 'bob sees "alice is typing…"');
    await alice.type('#composer-input', 'b');
    await alice.press('#composer-input', 'Enter');
    await bob.waitForSelector('#messages li.message:has-text("hello bob")', { timeout: 5000 });
    const seen = await bob.$eval('#messages li.message:has-text("hello bob")', (li) => ({
      sender: li.querySelector('.sender').textContent, mine: li.classList.contains('mine') }));
    t.deep(seen, { sender: 'alice', mine: false }, "bob sees alice's message with her name");
    t.is(await bob.textContent('#typing'), '', 'the typing notice goes when the message arrives');
    await bob.fill('#composer-input', 'hi alice');
    await bob.click('#send-button');
    await bob.fill('#composer-input', 'oops');
    await bob.click('#send-button');
    await alice.waitForSelector('#messages li.message:has-text("oops")', { timeout: 5000 });
    t.deep((await bodies(alice)).slice(-3), ['hello bob', 'hi alice', 'oops'], 'alice sees the conversation in order');

    // ---- edit and delete own messages
    const helloId = await alice.locator('#messages li.message.mine:has-text("hello bob")').getAttribute('data-id');
    const aliceMsg = alice.locator(`#messages li[data-id="${helloId}"]`);
    await aliceMsg.locator('button.edit').click();
    await aliceMsg.locator('textarea').fill('hello bob, welcome');
    await aliceMsg.locator('button[type=submit]').click();
    await bob.waitForSelector('#messages li.message:has-text("hello bob, welcome") .edited:not([hidden])', { timeout: 5000 });
    t.ok(true, 'alice edits her message; bob sees the new text marked (edited)');
    t.is(await bob.locator('#messages li.message:not(.mine) button.edit:visible').count(), 0, "bob gets no Edit button on others' messages");
    const oopsId = await bob.locator('#messages li.message.mine:has-text("oops")').getAttribute('data-id');
    const oops = bob.locator(`#messages li[data-id="${oopsId}"]`);
    await oops.locator('button.delete').click();
    await oops.locator('button.delete').click();	// "Really delete?"
    await alice.waitForSelector('#messages li.message.deleted:has-text("Message deleted")', { timeout: 5000 });
    t.ok(!(await bodies(alice)).includes('oops'), 'bob deletes his message; alice sees a tombstone instead');

    // ---- a picture
    const pic = M.png(160, 96, [230, 20, 20]);
    await alice.setInputFiles('#file-input', { name: 'red.png', mimeType: 'image/png', buffer: pic });
    await bob.waitForSelector('#messages img.media', { timeout: 10000 });
    await bob.waitForFunction(() => { const i = document.querySelector('#messages img.media'); return i && i.complete && i.naturalWidth > 0; }, null, { timeout: 10000 });
    const img = await bob.$eval('#messages img.media', (i) => {
      const c = document.createElement('canvas');
      c.width = i.naturalWidth; c.height = i.naturalHeight;
      const g = c.getContext('2d');
      g.drawImage(i, 0, 0);
      return { w: i.naturalWidth, h: i.naturalHeight, px: [...g.getImageData(5, 5, 1, 1).data], alt: i.alt };
    });
    t.deep([img.w, img.h], [160, 96], 'bob sees the picture alice sent, decoded (160x96)');
    t.ok(img.px[0] > 200 && img.px[1] < 60 && img.px[2] < 60, `its pixels are red (${img.px.slice(0, 3)})`);
    t.like(img.alt, /Picture from alice/, 'the picture has alt text');
    const stored = fs.readdirSync(path.join(srv.dir, 'media')).filter((f) => !f.endsWith('.meta'));
    t.is(stored.length, 1, 'one media file stored by the fs plugin');

    // ---- a dropped connection resumes with since: (no gap, no duplicate)
    await alice.evaluate(() => { const c = window.parley.state.client; c.reconnectDelay = 2500; c.forceDisconnect(); });
    await alice.waitForFunction(() => document.getElementById('status').dataset.state === 'reconnecting', null, { timeout: 5000 });
    t.ok(true, 'alice sees "Reconnecting…" after the connection drops');
    for (const b of ['while you were away 1', 'while you were away 2', 'while you were away 3']) {
      const r = await httpRequest('POST', `${srv.http}/api/v1/rooms/garden/messages`, { body: b }, basic('bob'));
      if (r.status !== 201) throw new Error(`REST post: ${r.status} ${r.body}`);
    }
    await alice.waitForFunction(() => document.getElementById('status').dataset.state === 'connected', null, { timeout: 15000 });
    await alice.waitForSelector('#messages li.message:has-text("while you were away 3")', { timeout: 10000 });
    const after = await bodies(alice);
    t.deep(after.filter((b) => /while you were away/.test(b)), ['while you were away 1', 'while you were away 2', 'while you were away 3'],
      'after reconnecting alice has every message sent meanwhile, in order');
    t.is(after.filter((b) => b === 'hi alice').length, 1, 'and no duplicate of what she had');

    // ---- reload: sign in again, the room and its history come back
    await bob.reload();
    t.is(await bob.inputValue('#login-name'), 'bob', 'after a reload the login is remembered (never the password)');
    await signIn(bob, `${srv.http}/`, 'bob');
    await bob.waitForSelector('#messages li.message:has-text("while you were away 3")', { timeout: 10000 });
    const hist = await bodies(bob);
    t.ok(hist.includes('hello bob, welcome') && hist.includes('hi alice'), 'bob sees the history, with the edit applied');
    t.ok(!hist.includes('oops'), 'and without the deleted message');
    await bob.waitForFunction(() => { const i = document.querySelector('#messages img.media'); return i && i.complete && i.naturalWidth === 160; }, null, { timeout: 10000 });
    t.ok(true, 'and with the picture');
    await alice.screenshot({ path: path.join(OUT, '62-browser-alice.png') });
    await bob.screenshot({ path: path.join(OUT, '62-browser-bob-phone.png') });

    // ---- older pages load from REST when scrolling back
    for (let i = 0; i < 60; i++) {
      const r = await httpRequest('POST', `${srv.http}/api/v1/rooms/garden/messages`, { body: `filler ${i}` }, basic('carol'));
      if (r.status !== 201) throw new Error(`REST post: ${r.status}`);
    }
    await sleep(300);
    await bob.reload();
    await signIn(bob, `${srv.http}/`, 'bob');
    await bob.waitForSelector('#messages li.message:has-text("filler 59")', { timeout: 10000 });
    t.ok(!(await bodies(bob)).includes('hi alice'), 'a fresh join shows the last 50 messages only');
    await bob.click('#older-button');
    await bob.waitForSelector('#messages li.message:has-text("hi alice")', { timeout: 10000 });
    const all = await bodies(bob);
    t.ok(all.indexOf('hi alice') < all.indexOf('filler 0') && new Set(all).size === all.length,
      '"Load older messages" brings back the earlier page, in order, without duplicates');

    await bob.screenshot({ path: path.join(OUT, '62-browser-bob-older.png') });
    t.ok(fs.statSync(path.join(OUT, '62-browser-alice.png')).size > 1000, 'screenshots saved in tests/out/');
    t.deep(pageErrors, [], 'no script errors in either page');
  } finally {
    if (browser) await browser.close();
    await srv.stop();
  }
  t.ok(true, 'browser and parleyd stopped');
}, { timeoutMs: 180000 });
