//! The life of a [`Reconnect`]'s connections: an attempt (connect, heartbeat, and with a
//! session its handshake), the decision after a connection or an attempt ends (end, or wait
//! the backoff and try again), and the drive through attempts and waits until a connection
//! is up.

use std::future::Future;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_layer::Layer;

use super::super::error::Failed;
use super::super::{Connection, Error, Event, Reason};
use super::{Reconnect, State};
use crate::random::random_u64;
#[cfg(feature = "resume")]
use crate::resume::{Reason as Lost, SessionLost, close_ends_session};

#[cfg(feature = "resume")]
use super::super::session::{ClientSession, close_for_violation, handshake};

impl<S: Connection> Reconnect<S> {
    pub(super) fn start_attempt(&mut self) {
        self.emit(Event::Connecting { retry: self.retry });
        let connect = (self.settings.connect)();
        let timeout = self.settings.connect_timeout;
        let layer = self.settings.heartbeat.clone();
        let on_connect = self.settings.on_connect.clone();
        #[cfg(feature = "resume")]
        let hello = self.session.as_mut().map(ClientSession::hello);
        let attempt = async move {
            let socket = match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(socket)) => socket,
                Ok(Err(err)) => return Err(Reason::ConnectFailed(err).into()),
                Err(_) => return Err(Reason::ConnectTimedOut(timeout).into()),
            };
            #[cfg_attr(not(feature = "resume"), allow(unused_mut))]
            let mut ws = layer.layer(socket);
            #[cfg(feature = "resume")]
            if let Some(hello) = hello {
                // The connect timeout covers the session handshake too.
                return match tokio::time::timeout(timeout, handshake(&mut ws, hello)).await {
                    Ok(Ok(welcome)) => Ok((ws, Some(welcome))),
                    Ok(Err(failed)) => Err(failed),
                    Err(_) => Err(Reason::ConnectTimedOut(timeout).into()),
                };
            }
            match on_connect {
                Some(hook) => hook(ws)
                    .await
                    .map(|ws| (ws, None))
                    .map_err(|err| Reason::OnConnectFailed(err).into()),
                None => Ok((ws, None)),
            }
        };
        self.set(State::Connecting(Box::pin(attempt)));
    }

    /// A connection or an attempt ended for `reason`: end, or wait and try again.
    ///
    /// A server that closes with 1012 (service restart) or 1001 (going away) is draining:
    /// the next attempt comes after a delay drawn from `[0, initial]`, as after a stable
    /// connection, so that its clients come back spread over that span, not in a spike,
    /// and not later because of earlier failures. With 1013 (try again later) the retry
    /// count grows as after a failed attempt, however long the connection was up.
    pub(super) fn after(&mut self, reason: Reason, stable: bool) {
        let stable = match &reason {
            Reason::ServerClosed {
                code: 1012 | 1001, ..
            } => true,
            Reason::ServerClosed { code: 1013, .. } => false,
            _ => stable,
        };
        if let Reason::ServerClosed { code, reason: text } = &reason {
            #[cfg(feature = "resume")]
            if let (4410, Some(session)) = (*code, &self.session) {
                let lost = session.lost(Lost::Refused);
                return self.lose(lost);
            }
            #[cfg(feature = "resume")]
            if let Some(session) =
                (self.session.as_mut()).filter(|session| session.next.is_some() && *code == 1012)
            {
                // The server finished the session (PROTOCOL.md, section 8): the next one
                // starts on the next connection, with what was sent since.
                let Some(next) = session.finished() else {
                    let lost = session.lost(Lost::Drained);
                    return self.lose(lost);
                };
                self.session = Some(next);
                self.emit(Event::NewSession);
                return self.retry_later(reason, true);
            }
            let is_final = self.is_final(*code, text);
            if is_final {
                let (code, text) = (*code, text.clone());
                self.emit(Event::Closed {
                    by_server: Some((code, text.clone())),
                    unsent: self.unsent(),
                });
                return self.set(State::Done(Some(Error::Rejected { code, reason: text })));
            }
        }
        self.retry_later(reason, stable);
    }

    /// A connect attempt failed for `reason`. A session's `hello` answered with 1013 (the
    /// server's sessions are at their memory budget: try again later) is not final: the
    /// client tries again after its backoff, as after a failed connect.
    fn attempt_failed(&mut self, failed: Failed) {
        let reason = match failed {
            Failed::Retry(reason) => reason,
            #[cfg(feature = "resume")]
            Failed::Violation(what) => {
                if let Some(session) = &self.session {
                    let lost = session.lost(Lost::Violation(what));
                    self.lose(lost);
                }
                return;
            }
        };
        // A session's hello answered with 1013 (the server's memory budget) is tried again
        // with the backoff; with 1012 or 1001 (the server drains) within the first step.
        #[cfg(feature = "resume")]
        if let (Some(session), Reason::ServerClosed { code, .. }) = (&mut self.session, &reason) {
            match code {
                1013 => return self.retry_later(reason, false),
                1012 | 1001 => {
                    session.renew_if_unwelcomed();
                    return self.retry_later(reason, true);
                }
                _ => {}
            }
        }
        self.after(reason, false);
    }

    /// Waits out the backoff before the next attempt, or gives up.
    fn retry_later(&mut self, reason: Reason, stable: bool) {
        self.retry = if stable { 1 } else { self.retry + 1 };
        if !self.settings.backoff.allows(self.retry) {
            let retries = self.retry - 1;
            self.emit(Event::GaveUp {
                retries,
                last: reason.clone(),
            });
            return self.set(State::Done(Some(Error::GaveUp {
                retries,
                last: reason,
            })));
        }
        #[cfg_attr(not(feature = "resume"), allow(unused_mut))]
        let mut delay = self.settings.backoff.delay(self.retry, random_u64());
        #[cfg(feature = "resume")]
        if let Some(session) = &self.session {
            // The window runs from the loss of a socket the session was on (`disconnect`):
            // a server down from the start is retried like without a session.
            match session.window_left() {
                // The last attempt comes before the server forgets the session.
                Some(left) => delay = delay.min(left.saturating_sub(left / 4)),
                None => {
                    let lost = session.lost(Lost::WindowPassed);
                    return self.lose(lost);
                }
            }
        }
        #[cfg(feature = "metrics")]
        crate::metrics::reconnecting(self.settings.heartbeat.settings().name());
        self.emit(Event::Reconnecting {
            retry: self.retry,
            delay,
            after: reason,
        });
        self.set(State::Waiting(Box::pin(tokio::time::sleep(delay))));
    }

    /// Whether a server's Close with `code` ends the client: with a session, any Close but
    /// the heartbeat's own (PROTOCOL.md, section 6); without, as the settings say.
    pub(super) fn is_final(&self, code: u16, reason: &str) -> bool {
        #[cfg(feature = "resume")]
        if self.session.is_some() {
            return close_ends_session(Some(code));
        }
        (self.settings.is_final)(code, reason)
    }

    /// The session can no longer resume: the client ends.
    #[cfg(feature = "resume")]
    pub(super) fn lose(&mut self, lost: SessionLost) {
        self.emit(Event::SessionLost(lost));
        self.set(State::Done(Some(Error::SessionLost(lost))));
    }

    /// The current connection ended for `reason`, or for the server's Close frame if one
    /// came first (whatever went wrong after it).
    pub(super) fn disconnect(&mut self, reason: Reason) {
        let State::Connected {
            since,
            closed_by_server,
            ..
        } = &mut self.state
        else {
            return;
        };
        let stable = since.elapsed() >= self.settings.stable_after;
        let reason = match closed_by_server.take() {
            Some((code, reason)) => Reason::ServerClosed { code, reason },
            None => reason,
        };
        #[cfg(feature = "resume")]
        if let Some(session) = &mut self.session {
            self.unconfirmed = session.core.ledger().unconfirmed();
            session.went_down();
        }
        self.emit(Event::Disconnected {
            reason: reason.clone(),
            unconfirmed: self.unconfirmed,
        });
        self.unconfirmed = 0;
        self.after(reason, stable);
    }

    /// Drives attempts and backoff until a connection is up (`Ready(true)`), the client has
    /// ended (`Ready(false)`), or it must wait.
    pub(super) fn poll_connected(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            match &mut self.state {
                State::Idle => self.start_attempt(),
                State::Connecting(attempt) => match attempt.as_mut().poll(cx) {
                    #[cfg_attr(not(feature = "resume"), allow(unused_mut))]
                    Poll::Ready(Ok((mut ws, welcome))) => {
                        #[cfg(not(feature = "resume"))]
                        let _ = welcome;
                        #[cfg(feature = "resume")]
                        if let (Some(session), Some(welcome)) = (&mut self.session, welcome) {
                            match session.welcomed(&welcome, ws.pings_sent()) {
                                Ok(replay) => self.buffer = replay.into(),
                                Err(violation) => {
                                    close_for_violation(&mut ws, cx);
                                    let lost = session.lost(violation);
                                    self.lose(lost);
                                    continue;
                                }
                            }
                        }
                        self.pongs_seen = ws.handle().stats().pongs_received;
                        self.emit(Event::Connected { retry: self.retry });
                        let since = Instant::now();
                        self.set(State::Connected {
                            ws,
                            since,
                            closed_by_server: None,
                        });
                    }
                    Poll::Ready(Err(failed)) => self.attempt_failed(failed),
                    Poll::Pending => return Poll::Pending,
                },
                State::Waiting(sleep) => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.start_attempt();
                }
                State::Connected { .. } => return Poll::Ready(true),
                State::Closing(_) | State::Done(_) => return Poll::Ready(false),
            }
        }
    }
}
