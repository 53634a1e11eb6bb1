'use strict';
// node --test: the Semaphore over rsem's C ABI, in JavaScript alone and
// shared with native threads that use the same library.
const test = require('node:test');
const assert = require('node:assert');
const { execFileSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');
const koffi = require('koffi');
const { Semaphore, ClosedError, SEM, libraryPath } = require('..');

const tick = () => new Promise((r) => setImmediate(r));

test('counts like Python: tryAcquire, acquire, release, value', async () => {
  const s = new Semaphore(2);
  assert.strictEqual(s.tryAcquire(), true);
  assert.strictEqual(await s.acquire(), true);
  assert.strictEqual(s.tryAcquire(), false);
  assert.strictEqual(s.value, 0);
  s.release(2);
  assert.strictEqual(s.value, 2);
  assert.strictEqual(typeof s.max, 'bigint'); // 2^60 - 1: past 2^53
  assert.strictEqual(s.max, SEM.COUNT_MAX);
  const b = new Semaphore(1, { max: 1 });
  assert.throws(() => b.release(), RangeError);
  assert.throws(() => new Semaphore(-1), RangeError);
  assert.throws(() => s.tryAcquire(0), RangeError);
  s.close();
  b.close();
});

test('a pending acquire is resolved by a release, in arrival order (FIFO)', async () => {
  const s = new Semaphore(0, { fifo: true });
  const order = [];
  const a = s.acquire(2).then(() => order.push('a'));
  const b = s.acquire(1).then(() => order.push('b'));
  assert.strictEqual(s.waiters, 2);
  s.release(1); // the head needs 2: nobody is served, nobody barges
  await tick();
  assert.deepStrictEqual(order, []);
  assert.strictEqual(s.tryAcquire(), false);
  s.release(2);
  await Promise.all([a, b]);
  assert.deepStrictEqual(order, ['a', 'b']);
  assert.strictEqual(s.value, 0);
  s.close();
});

test('timeouts resolve false and take nothing', async () => {
  const s = new Semaphore(0);
  const t0 = Date.now();
  assert.strictEqual(await s.acquire(1, { timeout: 30 }), false);
  assert.ok(Date.now() - t0 >= 29);
  assert.strictEqual(await s.acquire(1, { timeout: 0 }), false);
  assert.strictEqual(s.waiters, 0);
  s.release();
  assert.strictEqual(s.value, 1);
  s.close();
});

test('shutdown rejects waiters with ClosedError; close() ends pending ones', async () => {
  const s = new Semaphore(0);
  const p = s.acquire();
  s.shutdown();
  await assert.rejects(p, ClosedError);
  await assert.rejects(s.acquire(), ClosedError);
  const t = new Semaphore(0);
  const q = t.acquire();
  t.close();
  await assert.rejects(q, ClosedError);
  s.close();
});

test('an AbortSignal withdraws the request; nothing is lost', async () => {
  const s = new Semaphore(0);
  const ac = new AbortController();
  const p = s.acquire(1, { signal: ac.signal });
  assert.strictEqual(s.waiters, 1);
  ac.abort();
  await assert.rejects(p, { name: 'AbortError' });
  assert.strictEqual(s.waiters, 0);
  s.release();
  assert.strictEqual(s.value, 1); // nothing went to the aborted request
  s.close();
});

test('many waiters in one loop: never more inside than permits', async () => {
  const s = new Semaphore(2);
  let inside = 0;
  let worst = 0;
  const task = async () => {
    for (let i = 0; i < 200; i++) {
      await s.acquire();
      inside++;
      worst = Math.max(worst, inside);
      await tick();
      inside--;
      s.release();
    }
  };
  await Promise.all(Array.from({ length: 8 }, task));
  assert.strictEqual(worst, 2);
  assert.strictEqual(s.value, 2);
  assert.strictEqual(s.waiters, 0);
  s.close();
});

test('JavaScript waits while native threads hold permits', async () => {
  // Build the native holders against the same library and header.
  const dir = path.join(__dirname, '..', '..', '..');
  const out = path.join(os.tmpdir(), `rsem-holders-${process.pid}.so`);
  const libfile = libraryPath();
  execFileSync('cc', ['-shared', '-fPIC', '-O1', '-I', path.join(dir, 'include'),
    path.join(__dirname, 'holders.c'), libfile, `-Wl,-rpath,${path.dirname(libfile)}`,
    '-pthread', '-o', out]);
  const h = koffi.load(out);
  const start = h.func('int holders_start(void *sem, int threads, int rounds)');
  const join = h.func('long holders_join(void)');
  const enter = h.func('long holders_enter(void)');
  const leave = h.func('void holders_leave(void)');
  const worst = h.func('long holders_worst(void)');

  const s = new Semaphore(2);
  assert.strictEqual(start(s.handle, 3, 2000), 0);
  let waited = 0;
  for (let i = 0; i < 2000; i++) {
    const p = s.acquire();
    if (s.waiters > 0) waited++;
    assert.strictEqual(await p, true);
    enter();
    await tick();
    leave();
    s.release();
  }
  const done = await new Promise((resolve, reject) =>
    join.async((err, n) => (err ? reject(err) : resolve(n))));
  assert.strictEqual(Number(done), 3 * 2000);
  assert.ok(worst() <= 2, `at most 2 inside, saw ${worst()}`);
  assert.ok(waited > 0, 'JavaScript never had to wait: the test proves nothing');
  assert.strictEqual(s.value, 2);
  assert.strictEqual(s.waiters, 0);
  s.close();
});
