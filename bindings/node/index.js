'use strict';
// rsem for Node.js: a counting semaphore whose acquire() returns a Promise
// and never blocks the event loop, over rsem's C ABI through koffi (no
// native addon to build). Waiting JavaScript and native threads (C code
// using the same library) share one semaphore and one queue.
//
// How it waits without a thread: every pending acquire is an rsem async
// acquire (sem_acquire_notify) with a ticket in memory this module owns;
// completions land on one rsem notifier per process, whose eventfd a
// worker thread polls (koffi's async call of libc's poll) only while
// acquires are pending, so an idle program exits as usual. A release made
// on the JavaScript thread resolves the waiters it serves at once
// (sem_notifier_quiet + drain: no system call, no extra turn of the loop).

const koffi = require('koffi');
const fs = require('fs');
const path = require('path');

/** Status codes of the C API (include/rsem.h), with their fixed values. */
const SEM = Object.freeze({
  OK: 0, TIMEDOUT: 1, PENDING: 2, CANCELLED: 3,
  EINVAL: -1, EOVERFLOW: -2, ECLOSED: -3, EBUSY: -4, ENOTPENDING: -5, ENOMEM: -6,
  FIFO: 1,
  COUNT_MAX: (1n << 60n) - 1n,
});

/** The library to load: $RSEM_LIBRARY, else this checkout's release or
 * debug build, else the installed librsem.so.0. */
function libraryPath() {
  if (process.env.RSEM_LIBRARY) return process.env.RSEM_LIBRARY;
  const root = path.join(__dirname, '..', '..', 'target');
  const names = { win32: 'rsem.dll', darwin: 'librsem.dylib' };
  const file = names[process.platform] || 'librsem.so';
  for (const dir of ['release', 'debug']) {
    const p = path.join(root, dir, file);
    if (fs.existsSync(p)) return p;
  }
  return process.platform === 'linux' ? 'librsem.so.0' : file;
}

const lib = koffi.load(libraryPath());
koffi.opaque('rsem_semaphore');
koffi.opaque('rsem_notifier');
const Ticket = koffi.struct('rsem_ticket', { rsem_private: koffi.array('uint64_t', 16) });
const Completion = koffi.struct('rsem_completion', { ticket: 'void *', ctx: 'void *', status: 'int' });

const c = {
  new_ex: lib.func('rsem_semaphore *sem_new_ex(int64_t value, int64_t max, uint32_t flags)'),
  free: lib.func('void sem_free(rsem_semaphore *sem)'),
  try_acquire_many: lib.func('int sem_acquire_many(rsem_semaphore *sem, int64_t n, double timeout)'),
  release_n: lib.func('int sem_release_n(rsem_semaphore *sem, int64_t n)'),
  value: lib.func('int64_t sem_value(rsem_semaphore *sem)'),
  max: lib.func('int64_t sem_max(rsem_semaphore *sem)'),
  waiters: lib.func('int64_t sem_waiters(rsem_semaphore *sem)'),
  shutdown: lib.func('int sem_shutdown(rsem_semaphore *sem)'),
  clock_ns: lib.func('int64_t sem_clock_ns(void)'),
  acquire_notify: lib.func('int sem_acquire_notify(rsem_semaphore *sem, int64_t n, int64_t deadline_ns, rsem_notifier *nt, void *ctx, rsem_ticket *ticket)'),
  cancel: lib.func('int sem_cancel(rsem_semaphore *sem, rsem_ticket *ticket)'),
  notifier_new: lib.func('rsem_notifier *sem_notifier_new(void)'),
  notifier_fd: lib.func('int sem_notifier_fd(rsem_notifier *nt)'),
  notifier_drain: lib.func('int64_t sem_notifier_drain(rsem_notifier *nt, _Out_ rsem_completion *out, int64_t capacity)'),
  notifier_quiet: lib.func('int sem_notifier_quiet(rsem_notifier *nt, int quiet)'),
};

const PollFd = koffi.struct('rsem_pollfd', { fd: 'int', events: 'short', revents: 'short' });
const libc = koffi.load(process.platform === 'linux' ? 'libc.so.6' : null);
const poll = libc.func('int poll(_Inout_ rsem_pollfd *fds, unsigned long nfds, int timeout)');
const POLLIN = 1;
const FOREVER = (1n << 63n) - 1n;

/** Thrown by acquires on a semaphore that was shut down. */
class ClosedError extends Error {
  constructor() { super('semaphore was shut down'); this.name = 'ClosedError'; }
}

// The process's notifier and the acquires pending on it, by ticket address.
let notifier = null;
const pending = new Map();
let polling = false;

function theNotifier() {
  if (notifier === null) {
    notifier = c.notifier_new();
    if (!notifier) throw new Error('rsem: sem_notifier_new failed');
  }
  return notifier;
}

/** Settles every completion waiting on the notifier. */
function drain() {
  if (notifier === null) return;
  const out = {};
  while (c.notifier_drain(notifier, out, 1) === 1) {
    const key = koffi.address(out.ticket);
    const w = pending.get(key);
    pending.delete(key);
    w.settle(out.status);
  }
}

/** Polls the notifier's descriptor on a worker thread while acquires are
 * pending (so nothing keeps the process alive once none is). */
function watch() {
  if (polling || pending.size === 0) return;
  polling = true;
  const pfd = { fd: c.notifier_fd(notifier), events: POLLIN, revents: 0 };
  poll.async(pfd, 1, 200, () => {
    polling = false;
    drain();
    watch();
  });
}

function count(n, what) {
  if (typeof n !== 'number' && typeof n !== 'bigint') throw new TypeError(`${what} must be a number`);
  if (typeof n === 'number' && !Number.isSafeInteger(n)) throw new RangeError(`${what} must be an integer`);
  if (n < 1) throw new RangeError(`${what} must be one or more`);
  return n;
}

class Semaphore {
  /**
   * @param {number} value initial permits (as Python's Semaphore(value))
   * @param {{max?: number|bigint, fifo?: boolean}} options `max`: refuse
   *   releases past it (a bounded semaphore); `fifo`: serve waiters strictly
   *   in arrival order.
   */
  constructor(value = 1, { max = SEM.COUNT_MAX, fifo = false } = {}) {
    this._sem = c.new_ex(value, max, fifo ? SEM.FIFO : 0);
    if (!this._sem) throw new RangeError('rsem: 0 <= value <= max <= 2^60 - 1 is required');
  }

  /** Takes n permits if they are free now; never waits. */
  tryAcquire(n = 1) {
    const s = c.try_acquire_many(this._live(), count(n, 'n'), 0);
    if (s === SEM.ECLOSED) throw new ClosedError();
    if (s === SEM.EINVAL) throw new RangeError('n is larger than the maximum');
    return s === SEM.OK;
  }

  /**
   * Takes n permits without blocking the event loop. Resolves true once
   * they are the caller's, false if `timeout` ms passed first; rejects with
   * ClosedError after shutdown(), or with the signal's reason if `signal`
   * aborts first (then nothing was taken).
   * @param {number} n
   * @param {{timeout?: number, signal?: AbortSignal}} options
   */
  acquire(n = 1, { timeout, signal } = {}) {
    const sem = this._live();
    count(n, 'n');
    if (signal && signal.aborted) return Promise.reject(signal.reason);
    let deadline = FOREVER;
    if (timeout !== undefined && timeout !== null) {
      if (Number.isNaN(timeout)) throw new RangeError('timeout must not be NaN');
      const ns = Number(c.clock_ns()) + Math.max(0, timeout) * 1e6;
      deadline = ns >= 9.2e18 ? FOREVER : BigInt(Math.ceil(ns));
    }
    const ticket = koffi.alloc(Ticket, 1);
    const status = c.acquire_notify(sem, n, deadline, theNotifier(), null, ticket);
    if (status !== SEM.PENDING) {
      koffi.free(ticket);
      if (status === SEM.OK) return Promise.resolve(true);
      if (status === SEM.TIMEDOUT) return Promise.resolve(false);
      if (status === SEM.ECLOSED) return Promise.reject(new ClosedError());
      if (status === SEM.EINVAL) return Promise.reject(new RangeError('n is larger than the maximum'));
      return Promise.reject(new Error(`rsem: status ${status}`));
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => c.cancel(sem, ticket); // its completion settles
      const w = {
        settle: (st) => {
          koffi.free(ticket);
          if (signal) signal.removeEventListener('abort', onAbort);
          if (st === SEM.OK) resolve(true);
          else if (st === SEM.TIMEDOUT) resolve(false);
          else if (st === SEM.ECLOSED) reject(new ClosedError());
          else reject(signal && signal.aborted ? signal.reason : new Error('acquire cancelled'));
        },
      };
      pending.set(koffi.address(ticket), w);
      if (signal) signal.addEventListener('abort', onAbort, { once: true });
      watch();
    });
  }

  /** Returns n permits; waiters of this thread that they serve are resolved
   * at once. Throws RangeError past the maximum (nothing released). */
  release(n = 1) {
    const sem = this._live();
    count(n, 'n');
    let s;
    if (notifier !== null && pending.size > 0) {
      c.notifier_quiet(notifier, 1);
      s = c.release_n(sem, n);
      c.notifier_quiet(notifier, 0);
      drain();
    } else {
      s = c.release_n(sem, n);
    }
    if (s === SEM.EOVERFLOW) throw new RangeError('semaphore released too many times');
  }

  /** Every waiting and later acquire fails with ClosedError. */
  shutdown() { c.shutdown(this._live()); drain(); }

  get value() { return Number(c.value(this._live())); }
  get waiters() { return Number(c.waiters(this._live())); }
  /** The maximum (a BigInt when above Number.MAX_SAFE_INTEGER). */
  get max() { return c.max(this._live()); }
  /** The C handle (an rsem_semaphore *), for native code sharing it. */
  get handle() { return this._live(); }

  /** Frees the semaphore; pending acquires end with ClosedError first. */
  close() {
    if (this._sem) {
      c.free(this._sem);
      this._sem = null;
      drain();
    }
  }

  _live() {
    if (!this._sem) throw new Error('semaphore is closed');
    return this._sem;
  }
}

module.exports = { Semaphore, ClosedError, SEM, libraryPath };
