//! One conformance suite for every supported WebSocket library: the same behaviours, each an
//! exact-bound test over real sockets on 127.0.0.1, run against a server of each backend.
//!
//! A backend is a [`Backend`](backend::Backend): it starts a server whose connections run a
//! backend-neutral program ([`program`]: echo, record, send only) the way a user of that
//! library would wire the heartbeat in, and reports what each handler saw. The peer is a
//! client the tests control: a raw socket that never answers, or tokio-tungstenite (which
//! answers pings only while it reads). Adding a backend is one `impl Backend` in
//! `tests/conformance/backend/` and one line at the bottom of this file.

#[path = "conformance/backend/mod.rs"]
mod backend;
#[path = "conformance/cases.rs"]
mod cases;
#[path = "conformance/peer.rs"]
mod peer;
#[path = "conformance/program.rs"]
mod program;

/// The suite's tests for one backend (a type in `backend`), in a module named after it.
macro_rules! conformance {
    ($name:ident, $backend:ident) => {
        mod $name {
            use crate::backend::$backend;
            use crate::cases;

            const NAME: &str = stringify!($name);

            #[tokio::test]
            async fn a_silent_peer_is_dead_within_the_bound() {
                cases::a_silent_peer_is_dead_within_the_bound::<$backend>(NAME).await;
            }

            #[tokio::test]
            async fn the_close_frame_after_death_is_1011() {
                cases::the_close_frame_after_death_is_1011::<$backend>(NAME).await;
            }

            #[tokio::test]
            async fn an_answering_peer_is_never_dead_and_its_rtt_is_measured() {
                cases::an_answering_peer_is_never_dead_and_its_rtt_is_measured::<$backend>(NAME)
                    .await;
            }

            #[tokio::test]
            async fn the_peers_pings_are_answered_exactly_once() {
                cases::the_peers_pings_are_answered_exactly_once::<$backend>(NAME).await;
            }

            #[tokio::test]
            async fn pongs_never_reach_the_handler() {
                cases::pongs_never_reach_the_handler::<$backend>(NAME).await;
            }

            #[tokio::test]
            async fn a_send_only_handler_sees_dead() {
                cases::a_send_only_handler_sees_dead::<$backend>(NAME).await;
            }

            #[tokio::test]
            async fn application_heartbeats_are_answered_and_hidden() {
                cases::application_heartbeats_are_answered_and_hidden::<$backend>(NAME).await;
            }

            #[tokio::test]
            async fn nothing_is_lost_or_reordered_under_heavy_heartbeat_traffic() {
                cases::nothing_is_lost_or_reordered_under_heavy_heartbeat_traffic::<$backend>(NAME)
                    .await;
            }
        }
    };
}

conformance!(tungstenite, Tungstenite);
conformance!(axum, Axum);
conformance!(actix, Actix);
conformance!(tokio_websockets, TokioWebsockets);
