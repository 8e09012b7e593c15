//! The browser side of the heartbeat, shipped with the crate: `ws-heartbeat.js`, an ES
//! module for pages that talk to a server using this crate's application heartbeats
//! ([`crate::protocol`]), and its TypeScript declarations.
//!
//! The files are compiled into the crate, so the server serves the very version it was built
//! with: no npm package to keep in step. With the `axum` feature, `script` is a ready
//! handler:
//!
//! ```
//! use axum::{Router, routing::get};
//!
//! let app: Router = Router::new().route("/ws-heartbeat.js", get(ws_heartbeat::browser::script));
//! ```
//!
//! and a page imports it as a module:
//!
//! ```html
//! <script type="module">
//!   import { HeartbeatSocket } from "/ws-heartbeat.js";
//! </script>
//! ```
//!
//! Another server framework serves [`SCRIPT`] the same way: `Content-Type: text/javascript;
//! charset=utf-8`, `ETag:` [`ETAG`], `Cache-Control: no-cache` (browsers revalidate on every
//! load, so a new build of the server reaches every page at once), and `304 Not Modified`
//! when the request's `If-None-Match` holds [`ETAG`] (compared weakly, RFC 9110, 13.1.2: `*`,
//! or any entity-tag of the list whose opaque-tag is ours, `W/` or not).
//!
//! # How `HeartbeatSocket` behaves
//!
//! `new HeartbeatSocket(url, options)` is the page's side of the same heartbeat; its options,
//! events and their defaults are in [`TYPES`] (`js/ws-heartbeat.d.ts`). The rules are the
//! server's, restated where a page differs:
//!
//! - **Shapes.** `heartbeat: 'json' | 'text' | 'binary'` pings and answers in the shape of
//!   [`protocol::Json`](crate::protocol::Json), [`Text`](crate::protocol::Text) or
//!   [`BinaryCommand`](crate::protocol::BinaryCommand), with their defaults and their 1 KiB
//!   limit (lookalikes are data). With `'control'` the server pings with WebSocket Ping
//!   frames, which the browser answers itself; the page can neither see them nor ping, and
//!   leaves the silence check to the server.
//! - **Ticks.** The first at a random moment of the first interval, later ones one interval
//!   after the previous tick's deadline; a tick more than an interval late starts a fresh
//!   schedule (no burst of pings).
//! - **Death, from timestamps.** At a tick the server is dead when nothing arrived for more
//!   than `interval × maxMissed`, at least `maxMissed` pings went out since, and the latest
//!   was sent a whole interval earlier on the schedule: with timers on time, a server silent
//!   since `t0` is dead in `(t0 + interval × maxMissed, t0 + interval × (maxMissed + 1)]`,
//!   as on the server. Any message counts as life.
//! - **Hidden tabs.** Browsers throttle a hidden tab's timers (Chrome: to once a minute);
//!   late ticks restart the schedule, so a server that answers is never condemned by the
//!   page's lateness (a dead one is found later, by the throttling). The page answers the
//!   server's pings from its message handler, which is not throttled. `setInterval(ms)` asks
//!   the server to follow (the JSON ping's `"interval"`, the binary ping's 12-byte payload;
//!   [`HeartbeatLayer::follow_peer_interval`](crate::HeartbeatLayer::follow_peer_interval)).
//! - **RTT.** Sequence numbers start at a random point below 2^40 (JavaScript's numbers are
//!   exact below 2^53); only the latest ping's answer is a sample, in whole milliseconds.
//! - **Reconnecting**, as [`Reconnect`](crate::reconnect::Reconnect): full-jitter delays
//!   (retry `n` drawn from `[0, min(max, initial × factor^(n−1)))`, 500 ms doubling to 30 s),
//!   the count restarting after a connection that heard its server for `stableAfter` and
//!   after a Close 1012 or 1001 (a draining server: the next attempt within `[0, initial)`),
//!   growing after a Close 1013 as after a failed attempt, one attempt in flight (`connectTimeout` covers the open and `onConnect`), giving up after
//!   `maxRetries`. Final, with nothing reconnecting after: `close()`, a server Close with a
//!   final code (1000, 1008, 4000–4999: a log-out, a kick), giving up.
//! - **States and events.** `connecting`, `connected`, `reconnecting`, `closing`, `closed`;
//!   each change fires `state` with `why` (`open`, `retry`, `dead`, `closed`, `error`,
//!   `timeout`, `hook`, `final-code`, `gave-up`, `close`). `message` carries data only.
//! - **Buffer.** While not connected `send` keeps up to `buffer` (256) messages, sent in order
//!   after `onConnect`; a full buffer refuses (`send` returns `false`, `stats.dropped`).
//!   `unconfirmed` counts messages handed to a connection since the server last sent data or
//!   an answer; `unsent` what was still buffered when the socket ended for good.
//! - **Sessions** (`resume: true`): [PROTOCOL.md]'s client. `send` numbers each message and
//!   keeps it in an outbox bounded in bytes (`resume.buffer`, 100 KiB) until acknowledged; a
//!   full one refuses. Every socket starts with the `hello` and is `connected` at the
//!   `welcome`. A page never sends 1011 or 1002 (either would end the session on the
//!   server): a socket it gives up on is left for the server to drop when the session
//!   resumes. A server Close but 1011 is final, except a 1013 in answer to a `hello` (the
//!   server's sessions are at their memory budget), tried again after the backoff, with no
//!   window running for a session never welcomed, and a 1012 or 1001 to a `hello` (the server
//!   drains), tried again within the first backoff step; 4410, the window passing or a
//!   protocol error fire `sessionlost` (with `unconfirmed`), then `closed`. A server that
//!   drains finishes the session (PROTOCOL.md, section 8): the page answers its `finish`,
//!   keeps what `send` takes for the next session, and on the server's 1012 fires
//!   `sessionnew` and starts that session on the next socket. `onConnect` is refused with a
//!   session, as on the Rust client.
//!
//! [PROTOCOL.md]: https://docs.rs/crate/ws-heartbeat/latest/source/PROTOCOL.md

/// `ws-heartbeat.js`: the browser module, an ES module (serve it as
/// `text/javascript; charset=utf-8`, see the [module docs](self)).
pub const SCRIPT: &str = include_str!("../js/ws-heartbeat.js");

/// `ws-heartbeat.d.ts`: TypeScript declarations for [`SCRIPT`], for a TypeScript page that
/// imports it (write it next to the page's sources, or serve it beside the script).
pub const TYPES: &str = include_str!("../js/ws-heartbeat.d.ts");

/// The value of the `ETag` header for [`SCRIPT`], quotes included: a strong validator, the
/// 64-bit FNV-1a hash of the script's bytes in lowercase hexadecimal
/// (`"cbf29ce484222325"`-shaped), computed at compile time. It changes whenever the script
/// does, and only then.
pub const ETAG: &str = match std::str::from_utf8(&ETAG_BYTES) {
    Ok(etag) => etag,
    Err(_) => panic!("the ETag is ASCII"),
};

const ETAG_BYTES: [u8; 18] = quoted_hex(fnv1a(SCRIPT.as_bytes()));

/// 64-bit FNV-1a: simple enough for a `const fn`, and a content hash is all a validator needs
/// (nothing here is secret or adversarial).
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `n` as 16 lowercase hex digits between double quotes: an entity-tag (RFC 9110, 8.8.3).
const fn quoted_hex(n: u64) -> [u8; 18] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut tag = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        tag[1 + i] = DIGITS[((n >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    tag
}

/// Serves [`SCRIPT`]: `200` with `Content-Type: text/javascript; charset=utf-8`, the
/// [`ETAG`] and `Cache-Control: no-cache`; or `304 Not Modified` with no body (and the same
/// `ETag` and `Cache-Control`) when `If-None-Match` matches: `*`, or a list holding [`ETAG`],
/// weak (`W/`) or not, on one or several header lines (RFC 9110, 13.1.2: the weak
/// comparison).
///
/// ```
/// use axum::{Router, routing::get};
///
/// let app: Router = Router::new().route("/ws-heartbeat.js", get(ws_heartbeat::browser::script));
/// ```
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub async fn script(headers: ::axum::http::HeaderMap) -> ::axum::response::Response {
    use ::axum::http::{HeaderValue, StatusCode, header};
    use ::axum::response::IntoResponse;

    let cached = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|value| if_none_match(value.as_bytes(), ETAG.as_bytes()));
    let mut response = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = SCRIPT.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_static(ETAG));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Whether one `If-None-Match` field value matches `etag` (quotes included): `*`, or an
/// entity-tag of the comma-separated list whose opaque-tag equals it, weak or not. An
/// opaque-tag may itself hold commas, so the list is read tag by tag, not split. A malformed
/// rest of the list matches nothing: the script is served in full.
#[cfg(any(feature = "axum", test))]
fn if_none_match(mut list: &[u8], etag: &[u8]) -> bool {
    loop {
        while let [b' ' | b'\t' | b',', rest @ ..] = list {
            list = rest;
        }
        if list.is_empty() {
            return false;
        }
        if list.starts_with(b"*") {
            return true;
        }
        let tag = list.strip_prefix(b"W/").unwrap_or(list);
        let [b'"', inside @ ..] = tag else {
            return false;
        };
        let Some(end) = inside.iter().position(|&b| b == b'"') else {
            return false;
        };
        // The tag with both quotes.
        if &tag[..end + 2] == etag {
            return true;
        }
        list = &inside[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_gives_the_published_test_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_etag_is_the_quoted_hash_of_the_script() {
        assert_eq!(ETAG, format!("\"{:016x}\"", fnv1a(SCRIPT.as_bytes())));
        assert_eq!(quoted_hex(0x0123_4567_89ab_cdef), *b"\"0123456789abcdef\"");
        assert_eq!(quoted_hex(0), *b"\"0000000000000000\"");
    }

    #[test]
    fn if_none_match_compares_weakly_and_reads_lists_tag_by_tag() {
        let ours = br#""0123456789abcdef""#;
        let matches = |value: &str| if_none_match(value.as_bytes(), ours);
        for value in [
            r#""0123456789abcdef""#,
            r#"W/"0123456789abcdef""#,
            "*",
            " * ",
            r#""x", "0123456789abcdef""#,
            r#"W/"x",W/"0123456789abcdef""#,
            r#""a,b", "0123456789abcdef""#,
            r#"	,, "0123456789abcdef" ,"#,
        ] {
            assert!(matches(value), "{value}");
        }
        for value in [
            "",
            " , ",
            r#""0123456789ABCDEF""#,
            r#""0123456789abcde""#,
            r#""0123456789abcdef"#,
            "0123456789abcdef",
            r#"w/"0123456789abcdef""#,
            r#""x"y, "0123456789abcdef""#,
            r#""0123456789abcdef,x""#,
            r#"W/ "0123456789abcdef""#,
            r#"x, "0123456789abcdef""#,
        ] {
            assert!(!matches(value), "{value}");
        }
    }
}
