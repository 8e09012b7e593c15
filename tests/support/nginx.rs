//! nginx started by a test on 127.0.0.1 with its own configuration (Debian's `nginx`, found
//! on `PATH`; see `trials::program`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use super::ms;

/// nginx proxying WebSockets from a free port to `upstream`, cutting a connection on which
/// nothing came from either side for `idle` (`proxy_read_timeout`, `proxy_send_timeout`);
/// stopped when dropped.
pub struct Nginx {
    child: Child,
    prefix: PathBuf,
    /// Where it listens, on 127.0.0.1.
    pub port: u16,
}

impl Nginx {
    pub async fn start(nginx: &Path, upstream: u16, idle: Duration) -> Self {
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
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
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
