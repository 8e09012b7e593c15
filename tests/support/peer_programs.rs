//! The peers from outside Rust that the suites run as processes: Python with `websockets`
//! and Node with `ws` (installed in `tests/peers`), each found the way the OS finds
//! programs, and a running peer whose lines of output a test reads.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::trials::{self, Requirement};

/// Where the peers' scripts and packages are.
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// Python with `websockets`: `WS_HEARTBEAT_PYTHON`, else `python3` on `PATH`.
pub fn python_with_websockets() -> Requirement<PathBuf> {
    const INSTALL: &str = "python3 -m venv VENV && VENV/bin/pip install -r \
                           tests/peers/requirements.txt, then set \
                           WS_HEARTBEAT_PYTHON=VENV/bin/python";
    let program = match std::env::var_os("WS_HEARTBEAT_PYTHON") {
        Some(set) => PathBuf::from(set),
        None => trials::on_path("python3")
            .ok_or_else(|| format!("needs python3 with websockets: {INSTALL}"))?,
    };
    let import =
        "import websockets.asyncio.client, websockets.asyncio.server, websockets.exceptions";
    trials::check_output(&program, &["-c", import], &peers_dir()).map_err(|why| {
        format!(
            "needs python websockets ({} says: {why}): {INSTALL}",
            program.display()
        )
    })?;
    Ok(program)
}

/// Node with `ws` installed in tests/peers.
pub fn node_with_ws() -> Requirement<PathBuf> {
    const INSTALL: &str = "(cd tests/peers && npm ci)";
    let program = trials::on_path("node").ok_or_else(|| {
        format!("needs node and its ws: apt-get install nodejs npm, then {INSTALL}")
    })?;
    trials::check_output(
        &program,
        &["--input-type=module", "-e", "import 'ws'"],
        &peers_dir(),
    )
    .map_err(|why| format!("needs node ws ({why}): {INSTALL}"))?;
    Ok(program)
}

pub struct Peer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    pub fn spawn(program: &Path, script: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(program)
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("peer starts");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    pub async fn line(&mut self) -> String {
        let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line()).await;
        line.expect("the peer said something")
            .unwrap()
            .expect("a line")
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        let ok = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}
