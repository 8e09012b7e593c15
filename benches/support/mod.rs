//! What the scale benches share: small read buffers and the process's CPU time.

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Small buffers: tungstenite's default 128 KiB read buffer would make 2 × N of them.
pub fn config() -> Option<WebSocketConfig> {
    Some(WebSocketConfig::default().read_buffer_size(256))
}

/// Process CPU time (user + system).
pub fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ = 100
}
