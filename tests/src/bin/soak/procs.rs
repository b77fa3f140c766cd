//! The processes under test: starting them, and reading their resident memory, open file
//! descriptors and established TCP connections from `/proc` (Linux).

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::process::{Child, Command};

/// A child process, killed when dropped.
pub(crate) struct Server {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
    pub(crate) pid: u32,
}

impl Server {
    pub(crate) fn start(
        name: &'static str,
        bin: &Path,
        args: &[String],
        env: &[(&str, String)],
        log: &Path,
    ) -> Self {
        let log = std::fs::File::create(log).expect("a log file");
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let pid = child.id().expect("a running child");
        Self { name, child, pid }
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// One reading of a process's resources.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    pub(crate) rss_kib: u64,
    pub(crate) fds: u64,
    pub(crate) established: u64,
    /// TCP sockets between states: connecting, or closing (`CLOSE_WAIT`, `FIN_WAIT*`,
    /// `LAST_ACK`, …). They come and go with the clients' disconnect faults and with key-set
    /// fetches cut by a hang window, so a moment's count says nothing about a leak; a leak shows
    /// as them still being there once the clients are gone.
    pub(crate) in_transition: u64,
    /// Socket descriptors found in no TCP table: a connection the client reset, which the server
    /// has not yet read the error of and closed (the kernel unhashes a reset socket at once), or
    /// one closed between reading the descriptors and reading the tables. Like
    /// `in_transition`, they come and go with the clients' disconnects; a leaked one would still
    /// be there once the clients are gone.
    pub(crate) unlisted: u64,
}

pub(crate) fn usage(pid: u32) -> Usage {
    let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0);
    let mut fds = 0;
    let mut sockets = HashSet::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in dir.flatten() {
            fds += 1;
            if let Ok(target) = std::fs::read_link(entry.path())
                && let Some(inode) = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
            {
                sockets.insert(inode.to_owned());
            }
        }
    }
    // The `st` column: 01 is ESTABLISHED, 0A is LISTEN, any other state is a connection
    // opening or closing (include/net/tcp_states.h). The inode column ties a socket to this
    // process's descriptors.
    let mut established = 0;
    let mut in_transition = 0;
    let mut listed = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                if cols.len() > 9 && sockets.contains(cols[9]) {
                    listed += 1;
                    match cols[3] {
                        "01" => established += 1,
                        "0A" => {}
                        _ => in_transition += 1,
                    }
                }
            }
        }
    }
    Usage {
        rss_kib,
        fds,
        established,
        in_transition,
        unlisted: (sockets.len() as u64).saturating_sub(listed),
    }
}

/// A free loopback port (bound, then released for the child to take).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until `url` answers (any status), at most 60 s.
pub(crate) async fn wait_ready(client: &reqwest::Client, url: &str, server: &mut Server) {
    for _ in 0..1200 {
        if client.get(url).send().await.is_ok() {
            return;
        }
        assert!(
            server.alive(),
            "{} exited at start; see its log",
            server.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} not ready at {url}", server.name);
}

pub(crate) fn bin(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (scripts/soak.sh does)",
        path.display()
    );
    path
}
