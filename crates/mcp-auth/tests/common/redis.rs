//! A real `redis-server` (Debian package `redis-server`, installed by `scripts/test.sh`) on a
//! free loopback port, with no persistence, that a test can kill (SIGKILL) and start again on
//! the same port.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port and waits until it answers `PING`.
    pub fn start() -> Self {
        // Redis cannot pick its own port (0 means "no TCP"): take a free one from the kernel.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self { port, child: None };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash: no goodbye to clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: no persistence) and waits for `PING`.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: run scripts/test.sh (installs the Debian package)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command(&["PING"]).as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One command over RESP; the first line of the answer.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(req.as_bytes()).ok()?;
        let mut buf = vec![0u8; 65536];
        let n = stream.read(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        Some(text.lines().next().unwrap_or_default().to_owned())
    }

    /// Every key and value in the database, as text (for "the token is never stored" checks).
    pub fn dump(&self) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream
            .write_all(b"*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n")
            .unwrap();
        let keys = read_all(&mut stream);
        let mut out = keys.clone();
        for key in keys
            .lines()
            .filter(|l| !l.starts_with(['*', '$']) && !l.is_empty())
        {
            let req = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
            stream.write_all(req.as_bytes()).unwrap();
            out.push_str(&read_all(&mut stream));
        }
        out
    }

    /// Commands Redis executed since the last `CONFIG RESETSTAT`, from `INFO commandstats`,
    /// leaving out the test's own `CONFIG` and `INFO`: what the replicas sent.
    pub fn commands_since_reset(&self) -> u64 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream
            .write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
            .unwrap();
        // One bulk string: `$<len>\r\n<len bytes>\r\n`, read to its end.
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "redis closed the connection");
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some((head, body)) = text.split_once("\r\n") {
                let len: usize = head.trim_start_matches('$').parse().unwrap();
                if body.len() >= len {
                    break;
                }
            }
        }
        // Lines like `cmdstat_get:calls=3,usec=12,...`.
        String::from_utf8_lossy(&reply)
            .lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter(|l| !l.starts_with("info:") && !l.starts_with("config|"))
            .map(|l| {
                l.split_once("calls=")
                    .and_then(|(_, rest)| rest.split(',').next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap()
            })
            .sum()
    }

    pub fn key_count(&self) -> u64 {
        self.command(&["DBSIZE"])
            .and_then(|l| l.trim_start_matches(':').parse().ok())
            .unwrap()
    }
}

fn read_all(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 1 << 20];
    let n = stream.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).to_string()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
