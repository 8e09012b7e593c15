//! `ws_heartbeat::browser::script` on an axum `Router`: the module in full with its
//! validator, and `304 Not Modified` when the browser already has it.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use http_body_util::BodyExt;
use tower::ServiceExt;
use ws_heartbeat::browser::{ETAG, SCRIPT, script};

/// `GET /ws-heartbeat.js` with these `If-None-Match` lines.
async fn get_script(if_none_match: &[&str]) -> Response {
    let app = Router::new().route("/ws-heartbeat.js", get(script));
    let mut request = Request::get("/ws-heartbeat.js");
    for value in if_none_match {
        request = request.header(header::IF_NONE_MATCH, *value);
    }
    app.oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

/// Status, the three headers (`None` if absent), and the body.
async fn parts(response: Response) -> (StatusCode, [Option<String>; 3], Vec<u8>) {
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let headers = [
        header(header::CONTENT_TYPE),
        header(header::ETAG),
        header(header::CACHE_CONTROL),
    ];
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body.to_vec())
}

#[tokio::test]
async fn the_script_is_served_with_its_type_and_validator() {
    let (status, [content_type, etag, cache_control], body) = parts(get_script(&[]).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        content_type.as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(etag.as_deref(), Some(ETAG));
    assert_eq!(cache_control.as_deref(), Some("no-cache"));
    assert_eq!(body, SCRIPT.as_bytes());
}

#[tokio::test]
async fn a_matching_if_none_match_is_answered_304_with_no_body() {
    let weak = format!("W/{ETAG}");
    let listed = format!(r#""old", W/"older",{ETAG}"#);
    for lines in [
        vec![ETAG],
        vec![weak.as_str()],
        vec![listed.as_str()],
        vec!["*"],
        vec![r#""old""#, ETAG],
    ] {
        let (status, [content_type, etag, cache_control], body) =
            parts(get_script(&lines).await).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{lines:?}");
        assert_eq!(etag.as_deref(), Some(ETAG));
        assert_eq!(cache_control.as_deref(), Some("no-cache"));
        assert_eq!(content_type, None);
        assert!(body.is_empty(), "{lines:?}");
    }
}

#[tokio::test]
async fn another_validator_gets_the_script_in_full() {
    let unquoted = ETAG.trim_matches('"').to_owned();
    // Opaque-tags compare byte by byte (unless the hash happens to hold no letter).
    let upper = Some(ETAG.to_uppercase()).filter(|upper| upper != ETAG);
    let values = [r#""0000000000000000""#, &unquoted, "W/", r#"""#];
    for value in values.into_iter().chain(upper.as_deref()) {
        let (status, [_, etag, _], body) = parts(get_script(&[value]).await).await;
        assert_eq!(status, StatusCode::OK, "{value}");
        assert_eq!(etag.as_deref(), Some(ETAG));
        assert_eq!(body, SCRIPT.as_bytes());
    }
}
