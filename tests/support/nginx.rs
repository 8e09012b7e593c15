//! nginx started by a test on 127.0.0.1 with its own configuration (Debian's `nginx`, found
//! on `PATH`; see `trials::program`), in front of one upstream or several.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use super::ms;

/// How nginx picks one of several upstreams for each new connection.
#[derive(Clone, Copy, Debug)]
pub enum Balance {
    /// nginx's default: in turn. With one worker process (ours) and equal weights,
    /// consecutive connections alternate between two upstreams.
    RoundRobin,
    /// `hash KEY consistent;`: the same key always goes to the same upstream, e.g.
    /// `$arg_ws_session`, the query parameter `ws_session` of the request's URL.
    ConsistentHash(&'static str),
}

/// nginx proxying WebSockets from a free port to its upstreams, cutting a connection on
/// which nothing came from either side for `idle` (`proxy_read_timeout`,
/// `proxy_send_timeout`); stopped when dropped.
pub struct Nginx {
    child: Child,
    prefix: PathBuf,
    /// Where it listens, on 127.0.0.1.
    pub port: u16,
}

impl Nginx {
    /// In front of one upstream.
    pub async fn start(nginx: &Path, upstream: u16, idle: Duration) -> Self {
        Self::start_balanced(nginx, &[upstream], Balance::RoundRobin, idle).await
    }

    /// In front of `upstreams` (ports on 127.0.0.1), choosing one per connection by
    /// `balance`.
    pub async fn start_balanced(
        nginx: &Path,
        upstreams: &[u16],
        balance: Balance,
        idle: Duration,
    ) -> Self {
        assert!(!upstreams.is_empty(), "nginx needs an upstream");
        let balance = match balance {
            Balance::RoundRobin => String::new(),
            Balance::ConsistentHash(key) => format!("hash {key} consistent;"),
        };
        let servers: String = upstreams
            .iter()
            .map(|port| format!("server 127.0.0.1:{port};\n        "))
            .collect();
        let idle = format!("{}ms", idle.as_millis());
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let prefix =
            std::env::temp_dir().join(format!("ws-heartbeat-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        let conf = format!(
            r#"
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
worker_rlimit_nofile 8192;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream backends {{
        {balance}
        {servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout {idle};
            proxy_send_timeout {idle};
        }}
    }}
}}
"#,
            prefix = prefix.display()
        );
        std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
        // `-e`: the error log from the start (before the configuration is read, nginx would
        // open its compiled-in /var/log/nginx/error.log, which a normal user cannot write).
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&prefix)
            .arg("-e")
            .arg(prefix.join("logs/error.log"))
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        // Wait until it listens.
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not start"
            );
            tokio::time::sleep(ms(20)).await;
        }
        Self {
            child,
            prefix,
            port,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM makes the master stop its workers too (SIGKILL would orphan them).
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}
