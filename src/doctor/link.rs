//! The wire under every step: TCP, then TLS for `https` (rustls with the ring provider and the
//! webpki roots, plus `--ca-cert`), and the HTTP client built on the same trust so the `tls`
//! step and every later request agree about the certificate.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::DoctorArgs;
use super::target::Target;

/// How to reach the target: resolved addresses and the TLS settings.
pub struct Link {
    pub addrs: Vec<SocketAddr>,
    pub timeout: Duration,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// The verifying connector, for the `tls` step (the one in use may be `--insecure`).
    verifying: Option<TlsConnector>,
}

/// Why a connection could not be opened.
pub enum OpenError {
    Tcp(io::Error),
    Tls(io::Error),
}

impl Link {
    pub fn new(
        target: &Target,
        addrs: Vec<SocketAddr>,
        args: &DoctorArgs,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<Link, String> {
        let timeout = Duration::from_secs(args.timeout.max(1));
        if !target.tls {
            return Ok(Link {
                addrs,
                timeout,
                tls: None,
                verifying: None,
            });
        }
        let name = ServerName::try_from(target.host.clone())
            .map_err(|e| format!("--url: {:?} is not a TLS server name: {e}", target.host))?;
        let verifying = TlsConnector::from(Arc::new(verifying_config(extra_roots)?));
        let in_use = if args.insecure {
            TlsConnector::from(Arc::new(insecure_config()))
        } else {
            verifying.clone()
        };
        Ok(Link {
            addrs,
            timeout,
            tls: Some((in_use, name)),
            verifying: Some(verifying),
        })
    }

    pub async fn tcp(&self) -> io::Result<TcpStream> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in &self.addrs {
            match tokio::time::timeout(self.timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(e)) => last = e,
                Err(_) => {
                    last = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer from {addr} within {}s", self.timeout.as_secs()),
                    )
                }
            }
        }
        Err(last)
    }

    /// The `tls` step's handshake: always verifying, whatever `--insecure` says.
    pub async fn verify_tls(&self) -> Result<String, OpenError> {
        let (Some(connector), Some((_, name))) = (&self.verifying, &self.tls) else {
            return Ok(String::new());
        };
        let tcp = self.tcp().await.map_err(OpenError::Tcp)?;
        let tls = self.handshake(connector, name, tcp).await?;
        let (_, conn) = tls.get_ref();
        Ok(format!(
            "{:?}, {}",
            conn.protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            conn.negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()))
                .unwrap_or_default()
        ))
    }

    /// A fresh connection as every later step uses it (TLS per `--insecure`).
    pub async fn open(&self) -> Result<Stream, OpenError> {
        let tcp = self.tcp().await.map_err(OpenError::Tcp)?;
        match &self.tls {
            None => Ok(Stream::Plain(tcp)),
            Some((connector, name)) => Ok(Stream::Tls(Box::new(
                self.handshake(connector, name, tcp).await?,
            ))),
        }
    }

    async fn handshake(
        &self,
        connector: &TlsConnector,
        name: &ServerName<'static>,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, OpenError> {
        match tokio::time::timeout(self.timeout, connector.connect(name.clone(), tcp)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(OpenError::Tls(e)),
            Err(_) => Err(OpenError::Tls(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no TLS handshake within {}s (is this port speaking plain HTTP?)",
                    self.timeout.as_secs()
                ),
            ))),
        }
    }
}

/// `--ca-cert FILE`: the certificates in it (PEM).
pub fn load_ca(args: &DoctorArgs) -> Result<Vec<CertificateDer<'static>>, String> {
    let Some(path) = &args.ca_cert else {
        return Ok(vec![]);
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--ca-cert {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// The HTTP client of the HTTP steps: same trust as [`Link`], no redirects followed (a
/// redirect is worth reporting), no connection reuse (each request shows the path a fresh
/// browser request takes through the load balancer).
pub fn http_client(
    args: &DoctorArgs,
    extra_roots: &[CertificateDer<'static>],
) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .no_proxy()
        .timeout(Duration::from_secs(args.timeout.max(1)))
        .user_agent(concat!("im-server-doctor/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(args.insecure);
    for c in extra_roots {
        let cert = reqwest::Certificate::from_der(c.as_ref()).map_err(|e| e.to_string())?;
        b = b.add_root_certificate(cert);
    }
    b.build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn verifying_config(extra: &[CertificateDer<'static>]) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for c in extra {
        roots
            .add(c.clone())
            .map_err(|e| format!("--ca-cert: {e}"))?;
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn insecure_config() -> ClientConfig {
    let p = provider();
    ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(p)))
        .with_no_client_auth()
}

/// `--insecure`: any certificate, but the handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connection, plain or TLS, for the WebSocket step.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
