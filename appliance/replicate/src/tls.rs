//! The link between appliances: TLS 1.3 (rustls on `ring`) with both
//! certificates pinned by fingerprint — no certificate authority, no host
//! names. Each appliance makes its own identity (a self-signed Ed25519
//! certificate) on first start; pairing shows both fingerprints so the
//! operators can confirm them, after which each side accepts exactly the
//! certificates it pinned.
//!
//! The identity's private key never rests on disk in the clear:
//! [`Identity::seal`] encrypts it (AES-256-GCM) under a key the daemon
//! derives from the store's master key.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, DistinguishedName, ServerConfig,
    ServerConnection, SignatureScheme, StreamOwned,
};
use zeroize::Zeroizing;

use crate::Error;

/// A SHA-256 fingerprint of a certificate (as `openssl x509 -fingerprint
/// -sha256` prints it, so operators can compare with standard tools).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Of a DER certificate.
    pub fn of(cert_der: &[u8]) -> Fingerprint {
        let d = ring::digest::digest(&ring::digest::SHA256, cert_der);
        let mut f = [0u8; 32];
        f.copy_from_slice(d.as_ref());
        Fingerprint(f)
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Fingerprint, Error> {
        let hex: String = s.chars().filter(|c| *c != ':').collect();
        let bad = || {
            Error::Protocol(format!(
                "'{s}' is not a SHA-256 fingerprint (64 hex digits, colons allowed)"
            ))
        };
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut f = [0u8; 32];
        for (i, b) in f.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        Ok(Fingerprint(f))
    }
}

/// An appliance's TLS identity.
pub struct Identity {
    cert: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint().to_string())
            .field("key", &"<redacted>")
            .finish()
    }
}

const SEALED_MAGIC: &[u8; 8] = b"CFTLSID1";

impl Identity {
    /// A new self-signed Ed25519 identity named `name`.
    pub fn generate(name: &str) -> Result<Identity, Error> {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| Error::Storage(format!("generate a TLS key: {e}")))?;
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .and_then(|p| p.self_signed(&kp))
            .map_err(|e| Error::Storage(format!("make the TLS certificate: {e}")))?;
        Ok(Identity {
            cert: cert.der().to_vec(),
            key: Zeroizing::new(kp.serialize_der()),
        })
    }

    /// The certificate (DER).
    pub fn certificate(&self) -> &[u8] {
        &self.cert
    }

    /// The certificate's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.cert)
    }

    /// The identity with its private key encrypted under `wrap` (AES-256-GCM,
    /// random nonce, the certificate as associated data).
    pub fn seal(&self, wrap: &[u8; 32]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; 12];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| Error::Storage("no randomness for sealing the TLS key".into()))?;
        let sealed = Aes256Gcm::new(wrap.into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &self.key,
                    aad: &self.cert,
                },
            )
            .map_err(|_| Error::Storage("cannot seal the TLS key".into()))?;
        let mut out = SEALED_MAGIC.to_vec();
        out.extend_from_slice(&(self.cert.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.cert);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`Identity::seal`] made.
    pub fn open(bytes: &[u8], wrap: &[u8; 32]) -> Result<Identity, Error> {
        let bad = |why: &str| Error::Storage(format!("the sealed TLS identity {why}"));
        let rest = bytes
            .strip_prefix(SEALED_MAGIC.as_slice())
            .ok_or_else(|| bad("is not one (bad magic)"))?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("is truncated"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len + 12 + 16 {
            return Err(bad("is truncated"));
        }
        let (cert, rest) = rest.split_at(len);
        let (nonce, sealed) = rest.split_at(12);
        let key = Aes256Gcm::new(wrap.into())
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: cert,
                },
            )
            .map_err(|_| bad("does not open with this store's key (wrong key or damaged)"))?;
        Ok(Identity {
            cert: cert.to_vec(),
            key: Zeroizing::new(key),
        })
    }

    fn rustls_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.to_vec()))
    }
}

/// The fingerprints a side accepts.
#[derive(Debug, Clone, Default)]
pub struct Pins(Arc<Vec<Fingerprint>>);

impl Pins {
    /// These fingerprints.
    pub fn new(list: Vec<Fingerprint>) -> Pins {
        Pins(Arc::new(list))
    }

    /// Whether `f` is pinned.
    pub fn contains(&self, f: &Fingerprint) -> bool {
        self.0.contains(f)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// Checks the peer's certificate against the pins, and its handshake
/// signatures for real (proof that it holds the certificate's key).
///
/// A probe (`seen` set) instead records the certificate and refuses it,
/// so the handshake ends there: it learns a peer's fingerprint (to show
/// the operator at pairing) and never carries data.
#[derive(Debug)]
struct Pinned {
    pins: Pins,
    algs: WebPkiSupportedAlgorithms,
    seen: Option<std::sync::Mutex<Option<Fingerprint>>>,
}

impl Pinned {
    /// The certificate is one of the pinned ones (the signature checks
    /// below prove the peer holds its key).
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let f = Fingerprint::of(cert);
        if let Some(seen) = &self.seen {
            if let Ok(mut g) = seen.lock() {
                *g = Some(f);
            }
        } else if self.pins.contains(&f) {
            return Ok(());
        } else {
            tracing::warn!(fingerprint = %f, "a peer presented a certificate that is not pinned");
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ))
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn tls_err(what: &str, e: rustls::Error) -> Error {
    Error::Protocol(format!("{what}: {e}"))
}

/// The listening side's configuration: its identity, the client
/// certificates it accepts.
pub fn server_config(id: &Identity, pins: Pins) -> Result<Arc<ServerConfig>, Error> {
    let v = Arc::new(Pinned {
        pins,
        algs: algorithms(),
        seen: None,
    });
    let c = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("TLS setup", e))?
        .with_client_cert_verifier(v)
        .with_single_cert(vec![CertificateDer::from(id.cert.clone())], id.rustls_key())
        .map_err(|e| tls_err("TLS setup", e))?;
    Ok(Arc::new(c))
}

/// The connecting side's configuration: its identity, the server
/// certificates it accepts.
pub fn client_config(id: &Identity, pins: Pins) -> Result<Arc<ClientConfig>, Error> {
    let v = Arc::new(Pinned {
        pins,
        algs: algorithms(),
        seen: None,
    });
    let c = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("TLS setup", e))?
        .dangerous()
        .with_custom_certificate_verifier(v)
        .with_client_auth_cert(vec![CertificateDer::from(id.cert.clone())], id.rustls_key())
        .map_err(|e| tls_err("TLS setup", e))?;
    Ok(Arc::new(c))
}

/// Learns the fingerprint of the certificate the replication endpoint at
/// `addr` presents, for pairing. The handshake is abandoned as soon as the
/// certificate arrives (nothing is trusted, nothing sent); the operator
/// compares the fingerprint with the one the peer's own console shows.
pub fn probe(addr: &str, timeout: Duration) -> Result<Fingerprint, Error> {
    let v = Arc::new(Pinned {
        pins: Pins::default(),
        algs: algorithms(),
        seen: Some(std::sync::Mutex::new(None)),
    });
    let c = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err("TLS setup", e))?
        .dangerous()
        .with_custom_certificate_verifier(v.clone())
        .with_no_client_auth();
    let outcome = connect(addr, Arc::new(c), timeout);
    let seen = match v.seen.as_ref().map(|m| m.lock()) {
        Some(Ok(g)) => *g,
        Some(Err(p)) => *p.into_inner(),
        None => None,
    };
    match (seen, outcome) {
        (Some(f), _) => Ok(f),
        (None, Err(Error::Link(e))) => Err(Error::Link(e)),
        _ => Err(Error::Refused(format!(
            "{addr} presented no certificate (is it a Coffer replication endpoint?)"
        ))),
    }
}

/// A TLS link, either side.
pub type ClientLink = StreamOwned<ClientConnection, TcpStream>;
/// A TLS link, the listening side.
pub type ServerLink = StreamOwned<ServerConnection, TcpStream>;

fn handshake<D: rustls::SideData>(
    conn: &mut rustls::ConnectionCommon<D>,
    tcp: &mut TcpStream,
) -> Result<Fingerprint, Error> {
    while conn.is_handshaking() {
        conn.complete_io(tcp)
            .map_err(|e| Error::Refused(format!("the TLS handshake failed: {e}")))?;
    }
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| Error::Protocol("the peer sent no certificate".into()))?;
    Ok(Fingerprint::of(cert))
}

/// Connects to `addr` and completes the handshake within `timeout`;
/// returns the link and the peer's fingerprint.
pub fn connect(
    addr: &str,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<(ClientLink, Fingerprint), Error> {
    let sock = addr
        .to_socket_addrs()
        .map_err(Error::Link)?
        .next()
        .ok_or_else(|| Error::Protocol(format!("'{addr}' resolves to no address")))?;
    let mut tcp = TcpStream::connect_timeout(&sock, timeout).map_err(Error::Link)?;
    tcp.set_read_timeout(Some(timeout)).map_err(Error::Link)?;
    tcp.set_write_timeout(Some(timeout)).map_err(Error::Link)?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("coffer-peer")
        .map_err(|e| Error::Protocol(format!("server name: {e}")))?;
    let mut conn = ClientConnection::new(config, name).map_err(|e| tls_err("TLS setup", e))?;
    let fp = handshake(&mut *conn, &mut tcp)?;
    Ok((StreamOwned::new(conn, tcp), fp))
}

/// Completes the handshake of an accepted connection within `timeout`
/// (a peer that connects and stays silent does not hold the listener).
pub fn accept(
    mut tcp: TcpStream,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> Result<(ServerLink, Fingerprint), Error> {
    tcp.set_read_timeout(Some(timeout)).map_err(Error::Link)?;
    tcp.set_write_timeout(Some(timeout)).map_err(Error::Link)?;
    let _ = tcp.set_nodelay(true);
    let mut conn = ServerConnection::new(config).map_err(|e| tls_err("TLS setup", e))?;
    let fp = handshake(&mut *conn, &mut tcp)?;
    Ok((StreamOwned::new(conn, tcp), fp))
}
