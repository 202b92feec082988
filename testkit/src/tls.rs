//! [`TlsRedis`]: a `redis-server` that only speaks TLS and requires a
//! password, with a throwaway CA made by the `openssl` command.
//!
//! The CA and the server certificate (P-256 keys, SAN `IP:127.0.0.1` and
//! `DNS:localhost`, valid two days) are generated anew for every server in a
//! scratch directory, removed on drop. The server has no plain-TCP port
//! (`--port 0`) and does not ask clients for certificates. Checks and
//! assertions go through `redis-cli --tls` ([`TlsRedis::cli`]), which ships
//! with `redis-server`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;
use crate::scratch::ScratchDir;

/// How long [`TlsRedis::cli`] lets one `redis-cli` run.
const CLI_TIMEOUT: Duration = Duration::from_secs(10);

/// Extensions of the throwaway CA and of the server certificate.
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = testkit
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// A TLS-only, password-protected `redis-server` on `127.0.0.1:port`,
/// killed on drop (its certificates are removed too).
pub struct TlsRedis {
    port: u16,
    password: String,
    ca_path: PathBuf,
    child: Child,
    /// Certificates, log and data; dropped after the process is killed
    /// (None only while [`TlsRedis::start`] tries a port).
    dir: Option<ScratchDir>,
}

impl TlsRedis {
    /// Generates a throwaway CA and a server certificate with `openssl`,
    /// starts `redis-server --port 0 --tls-port <free port>` with them and
    /// `--requirepass password` (client certificates not required), and
    /// waits until it answers `PING` through `redis-cli --tls`.
    ///
    /// # Panics
    /// When `openssl`, `redis-server` or `redis-cli` is missing or fails,
    /// when `redis-server` was built without TLS, or when the server does
    /// not come up within 10 s.
    pub fn start(password: &str) -> TlsRedis {
        let dir = ScratchDir::new("tls");
        let files = make_certificates(dir.path());
        let log_path = dir.path().join("redis-server.log");
        for _ in 0..5 {
            let port = free_port();
            let log = File::create(&log_path)
                .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
            let child = Command::new("redis-server")
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(&files.cert)
                .arg("--tls-key-file")
                .arg(&files.key)
                .arg("--tls-ca-cert-file")
                .arg(&files.ca)
                .args(["--tls-auth-clients", "no", "--requirepass", password])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone the log file"))
                .stderr(log)
                .spawn()
                .expect("redis-server must be installed (apt-get install redis-server)");
            let mut server = TlsRedis {
                port,
                password: password.to_string(),
                ca_path: files.ca.clone(),
                child,
                dir: None,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if server.try_cli(&["PING"]).as_deref() == Some("PONG") {
                    server.dir = Some(dir);
                    return server;
                }
                if let Ok(Some(status)) = server.child.try_wait() {
                    // A port taken meanwhile is worth another try; anything
                    // else (such as a redis-server built without TLS, which
                    // rejects --tls-port) is not.
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    assert!(
                        log.contains("Address already in use"),
                        "TLS redis-server exited ({status}); built without TLS support? Its output:\n{log}"
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("TLS redis-server did not come up on any of 5 free ports");
    }

    /// The TLS port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM file of the throwaway CA that signed the server's certificate.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// `rediss://:{password}@127.0.0.1:{port}/?ssl_ca_certs={ca_path}`, with
    /// the password and the path percent-encoded.
    pub fn url(&self) -> String {
        format!(
            "rediss://:{}@127.0.0.1:{}/?ssl_ca_certs={}",
            percent_encode(&self.password, b""),
            self.port,
            percent_encode(&self.ca_path.to_string_lossy(), b"/")
        )
    }

    /// Runs one command through `redis-cli --tls` (trusting the CA,
    /// authenticated) and returns its standard output, trimmed; replies as
    /// `redis-cli` prints them when not on a terminal (`OK`, `bar`, `1`,
    /// `ERR …`).
    ///
    /// # Panics
    /// When `redis-cli` cannot be run or takes more than 10 s.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli --tls -p {} {args:?} failed or hung", self.port))
    }

    /// [`cli`](Self::cli), `None` when `redis-cli` fails or hangs.
    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let mut command = Command::new("redis-cli");
        command
            .arg("--tls")
            .arg("--cacert")
            .arg(&self.ca_path)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-a", &self.password, "--no-auth-warning"])
            .args(args);
        run(command, CLI_TIMEOUT).map(|out| out.trim().to_string())
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The files [`make_certificates`] writes.
struct Certificates {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// Generates the CA and the server certificate in `dir`.
fn make_certificates(dir: &Path) -> Certificates {
    let config = dir.join("openssl.cnf");
    std::fs::write(&config, OPENSSL_CONFIG)
        .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let config = path("openssl.cnf");
    let (ca, ca_key, csr, cert, key) = (
        path("ca.pem"),
        path("ca-key.pem"),
        path("server.csr"),
        path("server.pem"),
        path("server-key.pem"),
    );
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(&[
        &["req", "-x509", "-config", &config, "-extensions", "ca"],
        &new_key[..],
        &[
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            "/CN=testkit throwaway CA",
        ],
    ]);
    openssl(&[
        &["req", "-new", "-config", &config],
        &new_key[..],
        &["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"],
    ]);
    let serial = format!(
        "0x{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos())
    );
    openssl(&[&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-set_serial",
        &serial,
        "-days",
        "2",
        "-extfile",
        &config,
        "-extensions",
        "server",
        "-out",
        &cert,
    ]]);
    Certificates {
        ca: ca.into(),
        cert: cert.into(),
        key: key.into(),
    }
}

/// Runs `openssl` with the concatenated argument lists; panics with its
/// output when it fails.
fn openssl(args: &[&[&str]]) {
    let args: Vec<&str> = args.concat();
    let output = Command::new("openssl")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl must be installed (apt-get install openssl)");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `command` and returns its standard output when it exits with
/// success within `timeout`; kills it otherwise.
fn run(mut command: Command, timeout: Duration) -> Option<String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    // Read on a thread so a large output cannot block the child.
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let out = reader.join().ok()?;
    status.filter(|s| s.success()).map(|_| out)
}

/// Percent-encodes everything but unreserved characters and `keep`.
fn percent_encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
