//! An HTTPS server on loopback for Client ID Metadata Documents, with a certificate from a CA
//! generated for the run (rcgen), and a route table the test fills once it knows the port
//! (a document names its own URL). Each route answers one way: a JSON document, a redirect,
//! an endless body, or a body that trickles slower than any timeout. Shared by the issuer's
//! tests and the workspace end-to-end tests (`#[path]`).

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// How a path answers.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    /// 200 with this JSON and, if given, this `Cache-Control`.
    Json {
        body: String,
        cache_control: Option<String>,
    },
    /// 302 to this location.
    Redirect(String),
    /// 200 without a length, then bytes until the peer goes away.
    Endless,
    /// 200 with a declared length, then one byte every 200 ms.
    Trickle,
}

/// A running document server; dropped with the test's runtime.
pub(crate) struct DocumentServer {
    /// `https://localhost:PORT` (a name, so the issuer's resolver sees it).
    pub(crate) base: String,
    /// `https://127.0.0.1:PORT` (an IP literal).
    pub(crate) base_ip: String,
    /// The CA that signed the server's certificate, PEM.
    pub(crate) ca_pem: String,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    connections: Arc<AtomicUsize>,
}

impl DocumentServer {
    pub(crate) async fn start() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mcp-auth test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        {
            let (routes, hits, connections) = (routes.clone(), hits.clone(), connections.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (acceptor, routes, hits) = (acceptor.clone(), routes.clone(), hits.clone());
                    tokio::spawn(async move {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            serve(tls, routes, hits).await;
                        }
                    });
                }
            });
        }
        Self {
            base: format!("https://localhost:{port}"),
            base_ip: format!("https://127.0.0.1:{port}"),
            ca_pem: ca.pem(),
            routes,
            hits,
            connections,
        }
    }

    pub(crate) fn route(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.to_owned(), reply);
    }

    /// Serve a metadata document at `path` whose `client_id` is its own URL under `base`.
    /// Returns that URL.
    pub(crate) fn document(
        &self,
        base: &str,
        path: &str,
        mut doc: serde_json::Value,
        cache_control: Option<&str>,
    ) -> String {
        let url = format!("{base}{path}");
        if doc.get("client_id").is_none() {
            doc["client_id"] = serde_json::Value::String(url.clone());
        }
        self.route(
            path,
            Reply::Json {
                body: doc.to_string(),
                cache_control: cache_control.map(str::to_owned),
            },
        );
        url
    }

    /// Requests that reached `path` (after TLS).
    pub(crate) fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// TCP connections accepted, TLS or not.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let reply = routes.lock().unwrap().get(&path).cloned();
    match reply {
        None => {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
        Some(Reply::Json {
            body,
            cache_control,
        }) => {
            let cache = cache_control
                .map(|c| format!("cache-control: {c}\r\n"))
                .unwrap_or_default();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{cache}connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
        Some(Reply::Redirect(location)) => {
            let response = format!(
                "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
        Some(Reply::Endless) => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"client_name\":\"")
                .await;
            let chunk = [b'a'; 1024];
            while stream.write_all(&chunk).await.is_ok() {}
        }
        Some(Reply::Trickle) => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\nconnection: close\r\n\r\n")
                .await;
            loop {
                if stream.write_all(b" ").await.is_err() || stream.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let _ = stream.shutdown().await;
}
