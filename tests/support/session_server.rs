//! The `session_server` example (examples/session_server.rs) as a child process of a test.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Starts `bin` with `args` (PORT NAME INTERVAL_MS WINDOW_MS [DRAIN_MS]), stderr piped if
/// `stderr_piped`, and waits for its `listening <port>`: the child, its port, and the rest
/// of its stdout.
pub async fn start(
    bin: &Path,
    args: &[String],
    stderr_piped: bool,
) -> (Child, u16, Lines<BufReader<ChildStdout>>) {
    let stderr = if stderr_piped {
        Stdio::piped()
    } else {
        Stdio::inherit()
    };
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("session_server starts");
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), out.next_line())
        .await
        .expect("session_server says where it listens")
        .unwrap()
        .expect("a line");
    let port = first
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not `listening <port>`: {first:?}"));
    (child, port, out)
}
