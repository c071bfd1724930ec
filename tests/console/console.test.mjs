// The desk console in a real browser: Debian's Chromium (CHROMIUM, default /usr/bin/chromium),
// driven by playwright-core, against a server on a fresh database (scripts/console.py starts it
// and passes RD_URL and RD_ADMIN_PASSWORD; its clock scans every second and escalates a ticket
// left in the pool for 2 s). A dispatcher's shift in short: log in, watch a ticket registered
// elsewhere (over the API) appear on the board without a reload, open it, assign and reassign it,
// acknowledge an escalation (another dispatcher's board drops it at once), register a ticket with a
// bad phone and see the error by the field, register one for a requested technician, resend its
// code, verify its arrival by phone and cancel it, inspect public-area work and call back, register
// a matter (a bad phone named first) and call it back, read the monthly report and download it.
// With RD_SCREENSHOTS=<folder> each page is saved there as a PNG.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.RD_URL;
const ADMIN_PASSWORD = process.env.RD_ADMIN_PASSWORD;
const SHOTS = process.env.RD_SCREENSHOTS || '';
const PASSWORD = 'console-test-password';
const LIVE_MS = 2000; // the bound: a change shows within 2 s, no reload

async function call(method, path, token, body) {
  const res = await fetch(`${BASE}/api/v1${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

async function login(username, password) {
  return (await call('POST', '/auth/login', null, { username, password })).access_token;
}

let browser, context, page, admin, site, techs = [];
const cspViolations = [];

async function shot(name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

function newTicket(location, extra = {}) {
  return call('POST', '/tickets', admin, {
    site_id: site.id, area: 'in_home', location, category: 'water', urgency: 'normal',
    description: '厨房水管漏水', reporter_name: '王女士', reporter_phone: '13812345678', channel: 'phone', ...extra,
  });
}

before(async () => {
  admin = await login('admin', ADMIN_PASSWORD);
  site = await call('POST', '/sites', admin, { code: 'GY', name: '桂园小区', timezone: 'Asia/Shanghai' });
  await call('POST', '/users', admin, {
    username: 'li.desk', password: PASSWORD, display_name: '李调度', role: 'dispatcher', site_ids: [site.id],
  });
  for (const [username, name] of [['wang.tech', '王师傅'], ['zhao.tech', '赵师傅']]) {
    techs.push(await call('POST', '/users', admin, {
      username, password: PASSWORD, display_name: name, role: 'technician', site_ids: [site.id], trades: ['water'],
    }));
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  context = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'zh-CN', acceptDownloads: true });
  page = await context.newPage();
  page.on('console', (m) => {
    if (/Content.Security.Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
  });
});

after(async () => {
  await browser?.close();
});

test('a technician is refused with a clear message', async () => {
  await page.goto(`${BASE}/`);
  assert.match(page.url(), /\/console\/login$/, 'the board sends a stranger to the login');
  await page.fill('[data-testid=login-form] [name=username]', 'wang.tech');
  await page.fill('[data-testid=login-form] [name=password]', PASSWORD);
  await page.click('[data-testid=login-form] button[type=submit]');
  await page.waitForSelector('[data-testid=login-error]');
  assert.match(await page.textContent('[data-testid=login-error]'), /维修师傅/);
  await shot('login-refused');
});

test('the dispatcher logs in and sees the board', async () => {
  await page.goto(`${BASE}/console/login`);
  await shot('login');
  await page.fill('[data-testid=login-form] [name=username]', 'li.desk');
  await page.fill('[data-testid=login-form] [name=password]', PASSWORD);
  await page.click('[data-testid=login-form] button[type=submit]');
  await page.waitForSelector('[data-testid=board]');
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'rd_console');
  assert.ok(session, 'a session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  await page.waitForFunction(() => document.documentElement.getAttribute('data-stream') === 'open');
});

let first;

test('a ticket registered over the API appears on the board without a reload', async () => {
  const marker = await page.evaluate(() => { window.__notReloaded = true; return true; });
  assert.ok(marker);
  const started = Date.now();
  first = await newTicket('3栋2单元1201');
  await page.waitForSelector(`[data-testid=ticket-card][data-number="${first.number}"]`, { timeout: LIVE_MS + 3000 });
  const took = Date.now() - started;
  assert.ok(took <= LIVE_MS, `the card showed after ${took} ms`);
  assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page was not reloaded');
  const card = page.locator(`[data-testid=ticket-card][data-number="${first.number}"]`);
  assert.equal(await card.getAttribute('data-status'), 'open');
  assert.match(await card.textContent(), /3栋2单元1201/);
});

test('an escalation shows at the top and is acknowledged', async () => {
  // the clock escalates a ticket left in the pool for 2 s (scripts/console.py's settings)
  const row = page.locator(`[data-testid=escalation][data-number="${first.number}"]`);
  await row.waitFor({ timeout: 8000 });
  assert.equal(await row.getAttribute('data-kind'), 'unclaimed');
  const card = page.locator(`[data-testid=ticket-card][data-number="${first.number}"]`);
  assert.equal(await card.getAttribute('data-clock'), 'red');
  // a few more, for the picture: an emergency in the pool, two assigned (one of them with a new clock)
  await newTicket('地下车库B2', { area: 'public', urgency: 'emergency', reporter_phone: undefined, category: 'electric' });
  for (const [location, tech] of [['7栋1单元302', techs[0]], ['9栋3单元1701', techs[1]]]) {
    const t = await newTicket(location);
    await call('POST', `/tickets/${t.id}/assign`, admin, { technician_id: tech.id });
    await page.waitForSelector(`[data-testid=ticket-card][data-number="${t.number}"][data-status=assigned]`);
  }
  await shot('board');
  // another dispatcher's board, open beside this one: it loses the button without a reload
  const other = await context.newPage();
  await other.goto(`${BASE}/`);
  await other.waitForFunction(() => document.documentElement.getAttribute('data-stream') === 'open');
  const theirs = other.locator(`[data-testid=escalation][data-number="${first.number}"]`);
  assert.equal(await theirs.locator('[data-testid=ack]').count(), 1);
  await other.evaluate(() => { window.__notReloaded = true; });
  await row.locator('[name=note]').fill('已电话催促主管');
  await row.locator('[data-testid=ack]').click();
  await page.waitForSelector(`[data-testid=escalation][data-number="${first.number}"].taken`);
  const acked = Date.now();
  await other.waitForSelector(`[data-testid=escalation][data-number="${first.number}"].taken`, { timeout: LIVE_MS + 3000 });
  const took = Date.now() - acked;
  assert.ok(took <= LIVE_MS, `the other board showed the acknowledgement after ${took} ms`);
  assert.equal(await other.evaluate(() => window.__notReloaded), true, 'the other board was not reloaded');
  await other.close();
  assert.equal(await page.locator(`[data-testid=escalation][data-number="${first.number}"] [data-testid=ack]`).count(), 0);
  const items = await call('GET', `/escalations?site_id=${site.id}`, admin);
  const taken = items.items.find((e) => e.ticket_number === first.number);
  assert.ok(taken.acknowledged_at, 'the API sees it acknowledged');
  assert.equal(taken.note, '已电话催促主管');
});

test('the dispatcher opens the ticket, assigns it and reassigns it', async () => {
  await page.click(`[data-testid=ticket-card][data-number="${first.number}"]`);
  await page.waitForSelector('[data-testid=ticket-detail]');
  assert.equal(await page.getAttribute('[data-testid=ticket-detail]', 'data-number'), first.number);
  await shot('ticket');
  await page.selectOption('[data-testid=assign-form] select[name=technician_id]', techs[0].id);
  await page.click('[data-testid=assign-form] button[type=submit]');
  await page.waitForSelector('[data-testid=ticket-detail][data-status=assigned]');
  assert.equal(await page.inputValue('[data-testid=assign-form] select[name=technician_id]'), techs[0].id);
  await page.selectOption('[data-testid=assign-form] select[name=technician_id]', techs[1].id);
  await page.fill('[data-testid=assign-form] [name=reason]', '王师傅在别的单上');
  await page.click('[data-testid=assign-form] button[type=submit]');
  // the server's answer: the history holds the reassignment, the form shows the new holder
  await page.waitForSelector('[data-testid=ticket-detail] .history li[data-type=reassigned]');
  assert.equal(await page.inputValue('[data-testid=assign-form] select[name=technician_id]'), techs[1].id);
  const t = await call('GET', `/tickets/${first.id}`, admin);
  assert.equal(t.assignee_id, techs[1].id);
  assert.equal(t.status, 'assigned');
  const events = await call('GET', `/tickets/${first.id}/events`, admin);
  assert.ok(events.items.some((e) => e.type === 'reassigned'), 'the reassignment is in the history');
  await shot('ticket-reassigned');
});

test('a change made elsewhere refreshes the open ticket', async () => {
  const tech = await login('zhao.tech', PASSWORD);
  const started = Date.now();
  await call('POST', `/tickets/${first.id}/release`, tech, { reason: '配件不够' });
  await page.waitForSelector('[data-testid=ticket-detail][data-status=open]', { timeout: LIVE_MS + 3000 });
  assert.ok(Date.now() - started <= LIVE_MS, `the page showed the release after ${Date.now() - started} ms`);
});

test('a ticket with a bad phone is refused with the error by the field', async () => {
  await page.goto(`${BASE}/console/tickets/new`);
  const form = page.locator('[data-testid=new-ticket-form]');
  await form.locator('[name=location]').fill('5栋101');
  await form.locator('[name=reporter_name]').fill('张先生');
  await form.locator('[name=reporter_phone]').fill('12345');
  await form.locator('[name=description]').fill('卫生间灯不亮');
  await form.locator('[name=category]').selectOption('electric');
  await form.locator('button[type=submit]').click();
  const error = page.locator('[data-testid=field-error][data-field=reporter_phone]');
  await error.waitFor();
  assert.match(await error.textContent(), /手机号/);
  assert.equal(await page.locator('[data-testid=field-error]').count(), 1, 'only the phone is wrong');
  assert.equal(await form.locator('[name=location]').inputValue(), '5栋101', 'what was typed stays');
  await shot('new-ticket-error');
  await page.locator('[data-testid=new-ticket-form] [name=reporter_phone]').fill('13912345678');
  await page.locator('[data-testid=new-ticket-form] button[type=submit]').click();
  await page.waitForSelector('[data-testid=ticket-detail]');
  assert.match(await page.textContent('[data-testid=ticket-detail]'), /5栋101/);
});

test('a ticket for a requested technician, its code resent, its arrival verified by phone, then cancelled', async () => {
  await page.goto(`${BASE}/console/tickets/new`);
  const form = page.locator('[data-testid=new-ticket-form]');
  await form.locator('[name=location]').fill('6栋1单元501');
  await form.locator('[name=reporter_name]').fill('陈先生');
  await form.locator('[name=reporter_phone]').fill('13712345678');
  await form.locator('[name=description]').fill('热水器不出热水');
  await form.locator('[name=requested_technician_id]').selectOption(techs[1].id);
  await form.locator('button[type=submit]').click();
  const detail = page.locator('[data-testid=ticket-detail][data-status=assigned]');
  await detail.waitFor();
  const id = await detail.getAttribute('data-ticket-id');
  assert.equal((await call('GET', `/tickets/${id}`, admin)).assignee_id, techs[1].id, 'the requested technician holds it');

  // the code went out a moment ago: a resend this soon is refused, in Chinese, above its button
  const sms = await page.locator('[data-testid=sms]').count();
  await page.click('[data-testid=resend-form] button[type=submit]');
  const refused = page.locator('[data-testid=resend-form] [data-testid=form-error]');
  await refused.waitFor();
  assert.match(await refused.textContent(), /短信发送太频繁/);

  await page.fill('[data-testid=verify-by-phone-form] [name=note]', '业主来电确认师傅已到');
  await page.click('[data-testid=verify-by-phone-form] button[type=submit]');
  await page.waitForSelector('[data-testid=ticket-detail] .history li[data-type=verified_by_phone]');
  assert.match(await page.textContent('[data-testid=ticket-detail] .history li[data-type=verified_by_phone]'), /业主来电确认/);

  // codes go out a second apart here (scripts/console.py): sent again until the server takes it
  const resent = '[data-testid=ticket-detail] .history li[data-type=code_resent]';
  for (let i = 0; i < 30 && (await page.locator(resent).count()) === 0; i++) {
    await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/resend-code')),
      page.click('[data-testid=resend-form] button[type=submit]'),
    ]);
  }
  await page.waitForSelector(resent);
  assert.equal(await page.locator('[data-testid=sms]').count(), sms + 1, 'a new code is queued');

  await page.fill('[data-testid=cancel-form] [name=reason]', '业主已自行修好');
  await page.click('[data-testid=cancel-form] button[type=submit]');
  await page.waitForSelector('[data-testid=ticket-detail][data-status=cancelled]');
  assert.equal((await call('GET', `/tickets/${id}`, admin)).cancel_reason, '业主已自行修好');
});

test('public-area work is inspected, then the callback closes it', async () => {
  const t = await newTicket('2栋大堂', {
    area: 'public', reporter_phone: undefined, requested_technician_id: techs[0].id, description: '大堂地漏堵塞',
  });
  const tech = await login('wang.tech', PASSWORD);
  await call('POST', `/tickets/${t.id}/arrive`, tech, {});
  await call('POST', `/tickets/${t.id}/complete`, tech, { result: '已疏通地漏' });
  await page.goto(`${BASE}/console/tickets/${t.id}`);
  await page.waitForSelector('[data-testid=ticket-detail][data-status=awaiting_inspection]');
  await page.fill('[data-testid=inspect-form] [name=note]', '排水正常');
  await page.click('[data-testid=inspect-form] button[value=true]');
  await page.waitForSelector('[data-testid=ticket-detail][data-status=completed]');
  await page.selectOption('[data-testid=callback-form] [name=satisfaction]', '5');
  await page.fill('[data-testid=callback-form] [name=comment]', '物业满意');
  await page.click('[data-testid=callback-form] button[value=true]');
  await page.waitForSelector('[data-testid=ticket-detail][data-status=closed]');
  assert.match(await page.textContent('[data-testid=ticket-detail] section.callbacks'), /物业满意/);
  await shot('ticket-closed');
});

test('a matter is registered (a bad phone named first), replied to, and called back', async () => {
  await page.goto(`${BASE}/console/matters`);
  const form = page.locator('[data-testid=matter-form]');
  await page.click('#matters details.register summary');
  await form.locator('[name=kind]').selectOption('complaint');
  await form.locator('[name=department]').selectOption('cleaning');
  await form.locator('[name=reporter_name]').fill('刘女士');
  await form.locator('[name=reporter_phone]').fill('12345');
  await form.locator('[name=location]').fill('5栋楼道');
  await form.locator('[name=description]').fill('楼道垃圾两天未清');
  await form.locator('button[type=submit]').click();
  const error = page.locator('[data-testid=matter-form] [data-testid=field-error][data-field=reporter_phone]');
  await error.waitFor();
  assert.match(await error.textContent(), /手机号/);
  assert.equal(await page.locator('[data-testid=matter-form] [name=description]').inputValue(), '楼道垃圾两天未清');
  await shot('matter-error');
  await page.locator('[data-testid=matter-form] [name=reporter_phone]').fill('13612345678');
  await page.locator('[data-testid=matter-form] button[type=submit]').click();
  const row = page.locator('[data-testid=matter-row][data-status=open]', { hasText: '楼道垃圾两天未清' });
  await row.waitFor();
  const matterId = await row.getAttribute('data-id');
  // the department's reply is a supervisor's (or an admin's): over the API
  await call('POST', `/matters/${matterId}/reply`, admin, { reply: '已安排保洁当日清理' });
  await page.reload();
  const replied = page.locator(`[data-testid=matter-row][data-id="${matterId}"]`);
  assert.equal(await replied.getAttribute('data-status'), 'replied');
  await replied.locator('[data-testid=matter-callback-form] [name=satisfaction]').selectOption('4');
  await replied.locator('[data-testid=matter-callback-form] button[value=true]').click();
  await page.waitForSelector(`[data-testid=matter-row][data-id="${matterId}"][data-status=closed]`);
  assert.equal((await call('GET', `/matters/${matterId}`, admin)).status, 'closed');
  await shot('matters');
});

test('the monthly report draws its charts and hands out its workbook and CSV files', async () => {
  await page.goto(`${BASE}/`);
  await page.click('header.top nav a[href="/console/reports"]');
  await page.waitForSelector('[data-testid=report] [data-testid=report-chart][data-chart=targets]');
  assert.ok(await page.locator('[data-testid=report] svg[data-chart=by_trade] rect.bar').count() >= 1,
    'this month\'s tickets drawn by trade');
  assert.match(await page.textContent('[data-testid=report] h1'), /桂园小区/);
  await shot('report');
  for (const format of ['xlsx', 'csv']) {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click(`[data-testid=report-download][data-format=${format}]`),
    ]);
    assert.match(download.suggestedFilename(), new RegExp(`^repairdesk-report-\\d{4}-\\d{2}\\.${format === 'xlsx' ? 'xlsx' : 'zip'}$`));
    const file = await download.path();
    const bytes = readFileSync(file);
    assert.ok(bytes.length > 100, `the ${format} file is not empty`);
    assert.equal(bytes.subarray(0, 2).toString('latin1'), 'PK', `the ${format} file is a ZIP container`);
  }
});

test('the other pages: search, callbacks due, handover, and English', async () => {
  await page.goto(`${BASE}/console/search?q=${encodeURIComponent(first.number)}`);
  await page.waitForSelector(`[data-testid=ticket-row][data-number="${first.number}"]`);
  await shot('search');
  await page.goto(`${BASE}/console/callbacks`);
  await shot('callbacks');
  await page.goto(`${BASE}/console/handovers`);
  await page.locator('[data-testid=handover-form] [name=note]').fill('3栋漏水已派赵师傅');
  await page.locator('[data-testid=handover-form] button[type=submit]').click();
  await page.waitForSelector('[data-testid=handover]');
  await shot('handover');
  await page.goto(`${BASE}/`);
  await page.click('[data-testid=lang-switch]');
  await page.waitForSelector('[data-testid=board]');
  assert.match(await page.textContent('[data-status=open] h2'), /Open pool/);
  await shot('board-en');
});

test('the pages broke no rule of the Content-Security-Policy', () => {
  assert.deepEqual(cspViolations, []);
});
