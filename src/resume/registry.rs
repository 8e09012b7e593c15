//! [`Registry`]: the sessions of one [`Sessions`](super::Sessions) by id, their tokens and
//! mailboxes, the count of parked ones, and the decision on a `hello` (PROTOCOL.md,
//! section 4), taken under one lock so that sockets racing for one session are ordered.

use std::any::Any;
use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::task::ArcWake;

use super::Resume;
use super::budget::{Budget, Share};
use super::token::{Secret, SessionId, Tokens};
use super::wire::Hello;
use crate::halves::Halves;
use crate::handle::Following;
use crate::heartbeat::Heartbeat;
use crate::layer::HeartbeatLayer;
use crate::sync::{AtomicBool, Mutex, lock};
use crate::wake::Shared;

/// What the sessions of one layer share: the settings, the live and parked sessions by id,
/// the count of parked ones, and the memory budget.
pub(crate) struct Registry {
    pub(crate) layer: HeartbeatLayer,
    pub(crate) resume: Resume,
    map: Mutex<HashMap<SessionId, Entry>>,
    parked: AtomicUsize,
    /// The sessions' metrics (feature `metrics`), registered with the first session.
    #[cfg(feature = "metrics")]
    metrics: std::sync::OnceLock<crate::metrics::SessionMetrics>,
    pub(crate) budget: Budget,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

/// One session as the registry knows it.
struct Entry {
    tokens: Tokens,
    /// The session's [`Mailbox`], its socket type erased (`Sessions` serves any): a socket
    /// of another type cannot resume it.
    mailbox: Arc<dyn Any + Send + Sync>,
}

/// What a session shares with the registry and `accept`: where a resuming socket waits to be
/// adopted (only the session's owner may touch its sockets and accounts), the wakers of the
/// handler's halves, and what its handles show.
pub(crate) struct Mailbox<S> {
    pub(crate) handoff: Handoff<Handover<S>>,
    /// The handler's reading and writing halves (one task, or two after a `split`). The
    /// mailbox is itself a waker that wakes both, with which the session polls its socket
    /// and its window. (Here rather than in an `Arc` of their own: a parked session holds
    /// one allocation fewer.)
    pub(crate) halves: Halves,
    /// The socket the session is on, for its handles.
    pub(crate) following: Following,
}

impl<S: Send + 'static> ArcWake for Mailbox<S> {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.halves.wake_both();
    }
}

/// A socket that resumed a session.
pub(crate) struct Handover<S> {
    pub(crate) ws: Pin<Box<Heartbeat<S>>>,
    pub(crate) token: Secret,
    /// The client's received count, from its `hello`.
    pub(crate) peer_received: u64,
}

impl<S> Mailbox<S> {
    /// The mailbox of a session on the socket whose hub is `hub`.
    fn new(hub: &Arc<Shared>) -> Self {
        Self {
            handoff: Handoff::default(),
            halves: Halves::default(),
            following: Following::new(hub.clone()),
        }
    }
}

/// One slot through which one side hands a value to another, whose polls look at a flag
/// first: the one check a session makes per poll.
#[derive(Debug)]
pub(crate) struct Handoff<T> {
    /// Set when `slot` holds a value.
    full: AtomicBool,
    slot: Mutex<Option<T>>,
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Self {
            full: AtomicBool::new(false),
            slot: Mutex::new(None),
        }
    }
}

impl<T> Handoff<T> {
    /// Leaves `value`; one still waiting is replaced (the newest resume wins). The taker is
    /// to be woken after this.
    pub(crate) fn deliver(&self, value: T) {
        *lock(&self.slot) = Some(value);
        self.full.store(true, Ordering::Release);
    }

    /// Whether a value may wait: one atomic load.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    /// The value waiting, if any.
    pub(crate) fn take(&self) -> Option<T> {
        if !self.is_full() {
            return None;
        }
        self.full.store(false, Ordering::Relaxed);
        lock(&self.slot).take()
    }
}

/// The registry's answer to a `hello`.
pub(crate) enum Admission<S> {
    /// A new session, registered under `sid` with its mailbox and its share of the budget;
    /// the socket is the handler's.
    New {
        sid: SessionId,
        token: Secret,
        peer_buffer: u64,
        mailbox: Arc<Mailbox<S>>,
        share: Share,
        ws: Pin<Box<Heartbeat<S>>>,
    },
    /// The socket resumed a session and waits in its mailbox.
    Resumed,
}

/// Why the registry refused a `hello`.
pub(crate) enum Refusal {
    /// `hello new` with a session id in use with another secret.
    IdInUse,
    /// `hello resume` for a session not held, or with a token not valid.
    Lost,
    /// The OS's random source failed.
    Random(std::io::Error),
    /// `hello new`, and the memory budget has no room for another session.
    Busy,
}

impl Registry {
    pub(crate) fn new(layer: HeartbeatLayer, resume: Resume) -> Self {
        Self {
            layer,
            resume,
            map: Mutex::new(HashMap::new()),
            parked: AtomicUsize::new(0),
            budget: Budget::new(resume.memory_limit()),
            #[cfg(feature = "metrics")]
            metrics: std::sync::OnceLock::new(),
        }
    }

    /// The sessions' metrics (feature `metrics`), registered with the first session.
    #[cfg(feature = "metrics")]
    pub(crate) fn metrics(&self) -> &crate::metrics::SessionMetrics {
        (self.metrics)
            .get_or_init(|| crate::metrics::SessionMetrics::new(self.layer.settings().name()))
    }

    /// A socket resumed a session (feature `metrics`).
    pub(crate) fn count_resume(&self) {
        #[cfg(feature = "metrics")]
        {
            let metrics = self.metrics();
            metrics.resumes.increment(1);
        }
    }

    /// A session was lost for `reason` (feature `metrics`).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn count_lost(&self, reason: super::Reason) {
        #[cfg(feature = "metrics")]
        self.metrics().lost(reason.label());
    }

    /// The registry's decision on a `hello` that came on `ws`, under its lock, so that two
    /// sockets racing for one session are ordered, and a resume is delivered while the
    /// session is held: a session takes itself out of the registry under the same lock, and
    /// then answers whatever was delivered before ([`Session`](super::Session) ends so).
    /// A refusal hands the socket back, to be closed with its code.
    #[allow(clippy::type_complexity)]
    pub(crate) fn admit<S: Send + 'static>(
        &self,
        hello: Hello,
        ws: Pin<Box<Heartbeat<S>>>,
    ) -> Result<Admission<S>, (Refusal, Pin<Box<Heartbeat<S>>>)> {
        let mut map = lock(&self.map);
        let (sid, presented, peer_received, new) = match hello {
            Hello::New {
                sid,
                secret,
                buffer,
                ..
            } => {
                if let Slot::Vacant(vacant) = map.entry(sid) {
                    let Some(share) = self.budget.admit() else {
                        return Err((Refusal::Busy, ws));
                    };
                    let tokens = match Tokens::new(secret) {
                        Ok(tokens) => tokens,
                        Err(err) => {
                            self.budget.release(&mut { share });
                            return Err((Refusal::Random(err), ws));
                        }
                    };
                    let token = tokens.issued();
                    let mailbox = Arc::new(Mailbox::<S>::new(ws.shared()));
                    vacant.insert(Entry {
                        tokens,
                        mailbox: mailbox.clone(),
                    });
                    #[cfg(feature = "metrics")]
                    self.metrics().live.increment(1.0);
                    return Ok(Admission::New {
                        sid,
                        token,
                        peer_buffer: buffer,
                        mailbox,
                        share,
                        ws,
                    });
                }
                // The same start again (its welcome was lost): a resume from nothing.
                (sid, secret, 0, true)
            }
            Hello::Resume {
                sid,
                token,
                received,
                ..
            } => (sid, token, received, false),
        };
        let Some(entry) = map.get_mut(&sid) else {
            return Err((Refusal::Lost, ws));
        };
        if !entry.tokens.accepts(&presented) {
            let refusal = if new { Refusal::IdInUse } else { Refusal::Lost };
            return Err((refusal, ws));
        }
        let Ok(mailbox) = entry.mailbox.clone().downcast::<Mailbox<S>>() else {
            // Another socket type than the session's: it cannot take over.
            return Err((Refusal::Lost, ws));
        };
        let token = match entry.tokens.rotate(presented) {
            Ok(token) => token,
            Err(err) => return Err((Refusal::Random(err), ws)),
        };
        mailbox.handoff.deliver(Handover {
            ws,
            token,
            peer_received,
        });
        drop(map);
        mailbox.halves.wake_both();
        Ok(Admission::Resumed)
    }

    /// Sessions registered (live or parked, not yet closed).
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Sessions waiting for their client.
    pub(crate) fn parked(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }

    /// The session ended: its id and tokens stop being valid. A resume delivered before
    /// this is in its mailbox, none after.
    pub(crate) fn forget(&self, sid: &SessionId) {
        let mut map = lock(&self.map);
        map.remove(sid);
        #[cfg(feature = "metrics")]
        self.metrics().live.decrement(1.0);
        // After a peak the table gives its room back (amortised: only once it is a quarter
        // full, to half).
        if map.capacity() > 64 && map.len() * 4 < map.capacity() {
            let keep = map.len() * 2;
            map.shrink_to(keep);
        }
    }

    /// A session's socket went down: `false` if `max_parked` sessions wait already.
    pub(crate) fn try_park(&self) -> bool {
        let parked = self
            .parked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.resume.parked_limit()).then_some(n + 1)
            })
            .is_ok();
        #[cfg(feature = "metrics")]
        if parked {
            let metrics = self.metrics();
            metrics.live.decrement(1.0);
            metrics.parked.increment(1.0);
        }
        parked
    }

    /// A parked session is on a socket again, or ends.
    pub(crate) fn unpark(&self) {
        self.parked.fetch_sub(1, Ordering::AcqRel);
        #[cfg(feature = "metrics")]
        {
            let metrics = self.metrics();
            metrics.parked.decrement(1.0);
            metrics.live.increment(1.0);
        }
    }
}

#[cfg(all(test, ws_heartbeat_loom))]
mod loom_tests;
