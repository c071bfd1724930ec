// RxDB, as a phone app would use it, replicating against repairdesk: memory storage,
// `replicateRxCollection`, RxDB's own conflict handler. The server runs apart, on a fresh database
// (scripts/rxdb.py starts it and passes RD_URL and RD_ADMIN_PASSWORD).
//
// Two collections per phone: `ops`, the actions it takes (documents it creates and never edits,
// pushed and pulled), and `tickets`, pull-only. Each step syncs the way an app does when it is
// back online, then checks that what the phone holds is what the server says.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createRxDatabase } from 'rxdb';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { replicateRxCollection } from 'rxdb/plugins/replication';

const BASE = process.env.RD_URL;
const ADMIN_PASSWORD = process.env.RD_ADMIN_PASSWORD;
const PASSWORD = 'rxdb-test-password';
const BATCH = 2;

async function call(method, path, token, body) {
  const res = await fetch(`${BASE}/api/v1${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const error = new Error(`${method} ${path} answered ${res.status}: ${text}`);
    error.status = res.status;
    throw error;
  }
  return json;
}

async function login(username, password) {
  return (await call('POST', '/auth/login', null, { username, password })).access_token;
}

// ---- the phone: what a mobile developer writes ----

const ticketSchema = {
  version: 0,
  primaryKey: 'id',
  type: 'object',
  properties: {
    id: { type: 'string', maxLength: 64 },
    number: { type: 'string' },
    status: { type: 'string' },
    version: { type: 'integer' },
    assignee_id: { type: ['string', 'null'] },
  },
  required: ['id'],
};

const opSchema = {
  version: 0,
  primaryKey: 'id',
  type: 'object',
  properties: {
    id: { type: 'string', maxLength: 100 },
    client_id: { type: 'string' },
    op_id: { type: 'integer' },
    name: { type: 'string' },
    ticket_id: { type: 'string' },
    args: { type: 'object' },
    device_time: { type: ['string', 'null'] },
    result: { type: ['object', 'null'] },
  },
  required: ['id', 'client_id', 'op_id', 'name', 'ticket_id', 'args', 'result'],
};

class Phone {
  static async open(name, token) {
    const phone = new Phone();
    phone.name = name;
    phone.token = token;
    phone.clientId = randomUUID();
    phone.nextOp = 1;
    phone.online = true;
    phone.loseNextAnswer = false;
    phone.db = await createRxDatabase({ name: `${name}-${phone.clientId}`, storage: getRxStorageMemory() });
    await phone.db.addCollections({ tickets: { schema: ticketSchema }, ops: { schema: opSchema } });
    return phone;
  }

  // the network as the phone sees it: down while offline; an answer may be lost on the way back
  async post(path, body) {
    if (!this.online) throw new Error('offline');
    const answer = await call('POST', path, this.token, body);
    if (this.loseNextAnswer && path.endsWith('/push')) {
      this.loseNextAnswer = false;
      throw new Error('the connection dropped before the answer came');
    }
    return answer;
  }

  // one action: a document of the ops collection, never an edit of a ticket
  async act(name, ticketId, args = {}) {
    const opId = this.nextOp++;
    await this.db.ops.insert({
      id: `${this.clientId}:${opId}`,
      client_id: this.clientId,
      op_id: opId,
      name,
      ticket_id: ticketId,
      args,
      device_time: new Date().toISOString(),
      result: null,
    });
    return `${this.clientId}:${opId}`;
  }

  // back online: what an app runs then (push and pull operations, pull tickets), until done
  async sync() {
    const ops = replicateRxCollection({
      collection: this.db.ops,
      replicationIdentifier: `repairdesk-ops-${BASE}`,
      live: false,
      retryTime: 50,
      push: { batchSize: BATCH, handler: (rows) => this.post('/sync/rx/ops/push', rows) },
      pull: {
        batchSize: BATCH,
        handler: (checkpoint, batchSize) => this.post('/sync/rx/ops/pull', { checkpoint, batchSize }),
      },
    });
    await ops.awaitInitialReplication();
    await ops.cancel();
    const tickets = replicateRxCollection({
      collection: this.db.tickets,
      replicationIdentifier: `repairdesk-tickets-${BASE}`,
      live: false,
      retryTime: 50,
      pull: {
        batchSize: BATCH,
        handler: (checkpoint, batchSize) => this.post('/sync/rx/tickets/pull', { checkpoint, batchSize }),
      },
    });
    await tickets.awaitInitialReplication();
    await tickets.cancel();
  }

  async tickets() {
    const docs = await this.db.tickets.find().exec();
    return Object.fromEntries(docs.map((d) => [d.id, plain(d.toJSON())]));
  }

  async ops() {
    const docs = await this.db.ops.find().exec();
    return Object.fromEntries(docs.map((d) => [d.id, plain(d.toJSON())]));
  }
}

// a document without what RxDB keeps of its own
function plain(doc) {
  return Object.fromEntries(Object.entries(doc).filter(([k]) => !k.startsWith('_')));
}

// ---- the server's truth, read apart from the phone ----

async function serverView(token) {
  const view = {};
  let checkpoint = null;
  for (;;) {
    const page = await call('POST', '/sync/rx/tickets/pull', token, { checkpoint, batchSize: 500 });
    for (const d of page.documents) if (!d._deleted) view[d.id] = plain(d);
    if (page.documents.length < 500) return view;
    checkpoint = page.checkpoint;
  }
}

async function serverOps(token, clientId) {
  const ops = {};
  let checkpoint = null;
  for (;;) {
    const page = await call('POST', '/sync/rx/ops/pull', token, { checkpoint, batchSize: 500 });
    for (const d of page.documents) if (d.client_id === clientId) ops[d.id] = plain(d);
    if (page.documents.length < 500) return ops;
    checkpoint = page.checkpoint;
  }
}

async function assertSame(phone) {
  assert.deepEqual(await phone.tickets(), await serverView(phone.token), `${phone.name}'s tickets`);
  assert.deepEqual(await phone.ops(), await serverOps(phone.token, phone.clientId), `${phone.name}'s operations`);
}

// ---- the story ----

test('two phones replicate with RxDB: a visit offline, a claim race, a lost answer, a reassignment', async () => {
  const admin = await login('admin', ADMIN_PASSWORD);
  const site = await call('POST', '/sites', admin, { code: 'RX', name: 'RX 管理处', timezone: 'Asia/Shanghai' });
  const user = (username, role, trades) =>
    call('POST', '/users', admin, {
      username, password: PASSWORD, display_name: username, role, site_ids: [site.id], trades,
    });
  await user('desk', 'dispatcher', []);
  const liId = (await user('li_tech', 'technician', ['water'])).id;
  const wangId = (await user('wang_tech', 'technician', ['water'])).id;
  const desk = await login('desk', PASSWORD);
  const ticket = async (category = 'water') =>
    (await call('POST', '/tickets', desk, {
      site_id: site.id, area: 'public', location: '2栋电梯厅', category, urgency: 'normal', paid: false,
      description: '电梯厅漏水', reporter_name: '王女士', reporter_phone: '13812345678',
      resident_supplies_parts: false, channel: 'phone',
    })).id;
  const pool = [];
  for (let i = 0; i < 5; i++) pool.push(await ticket());
  await ticket('electric'); // another trade: in neither technician's view
  const li = await Phone.open('li', await login('li_tech', PASSWORD));
  const wang = await Phone.open('wang', await login('wang_tech', PASSWORD));

  // 1. both pull the whole view, two tickets a page
  await li.sync();
  await wang.sync();
  assert.deepEqual(Object.keys(await li.tickets()).sort(), [...pool].sort());
  await assertSame(li);
  await assertSame(wang);

  // 2. li does a whole visit offline, then syncs
  li.online = false;
  const visit = pool[0];
  await li.act('claim', visit);
  await li.act('arrive', visit, { lat: 30.59, lng: 114.3 });
  await li.act('add_material', visit, {
    id: randomUUID(), name: '角阀', quantity: '2', unit: '个', unit_price_cents: 1800, supplied_by: 'company',
  });
  await li.act('add_note', visit, { id: randomUUID(), note: '换了两个角阀' });
  li.online = true;
  await li.sync();
  const ops = Object.values(await li.ops());
  assert.equal(ops.length, 4);
  for (const op of ops) assert.equal(op.result?.status, 'applied', JSON.stringify(op));
  const done = (await li.tickets())[visit];
  assert.equal(done.status, 'on_site');
  assert.equal(done.assignee_id, liId);
  assert.equal(done.materials.length, 1);
  assert.equal(done.notes.length, 1);
  await assertSame(li);

  // 3. both claim one ticket offline; wang syncs first and wins
  const raced = pool[1];
  li.online = false;
  wang.online = false;
  const liClaim = await li.act('claim', raced);
  const wangClaim = await wang.act('claim', raced);
  wang.online = true;
  await wang.sync();
  li.online = true;
  await li.sync();
  assert.equal((await wang.ops())[wangClaim].result.status, 'applied');
  const lost = (await li.ops())[liClaim].result;
  assert.equal(lost.status, 'rejected');
  assert.equal(lost.code, 'already_claimed');
  assert.equal((await wang.tickets())[raced].assignee_id, wangId);
  assert.equal((await li.tickets())[raced], undefined, "the winner's ticket left the loser's phone");
  await assertSame(li);
  await assertSame(wang);

  // 4. a push whose answer is lost: the operation was applied once, and the phone learns so
  const noteId = await li.act('add_note', visit, { id: randomUUID(), note: '等业主确认' });
  li.loseNextAnswer = true;
  await li.sync();
  assert.equal(li.loseNextAnswer, false, 'the answer was lost on the way');
  assert.equal((await li.ops())[noteId].result.status, 'applied');
  assert.equal((await li.tickets())[visit].notes.length, 2, 'applied once');
  await assertSame(li);
  // and a phone that starts over (a new install of li's app) pulls every verdict
  const reinstalled = await Phone.open('li-again', li.token);
  await reinstalled.sync();
  const pulled = await reinstalled.ops();
  assert.deepEqual(pulled, await li.ops(), "the old install's operations, verdicts included");

  // 5. the desk gives a ticket li claimed to wang: it disappears from li's phone, appears on wang's
  const given = pool[2];
  await li.act('claim', given);
  await li.sync();
  assert.equal((await li.tickets())[given].assignee_id, liId);
  await call('POST', `/tickets/${given}/assign`, desk, { technician_id: wangId });
  await li.sync();
  await wang.sync();
  assert.equal((await li.tickets())[given], undefined);
  assert.equal((await wang.tickets())[given].assignee_id, wangId);
  await assertSame(li);
  await assertSame(wang);

  await li.db.remove();
  await wang.db.remove();
  await reinstalled.db.remove();
});
