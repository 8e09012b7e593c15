//! The browser module's own unit tests (`js/test/`, Node's test runner with mock timers and a
//! fake WebSocket), run by `cargo test` so that the README's one test command covers the
//! page's half too. Needs `node` (20 or later) on `PATH`, which a fresh machine has; without
//! it the test is reported as ignored, and under `CI=true` it fails. A `harness = false` test
//! (see `support::trials`).

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::trials::{self, Flavor, Suite};

fn main() {
    let node = trials::program("node", "install Node.js 20 or later");
    let mut suite = Suite::new();
    suite.test(
        "the_browser_module_passes_its_node_unit_tests",
        &node,
        Flavor::CurrentThread,
        the_browser_module_passes_its_node_unit_tests,
    );
    suite.run()
}

async fn the_browser_module_passes_its_node_unit_tests(node: PathBuf) {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(&node)
        .args(["--test", "--test-reporter=tap", "js/test/"])
        .current_dir(root)
        .output()
        .expect("node starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = stdout.lines().filter(|l| l.starts_with("# ")).collect();
    assert!(
        out.status.success(),
        "node --test js/test/ failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The runner found the tests and ran every one: a directory with no test passes too.
    let count = |key: &str| {
        summary
            .iter()
            .find_map(|l| l.strip_prefix(&format!("# {key} ")))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no `# {key}` line in node's summary: {summary:?}"))
    };
    assert!(count("tests") >= 20, "{summary:?}");
    assert_eq!(count("pass"), count("tests"), "{summary:?}");
    println!("{}", summary.join("\n"));
}
