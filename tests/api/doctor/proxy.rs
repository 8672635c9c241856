//! The broken setups of the field reports, built for real on loopback: a TCP proxy in front of
//! one or more im-server nodes that can strip the hop-by-hop `Upgrade` / `Connection` headers
//! (nginx without `proxy_set_header Upgrade`), cut connections quiet for N seconds (a proxy
//! read timeout), round-robin between nodes without stickiness, and terminate TLS with a
//! certificate of its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

#[derive(Clone, Default)]
pub struct ProxyOptions {
    /// Drop `Upgrade` and `Connection` from the first request head of each connection.
    pub strip_upgrade: bool,
    /// Close a connection when neither side sent a byte for this long.
    pub idle_cut: Option<Duration>,
    /// Terminate TLS with this acceptor (its certificate is the test's).
    pub tls: Option<TlsAcceptor>,
}

impl ProxyOptions {
    pub fn strip_upgrade() -> ProxyOptions {
        ProxyOptions {
            strip_upgrade: true,
            ..Default::default()
        }
    }

    pub fn idle_cut(after: Duration) -> ProxyOptions {
        ProxyOptions {
            idle_cut: Some(after),
            ..Default::default()
        }
    }

    pub fn tls(acceptor: TlsAcceptor) -> ProxyOptions {
        ProxyOptions {
            tls: Some(acceptor),
            ..Default::default()
        }
    }
}

/// A running proxy; stops when dropped. Connections go to `targets` in turn (round robin).
pub struct Proxy {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(targets: Vec<SocketAddr>, opts: ProxyOptions) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let target = targets[next.fetch_add(1, Ordering::SeqCst) % targets.len()];
                let opts = opts.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    match &opts.tls {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(inbound).await {
                                serve(tls, outbound, &opts).await;
                            }
                        }
                        None => serve(inbound, outbound, &opts).await,
                    }
                });
            }
        });
        Proxy { addr, task }
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<C>(mut client: C, mut server: TcpStream, opts: &ProxyOptions)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    if opts.strip_upgrade {
        let mut head = vec![];
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match client.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let text = String::from_utf8_lossy(&head);
        let kept: Vec<&str> = text
            .split("\r\n")
            .filter(|l| {
                let name = l
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                name != "upgrade" && name != "connection"
            })
            .collect();
        if server
            .write_all(kept.join("\r\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
    pump(client, server, opts.idle_cut).await;
}

/// Copy both ways until either side closes, or until both are quiet for `idle`.
async fn pump<C>(client: C, server: TcpStream, idle: Option<Duration>)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = server.into_split();
    let (mut a, mut b) = (vec![0u8; 16384], vec![0u8; 16384]);
    let idle = idle.unwrap_or(Duration::from_secs(3600));
    loop {
        let quiet = tokio::time::sleep(idle);
        tokio::select! {
            r = cr.read(&mut a) => match r {
                Ok(n) if n > 0 => if sw.write_all(&a[..n]).await.is_err() { return },
                _ => return,
            },
            r = sr.read(&mut b) => match r {
                Ok(n) if n > 0 => if cw.write_all(&b[..n]).await.is_err() { return },
                _ => return,
            },
            _ = quiet => return,
        }
    }
}

/// A self-signed certificate for 127.0.0.1 / localhost, and a TLS acceptor serving it.
pub fn self_signed() -> (TlsAcceptor, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let pem = cert.cert.pem();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .unwrap();
    (TlsAcceptor::from(Arc::new(config)), pem)
}
