//! A small test harness (on `libtest-mimic`) for the suites that need a tool from outside
//! Rust: nginx, iptables, a Python or Node WebSocket library. Such a suite is a `[[test]]`
//! with `harness = false` in Cargo.toml whose `main` lists its trials and what each needs:
//!
//! ```ignore
//! fn main() {
//!     let nginx = trials::program("nginx", "apt-get install nginx");
//!     let mut suite = Suite::new();
//!     suite.test("the_test", &nginx, Flavor::CurrentThread, the_test);
//!     suite.run()
//! }
//!
//! async fn the_test(nginx: PathBuf) { ... }
//! ```
//!
//! A requirement is checked once, when the binary starts, the way the OS finds things (the
//! `PATH`, like `command -v`; an environment variable the suite documents). A trial whose
//! requirement is missing is listed and reported as **ignored** (by `cargo test` and
//! nextest alike), with the reason and what to install printed once on stderr; under
//! `CI=true` it **fails** with that reason instead, so that CI cannot skip it silently. Run
//! with `--include-ignored`, it fails with the reason too.
//!
//! Each trial runs its async body on a tokio runtime of its own, of the flavor it asks for,
//! like `#[tokio::test]`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use libtest_mimic::{Arguments, Failed, Trial};

/// What a trial needs: the value it runs with (a program's path, ...), or why it cannot run
/// and what to install.
pub type Requirement<T> = Result<T, String>;

/// The runtime a trial runs on, as in `#[tokio::test(flavor = ...)]`.
#[derive(Clone, Copy, Debug)]
pub enum Flavor {
    CurrentThread,
    MultiThread { workers: usize },
}

/// True when the environment says this is CI (`CI` set, and not empty, `0` or `false`).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The trials of one test binary.
#[derive(Default)]
pub struct Suite {
    trials: Vec<Trial>,
    /// The reasons of the trials ignored, in order, each once with its trials' count.
    ignored: Vec<(String, usize)>,
}

impl Suite {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the trial `name`: `test` run on its own runtime of `flavor` with what `needs`
    /// found, or ignored (failed under CI) with `needs`' reason.
    pub fn test<T, F, Fut>(&mut self, name: &str, needs: &Requirement<T>, flavor: Flavor, test: F)
    where
        T: Clone + Send + 'static,
        F: FnOnce(T) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let trial = match needs.clone() {
            Ok(found) => Trial::test(name, move || {
                runtime(flavor).block_on(test(found));
                Ok(())
            }),
            Err(reason) => {
                let ci = under_ci();
                let message = if ci {
                    format!("CI=true, and this test cannot run: {reason}")
                } else {
                    reason.clone()
                };
                let trial = Trial::test(name, move || Err(Failed::from(message)));
                if ci {
                    trial
                } else {
                    match self.ignored.iter_mut().find(|(r, _)| *r == reason) {
                        Some((_, n)) => *n += 1,
                        None => self.ignored.push((reason, 1)),
                    }
                    trial.with_ignored_flag(true)
                }
            }
        };
        self.trials.push(trial);
    }

    /// Runs the trials the command line selects (libtest's arguments) and exits.
    pub fn run(self) -> ! {
        let args = Arguments::from_args();
        if !args.list && !args.ignored && !args.include_ignored {
            for (reason, n) in &self.ignored {
                let tests = if *n == 1 { "test" } else { "tests" };
                eprintln!("ignored, {n} {tests}: {reason}");
            }
        }
        libtest_mimic::run(&args, self.trials).exit()
    }
}

fn runtime(flavor: Flavor) -> tokio::runtime::Runtime {
    match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Flavor::MultiThread { workers } => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(workers);
            builder
        }
    }
    .enable_all()
    .build()
    .expect("a tokio runtime")
}

/// The program `name` as the shell's `command -v` finds it: the first executable file of
/// that name in a directory of `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|file| {
            std::fs::metadata(file)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `program args...` runs and exits with status 0 (its output discarded).
pub fn succeeds(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `program args...` run in `dir`: `Ok` if it exits with status 0, else what it said on
/// stderr (its first line that names an error, else its last line).
pub fn check_output(program: &Path, args: &[&str], dir: &Path) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} does not start: {e}", program.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut lines = stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    let said = lines
        .clone()
        .find(|l| l.contains("Error"))
        .or_else(|| lines.next_back())
        .unwrap_or("no message");
    Err(said.to_string())
}

/// The effective user is root (`id -u` says 0).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// A program on `PATH`, or why not: `install` says how to get it. A program found only in
/// a `sbin` directory that is not on `PATH` (Debian's default for normal users) is named
/// in the reason.
pub fn program(name: &str, install: &str) -> Requirement<PathBuf> {
    if let Some(found) = on_path(name) {
        return Ok(found);
    }
    let elsewhere = ["/usr/local/sbin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file());
    Err(match elsewhere {
        Some(p) => format!(
            "needs {name} on PATH: found {}, whose directory is not on PATH (add it to PATH)",
            p.display()
        ),
        None => format!("needs {name}: {install}"),
    })
}

/// The executable of one of this package's examples, built by cargo (`cargo build
/// --example NAME`) and located from cargo's own report of the build (its JSON messages), so
/// that `CARGO_TARGET_DIR`, a build directory or a target triple elsewhere is respected.
pub fn example(name: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--message-format=json",
            "--example",
            name,
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo starts");
    assert!(out.status.success(), "cargo build --example {name} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name)
        .filter(|msg| {
            msg["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "example"))
        })
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no executable for the example {name}"))
}
