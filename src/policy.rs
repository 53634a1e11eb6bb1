//! The wait-queue policy: which queued waiters a walk of the queue serves,
//! and how. Pure: it knows nothing of threads, atomics or parking; the state
//! machine in `semaphore.rs` feeds it one waiter at a time (under the queue's
//! lock), carries out its decisions, and stores the flags it returns.
//!
//! # Rules
//!
//! A walk visits the queued waiters in arrival order with the free `count`
//! (after the walk's own release was added) and a `budget`: the count minus
//! the permits already promised to woken threads that have not run yet.
//!
//! FIFO mode: the head is *handed* its permits (taken from the count on its
//! behalf) while they fit; the first one that does not fit stops the walk and
//! holds everyone back (`HANDOFF`) until it is served or leaves.
//!
//! Default mode:
//! - A waiter that fits in the budget is *woken* and promised its permits;
//!   it then competes for them with running threads (throughput).
//! - A waiter that was overtaken (`passed_over`) and whose `fair_at` has come
//!   is *starving*. When a fairness handoff is due (at most one per
//!   `fair_interval`), a starving waiter that fits is handed its permits;
//!   one that does not fit is *held for*: it becomes the held waiter, the walk
//!   stops handing out permits to anyone behind it, and `HANDOFF` makes
//!   running threads stop taking them, so that releases accumulate permits
//!   for it.
//! - While a hold lasts, a walk hands permits (strictly, in arrival order)
//!   to the waiters ahead of the held one that fit, then to the held one if
//!   it fits, which ends the hold. Behind the held waiter nobody is served.
//! - A hold is bounded: it lapses once `hold_for << lapses` has passed
//!   without a release (each release during the hold restarts that window).
//!   A waiter whose hold lapsed goes back to competing, and may be held for
//!   again only after `fair_after << (2 * lapses)`: a request that can never
//!   be met (3 permits when only 2 circulate) stalls the others for a
//!   shrinking share of the time, while one that can be met is held for
//!   longer each time until it is served.
//! - Someone must notice a lapse while everybody sleeps: while a hold holds
//!   waiters back and none of them sleeps with the hold's deadline (a
//!   *timekeeper*), the walk wakes the first waiter behind the held one as
//!   a timekeeper; it goes back to sleep until the hold's deadline. (Holds
//!   that never lapse, `hold_for == u64::MAX`, used by tests, need none.)
//!
//! Every walk ends with the queue flags: `HANDOFF` is set exactly when a
//! waiter is still queued and holds the others back by these rules.

/// The thresholds of the default mode's fairness, in nanoseconds.
/// (`repr(C)`: process-shared memory holds it; see `SHARED_LAYOUT`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Fairness {
    /// How long a waiter may be overtaken before it is starving.
    pub fair_after: u64,
    /// The least time between two fairness handoffs.
    pub fair_interval: u64,
    /// How long a hold lasts without a release before it lapses (doubled
    /// with each lapse of the same waiter). `u64::MAX`: never.
    pub hold_for: u64,
}

impl Fairness {
    /// The library's thresholds (see [`DEFAULT_FAIRNESS`]).
    pub fn library() -> Self {
        DEFAULT_FAIRNESS
    }
}

/// The library's thresholds: 1 ms, 1 ms, 1 ms (see the module docs).
#[cfg(not(loom))]
const DEFAULT_FAIRNESS: Fairness = Fairness {
    fair_after: 1_000_000,
    fair_interval: 1_000_000,
    hold_for: 1_000_000,
};
/// Loom models have no clock and must be deterministic: by default nobody
/// ever starves there; models that explore fairness give their own
/// thresholds (`Semaphore::with_fairness`).
#[cfg(loom)]
const DEFAULT_FAIRNESS: Fairness = Fairness {
    fair_after: u64::MAX,
    fair_interval: 0,
    hold_for: u64::MAX,
};

/// `base << shift`, saturating (shift capped at 20 doublings).
fn scaled(base: u64, shift: u32) -> u64 {
    base.saturating_mul(1u64 << shift.min(20))
}

/// What a walk knows about one queued waiter (read from its record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Waiter {
    /// Permits wanted.
    pub n: u64,
    /// It was overtaken at least once.
    pub passed_over: bool,
    /// When (ns) it may become starving, once passed over.
    pub fair_at: u64,
    /// It is the held waiter.
    pub held: bool,
    /// How many of its holds lapsed.
    pub lapses: u32,
    /// It sleeps with the hold's deadline (a timekeeper).
    pub keeps_time: bool,
    /// It cannot compete for permits (an async waiter: no thread runs for
    /// it): it is only ever *handed* its permits, never woken with a
    /// promise, and never made a timekeeper.
    pub handoff_only: bool,
}

/// What to do with the waiter just visited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Take its permits from the count for it, then wake it: it owns them.
    Hand,
    /// Promise it its permits and wake it to compete for them.
    Wake,
    /// Wake it as the hold's timekeeper (no permits for it).
    Watch,
    /// Leave it queued and visit the next one.
    Skip,
    /// Leave it and everyone behind it queued.
    Stop,
}

/// Changes to the visited waiter's record that go with a verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    /// Set `passed_over`.
    pub passed_over: bool,
    /// Make it the held waiter.
    pub hold: bool,
    /// Its hold ended (served or lapsed): clear `held`.
    pub unhold: bool,
    /// Its hold lapsed: count it, and move `fair_at` to this time.
    pub lapse_until: Option<u64>,
}

/// A decision on one waiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub verdict: Verdict,
    pub mark: Mark,
}

impl Decision {
    fn plain(verdict: Verdict) -> Self {
        Decision {
            verdict,
            mark: Mark::default(),
        }
    }
}

/// Why a walk happens. Only a release changes anything (it restarts the
/// hold's window); the others are there so tests and readers see the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A release of this many permits (0 < n).
    Release(u64),
    /// A waiter left the queue (timed out) while others may wait behind it.
    Leave,
    /// A woken waiter lost its promised permits to a running thread.
    Lost,
    /// A timekeeper's hold deadline passed.
    HoldTimer,
}

/// The semaphore-wide inputs of a walk, read under the queue's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Start {
    pub fifo: bool,
    pub fairness: Fairness,
    pub entry: Entry,
    /// Now, in ns on the clock of every other time here.
    pub now: u64,
    /// Free permits, the walk's release included.
    pub count: u64,
    /// Permits promised to woken threads that have not run yet.
    pub promised: u64,
    /// `HANDOFF` was set when the walk began.
    pub handoff: bool,
    /// The current hold's deadline (meaningful while `handoff`, default mode).
    pub hold_until: u64,
    /// The earliest time of the next fairness handoff.
    pub next_fair: u64,
    /// How many queued waiters sleep with the hold's deadline.
    pub timekeepers: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No hold in force: wake what fits, hand to the starving.
    Open,
    /// A hold is in force and the held waiter was not reached yet.
    BeforeHeld,
    /// Stopped at the held waiter; looking for a timekeeper behind it.
    FindKeeper,
    /// Done: nobody else is served.
    Done,
}

/// One walk of the queue.
#[derive(Clone, Debug)]
pub(crate) struct Walk {
    start: Start,
    phase: Phase,
    /// Permits not yet promised or handed, for waking.
    budget: u64,
    /// A fairness handoff may happen in this walk.
    fair_due: bool,
    /// Set when this walk made a fairness handoff.
    fair_used: bool,
    /// The hold in force when the walk ends, with its deadline.
    hold: Option<u64>,
    /// Timekeepers still queued (the walk's wake-ups take some away).
    timekeepers: u64,
}

/// What a walk leaves behind (stored under the lock by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Finish {
    /// The new value of `HANDOFF`.
    pub handoff: bool,
    /// The new deadline of the hold (when `handoff` in the default mode).
    pub hold_until: u64,
    /// The new earliest time of the next fairness handoff.
    pub next_fair: u64,
}

impl Walk {
    /// Starts a walk.
    pub fn new(start: Start) -> Self {
        let holding = !start.fifo && start.handoff;
        Walk {
            start,
            phase: if holding {
                Phase::BeforeHeld
            } else {
                Phase::Open
            },
            budget: start.count.saturating_sub(start.promised),
            fair_due: !start.fifo && (holding || start.now >= start.next_fair),
            fair_used: false,
            hold: holding.then_some(start.hold_until),
            timekeepers: start.timekeepers,
        }
    }

    /// Decides on the next waiter in arrival order, given the free count
    /// right now (running threads may have taken some since the last
    /// visit). Does not change the walk: call [`Walk::commit`] once the
    /// decision was carried out (a `Hand` that finds the count gone is
    /// decided again with the new count instead).
    pub fn decide(&self, w: &Waiter, count: u64) -> Decision {
        let now = self.start.now;
        if self.start.fifo {
            return Decision::plain(if w.n <= count {
                Verdict::Hand
            } else {
                Verdict::Stop
            });
        }
        match self.phase {
            Phase::Done => Decision::plain(Verdict::Stop),
            // An async waiter has no thread to keep time with: look on.
            Phase::FindKeeper if w.handoff_only => Decision::plain(Verdict::Skip),
            Phase::FindKeeper => Decision::plain(Verdict::Watch),
            Phase::BeforeHeld if !w.held => Decision::plain(if w.n <= count {
                Verdict::Hand
            } else {
                Verdict::Skip
            }),
            Phase::BeforeHeld => {
                let mut mark = Mark::default();
                if w.n <= count {
                    mark.unhold = true;
                    return Decision {
                        verdict: Verdict::Hand,
                        mark,
                    };
                }
                if now < self.start.hold_until {
                    // Still held for.
                    return Decision {
                        verdict: self.after_hold(),
                        mark,
                    };
                }
                // The hold lapsed: back to competing, and a longer pause
                // before it may be held for again.
                mark.unhold = true;
                mark.lapse_until = Some(
                    now.saturating_add(scaled(self.start.fairness.fair_after, 2 * (w.lapses + 1))),
                );
                mark.passed_over = true;
                Decision {
                    verdict: self.open_verdict_for_misfit(),
                    mark,
                }
            }
            Phase::Open => {
                if self.starving(w) {
                    if w.n <= count {
                        return Decision::plain(Verdict::Hand);
                    }
                    return Decision {
                        verdict: self.after_hold(),
                        mark: Mark {
                            hold: true,
                            passed_over: true,
                            ..Mark::default()
                        },
                    };
                }
                if w.n <= self.budget && !w.handoff_only {
                    return Decision::plain(Verdict::Wake);
                }
                // An async waiter cannot compete: hand it the permits, if
                // they are still there (a running thread may have taken
                // them since the walk began: then it was overtaken, and
                // deciding `Hand` again would retry for ever).
                if w.n <= self.budget && w.n <= count {
                    return Decision::plain(Verdict::Hand);
                }
                Decision {
                    verdict: self.open_verdict_for_misfit(),
                    mark: Mark {
                        passed_over: true,
                        ..Mark::default()
                    },
                }
            }
        }
    }

    /// Whether `w` is starving: overtaken, past its `fair_at`, and a
    /// fairness handoff is due.
    fn starving(&self, w: &Waiter) -> bool {
        self.fair_due && w.passed_over && self.start.now >= w.fair_at
    }

    /// A waiter that does not fit in the open phase: the walk goes on only
    /// while permits are left for someone smaller behind it.
    fn open_verdict_for_misfit(&self) -> Verdict {
        if self.budget == 0 {
            Verdict::Stop
        } else {
            Verdict::Skip
        }
    }

    /// At the held waiter, which stays held: look for a timekeeper behind
    /// it unless one already sleeps.
    fn after_hold(&self) -> Verdict {
        if self.timekeepers > 0 || self.start.fairness.hold_for == u64::MAX {
            Verdict::Stop
        } else {
            Verdict::Skip
        }
    }

    /// Records that `decision` on `w` was carried out.
    pub fn commit(&mut self, w: &Waiter, decision: &Decision) {
        let now = self.start.now;
        let woken = matches!(
            decision.verdict,
            Verdict::Hand | Verdict::Wake | Verdict::Watch
        );
        if woken && w.keeps_time {
            self.timekeepers = self.timekeepers.saturating_sub(1);
        }
        match decision.verdict {
            Verdict::Hand => {
                self.budget = self.budget.saturating_sub(w.n);
                if self.start.fifo {
                    return;
                }
                let fairness = match self.phase {
                    Phase::BeforeHeld => w.held,
                    // Handing to an async waiter that fits is how it is
                    // served, not a fairness handoff, unless it is starving.
                    Phase::Open => !w.handoff_only || self.starving(w),
                    _ => false,
                };
                if fairness {
                    // A fairness handoff (starving, or the held waiter).
                    self.fair_used = true;
                    self.fair_due = false;
                    self.hold = None;
                    self.phase = Phase::Open;
                }
            }
            Verdict::Wake => self.budget -= w.n,
            Verdict::Watch => self.phase = Phase::Done,
            Verdict::Skip | Verdict::Stop => {
                let at_held = self.phase == Phase::BeforeHeld && w.held;
                if at_held && decision.mark.unhold {
                    // The hold lapsed: the walk goes on as if there was none.
                    self.hold = None;
                    self.phase = Phase::Open;
                } else if decision.mark.hold || at_held {
                    // A hold starts here, or goes on here; a release during
                    // a hold restarts its window.
                    let restart =
                        decision.mark.hold || matches!(self.start.entry, Entry::Release(_));
                    if restart {
                        let window = scaled(self.start.fairness.hold_for, w.lapses);
                        self.hold = Some(now.saturating_add(window));
                    }
                    self.phase = if decision.verdict == Verdict::Skip {
                        Phase::FindKeeper
                    } else {
                        Phase::Done
                    };
                }
            }
        }
    }

    /// Ends the walk. `more` says whether any waiter is still queued.
    pub fn finish(&self, more: bool) -> Finish {
        let next_fair = if self.fair_used {
            self.start
                .now
                .saturating_add(self.start.fairness.fair_interval)
        } else {
            self.start.next_fair
        };
        // A hold whose waiter was never met is over (see `lost_hold`).
        let hold = self.hold.filter(|_| !self.lost_hold());
        let handoff = more && (self.start.fifo || hold.is_some());
        Finish {
            handoff,
            hold_until: if handoff && !self.start.fifo {
                hold.unwrap_or(0)
            } else {
                0
            },
            next_fair,
        }
    }

    /// Whether the walk ended believing in a hold whose held waiter it
    /// never met (`finish` then clears `HANDOFF`). The state machine never
    /// lets that happen (a held waiter's leaving ends its hold) and asserts
    /// it in debug builds.
    pub fn lost_hold(&self) -> bool {
        self.phase == Phase::BeforeHeld
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    const NOW: u64 = 1_000_000_000;
    const F: Fairness = Fairness {
        fair_after: 1_000,
        fair_interval: 1_000,
        hold_for: 1_000,
    };

    fn start(fifo: bool, entry: Entry, count: u64) -> Start {
        Start {
            fifo,
            fairness: F,
            entry,
            now: NOW,
            count,
            promised: 0,
            handoff: false,
            hold_until: 0,
            next_fair: 0,
            timekeepers: 0,
        }
    }

    /// A waiter for `n`; `starving`: overtaken long enough ago.
    fn w(n: u64, starving: bool) -> Waiter {
        Waiter {
            n,
            passed_over: starving,
            fair_at: if starving { NOW - 1 } else { NOW + 1 },
            held: false,
            lapses: 0,
            keeps_time: false,
            handoff_only: false,
        }
    }

    fn held(n: u64) -> Waiter {
        Waiter {
            held: true,
            ..w(n, true)
        }
    }

    /// Runs a walk over `queue` as the state machine does (the count only
    /// changes by hand-overs); returns the verdicts up to the stop, the
    /// marks, and the finish.
    fn run(st: Start, queue: &[Waiter]) -> (Vec<Verdict>, Vec<Mark>, Finish, bool) {
        let mut walk = Walk::new(st);
        let mut count = st.count;
        let (mut verdicts, mut marks) = (Vec::new(), Vec::new());
        let mut left = 0;
        for (i, waiter) in queue.iter().enumerate() {
            let d = walk.decide(waiter, count);
            walk.commit(waiter, &d);
            verdicts.push(d.verdict);
            marks.push(d.mark);
            if d.verdict == Hand {
                count -= waiter.n;
            }
            if matches!(d.verdict, Skip | Stop) {
                left += 1;
            }
            if d.verdict == Stop {
                left += queue.len() - i - 1;
                break;
            }
        }
        (verdicts, marks, walk.finish(left > 0), walk.lost_hold())
    }

    #[test]
    fn table() {
        let rel = Entry::Release(1);
        let holding = |count, hold_until| Start {
            handoff: true,
            hold_until,
            ..start(false, rel, count)
        };
        // (what, start, queue, verdicts, HANDOFF after)
        type Row = (&'static str, Start, Vec<Waiter>, Vec<Verdict>, bool);
        let rows: Vec<Row> = vec![
            (
                "fifo: heads that fit are handed",
                start(true, rel, 3),
                vec![w(1, false), w(2, false)],
                vec![Hand, Hand],
                false,
            ),
            (
                "fifo: a head that does not fit holds all",
                start(true, rel, 2),
                vec![w(1, false), w(3, false), w(1, false)],
                vec![Hand, Stop],
                true,
            ),
            (
                "fifo: a timeout walk serves the new head",
                start(true, Entry::Leave, 1),
                vec![w(1, false)],
                vec![Hand],
                false,
            ),
            (
                "default: fits are woken, misfits skipped",
                start(false, rel, 2),
                vec![w(3, false), w(1, false), w(1, false), w(1, false)],
                vec![Skip, Wake, Wake, Stop],
                false,
            ),
            (
                "default: budget counts promises",
                Start {
                    promised: 2,
                    ..start(false, rel, 2)
                },
                vec![w(1, false)],
                vec![Stop],
                false,
            ),
            (
                "default: starving and fits: handed",
                start(false, rel, 2),
                vec![w(2, true), w(1, false)],
                vec![Hand, Stop],
                false,
            ),
            (
                "default: starving, fairness not due: competes",
                Start {
                    next_fair: NOW + 1,
                    ..start(false, rel, 2)
                },
                vec![w(2, true), w(3, true)],
                vec![Wake, Stop],
                false,
            ),
            (
                "default: starving misfit: hold, wake a timekeeper",
                start(false, rel, 2),
                vec![w(3, true), w(1, false), w(1, false)],
                vec![Skip, Watch, Stop],
                true,
            ),
            (
                "default: hold with a timekeeper queued: stop",
                Start {
                    timekeepers: 1,
                    ..start(false, rel, 2)
                },
                vec![w(3, true), w(1, false)],
                vec![Stop],
                true,
            ),
            (
                "default: hold, last in queue: nobody to wake",
                start(false, Entry::Lost, 2),
                vec![w(3, true)],
                vec![Skip],
                true,
            ),
            (
                "hold: held fits: handed, the walk goes on past misfits (issue 11)",
                holding(5, NOW + 1),
                vec![held(3), w(3, false), w(1, false)],
                vec![Hand, Skip, Wake],
                false,
            ),
            (
                "hold: ahead of the held, fits are handed, misfits skipped",
                Start {
                    timekeepers: 1,
                    ..holding(2, NOW + 1)
                },
                vec![w(1, false), w(4, false), held(3), w(1, false)],
                vec![Hand, Skip, Stop],
                true,
            ),
            (
                "hold: held misfit, not lapsed",
                Start {
                    timekeepers: 1,
                    ..holding(2, NOW + 1)
                },
                vec![held(3), w(1, false)],
                vec![Stop],
                true,
            ),
            (
                "hold: lapsed: back to the open walk",
                holding(2, NOW),
                vec![held(3), w(5, false), w(1, false)],
                vec![Skip, Skip, Wake],
                false,
            ),
            (
                "hold: the held waiter left: lost hold",
                holding(2, NOW + 1),
                vec![w(5, false), w(1, false)],
                vec![Skip, Hand],
                false,
            ),
            (
                "hold: timer walk, not lapsed: keeps holding",
                Start {
                    entry: Entry::HoldTimer,
                    timekeepers: 1,
                    ..holding(2, NOW + 1)
                },
                vec![held(3), w(1, false)],
                vec![Stop],
                true,
            ),
        ];
        for (what, st, queue, verdicts, handoff) in rows {
            let (got, _, finish, _) = run(st, &queue);
            assert_eq!(got, verdicts, "{what}");
            assert_eq!(finish.handoff, handoff, "{what}: HANDOFF");
        }
    }

    #[test]
    fn fairness_handoffs_are_rate_limited_and_holds_timed() {
        let (_, _, f, _) = run(
            start(false, Entry::Release(1), 2),
            &[w(2, true), w(5, false)],
        );
        assert_eq!(f.next_fair, NOW + F.fair_interval);
        // A new hold lasts hold_for; a release during it restarts it; a
        // timeout walk leaves it as it is.
        let (_, m, f, _) = run(
            start(false, Entry::Release(1), 2),
            &[w(3, true), w(1, false)],
        );
        assert!(m[0].hold && m[0].passed_over);
        assert_eq!(f.hold_until, NOW + F.hold_for);
        let holding = |entry| Start {
            entry,
            handoff: true,
            hold_until: NOW + 5,
            timekeepers: 1,
            ..start(false, entry, 2)
        };
        let (_, _, f, _) = run(holding(Entry::Release(1)), &[held(3)]);
        assert_eq!(f.hold_until, NOW + F.hold_for);
        let (_, _, f, _) = run(holding(Entry::Leave), &[held(3), w(1, false)]);
        assert_eq!(f.hold_until, NOW + 5);
        // The held waiter's lapses lengthen its next hold window.
        let (_, _, f, _) = run(
            start(false, Entry::Release(1), 2),
            &[Waiter {
                lapses: 2,
                ..w(3, true)
            }],
        );
        assert_eq!(f.hold_until, NOW + 4 * F.hold_for);
    }

    #[test]
    fn a_lapse_pushes_the_waiters_fairness_back_further_each_time() {
        let st = Start {
            handoff: true,
            hold_until: NOW,
            ..start(false, Entry::HoldTimer, 2)
        };
        let (_, m, f, lost) = run(st, &[held(3)]);
        assert!(m[0].unhold);
        assert_eq!(m[0].lapse_until, Some(NOW + 4 * F.fair_after));
        assert!(!f.handoff && !lost);
        let (_, m, _, _) = run(
            st,
            &[Waiter {
                lapses: 1,
                ..held(3)
            }],
        );
        assert_eq!(m[0].lapse_until, Some(NOW + 16 * F.fair_after));
    }

    #[test]
    fn a_hold_whose_waiter_left_is_reported_lost() {
        let st = Start {
            handoff: true,
            hold_until: NOW + 1,
            ..start(false, Entry::Leave, 2)
        };
        let (_, _, _, lost) = run(st, &[w(3, false)]);
        assert!(lost);
        let (_, _, _, lost) = run(st, &[held(3)]);
        assert!(!lost);
    }

    #[test]
    fn entries_other_than_a_release_behave_alike() {
        for entry in [Entry::Leave, Entry::Lost, Entry::HoldTimer] {
            for (count, queue) in [
                (2, vec![w(3, false), w(1, false)]),
                (2, vec![w(3, true), w(1, false)]),
            ] {
                let a = run(start(false, entry, count), &queue);
                let b = run(start(false, Entry::Leave, count), &queue);
                assert_eq!((a.0, a.2), (b.0, b.2), "{entry:?}");
            }
        }
    }

    /// An async waiter (handoff only) for `n`.
    fn a(n: u64, starving: bool) -> Waiter {
        Waiter {
            handoff_only: true,
            ..w(n, starving)
        }
    }

    #[test]
    fn async_waiters_are_handed_what_threads_would_be_promised() {
        let rel = Entry::Release(1);
        // Threads and async waiters in one queue, default mode: each fitting
        // thread is woken with a promise, each fitting async waiter handed
        // its permits, both out of the same budget and in arrival order.
        let (v, _, f, _) = run(
            start(false, rel, 3),
            &[w(1, false), a(1, false), a(2, false), w(1, false)],
        );
        assert_eq!(v, vec![Wake, Hand, Skip, Wake]);
        assert!(!f.handoff);
        // Promises to woken threads are not the async waiter's to take.
        let (v, _, _, _) = run(
            Start {
                promised: 1,
                ..start(false, rel, 1)
            },
            &[a(1, false)],
        );
        assert_eq!(v, vec![Stop]);
        // A plain hand-over to an async waiter is no fairness handoff: the
        // starving waiter behind it is still served in the same walk.
        let (v, _, f, _) = run(start(false, rel, 3), &[a(1, false), w(2, true)]);
        assert_eq!(v, vec![Hand, Hand]);
        assert_eq!(f.next_fair, NOW + F.fair_after);
        // FIFO: the same head-of-line rule for both kinds.
        let (v, _, f, _) = run(start(true, rel, 2), &[a(3, false), w(1, false)]);
        assert_eq!(v, vec![Stop]);
        assert!(f.handoff);
    }

    #[test]
    fn an_async_hand_is_decided_on_the_count_not_the_budget() {
        // Review finding: the walk began with 1 free permit and a running
        // thread took it; `walk` decides again on the new count after a
        // failed hand-over, and must not say `Hand` again (it would retry
        // for ever, holding the queue lock).
        let walk = Walk::new(start(false, Entry::Release(1), 1));
        let d = walk.decide(&a(1, false), 0);
        assert_ne!(d.verdict, Hand);
        assert!(d.mark.passed_over);
    }

    #[test]
    fn an_async_waiter_is_never_made_a_timekeeper() {
        // A hold for a starving thread: the walk looks behind it for a
        // thread to keep the hold's time, passing over async waiters.
        let st = start(false, Entry::Release(1), 2);
        let (v, _, f, _) = run(st, &[w(3, true), a(1, false), w(1, false)]);
        assert_eq!(v, vec![Skip, Skip, Watch]);
        assert!(f.handoff);
        // Starving async waiters are held for like threads.
        let (v, m, f, _) = run(st, &[a(3, true), a(1, false)]);
        assert_eq!(v, vec![Skip, Skip]);
        assert!(m[0].hold && f.handoff);
    }
}
