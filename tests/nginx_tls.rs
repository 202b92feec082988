//! Deployment: nginx terminates TLS in front of two nodes (the config in
//! `deploy/nginx-freeim.conf`), and real TLS clients (OpenSSL's s_client)
//! connect through it with the `wss://` URLs `imhelper` hands out.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use common::*;
use imhelper::{ImHelper, ImHelperOptions};

/// nginx running the repository's config, killed on drop.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(dir: &Path, public: [u16; 2], nodes: [&str; 2]) -> Nginx {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed");
    assert!(status.success(), "self-signed certificate");
    let template = include_str!("../deploy/nginx-freeim.conf");
    let config = template
        .replace("{{PREFIX}}", dir.to_str().unwrap())
        .replace("{{CERT}}", dir.join("cert.pem").to_str().unwrap())
        .replace("{{KEY}}", dir.join("key.pem").to_str().unwrap())
        .replace("{{PUBLIC_A}}", &format!("127.0.0.1:{}", public[0]))
        .replace("{{PUBLIC_B}}", &format!("127.0.0.1:{}", public[1]))
        .replace("{{NODE_A}}", nodes[0])
        .replace("{{NODE_B}}", nodes[1]);
    let config_path = dir.join("nginx.conf");
    std::fs::write(&config_path, config).unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&config_path)
        .arg("-p")
        .arg(dir)
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx must be installed (scripts/test.sh installs it)");
    let nginx = Nginx(child);
    for port in public {
        assert!(
            wait_until(PROMPTLY, || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "nginx listening on {port}"
        );
    }
    nginx
}

/// A WebSocket client over OpenSSL's TLS client.
struct TlsClient {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl TlsClient {
    fn connect(url: &str) -> TlsClient {
        let rest = url.strip_prefix("wss://").expect("a wss:// URL");
        let (authority, path) = rest.split_at(rest.find('/').unwrap());
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", authority])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        write!(
            input,
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        input.flush().unwrap();
        let mut status = String::new();
        output.read_line(&mut status).unwrap();
        assert!(
            status.starts_with("HTTP/1.1 101"),
            "upgrade through nginx: {status:?}"
        );
        loop {
            let mut line = String::new();
            output.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        TlsClient {
            child,
            input,
            output,
        }
    }

    /// Reads one unmasked text frame with a short payload.
    fn recv_text(&mut self) -> String {
        let mut header = [0u8; 2];
        self.output.read_exact(&mut header).unwrap();
        assert_eq!(header[0], 0x81, "a final text frame");
        let mut payload = vec![0u8; usize::from(header[1] & 0x7f)];
        self.output.read_exact(&mut payload).unwrap();
        String::from_utf8(payload).unwrap()
    }
}

impl Drop for TlsClient {
    fn drop(&mut self) {
        let _ = self.input.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn wss_through_nginx_reaches_both_nodes() {
    let redis = TestRedis::start();
    let dir = std::env::temp_dir().join(format!("freeim-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let public = [free_port(), free_port()];
    let servers: Vec<String> = public.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let node_addrs = [
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    ];
    let _nodes: Vec<Node> = (0..2)
        .map(|i| Node::start_proxied(&redis, &servers[i], &servers, &node_addrs[i]))
        .collect();
    let _nginx = start_nginx(&dir, public, [&node_addrs[0], &node_addrs[1]]);

    let mut options = ImHelperOptions::new(redis.url(), servers.clone());
    options.secure = true;
    let im = ImHelper::new(options).unwrap();
    let url_even = im.prev_connect_server(2, "tls").unwrap();
    let url_odd = im.prev_connect_server(3, "tls").unwrap();
    assert!(url_even.starts_with(&format!("wss://{}/ws?token=", servers[0])));
    assert!(url_odd.starts_with(&format!("wss://{}/ws?token=", servers[1])));
    let mut even = TlsClient::connect(&url_even);
    let mut odd = TlsClient::connect(&url_odd);
    assert!(wait_until(PROMPTLY, || im
        .get_client_list_by_online()
        .unwrap()
        .len()
        == 2));

    im.send_message(2, &[3], "across nodes", false).unwrap();
    assert_eq!(odd.recv_text(), "\"across nodes\"");
    im.send_message(3, &[2], "and back", false).unwrap();
    assert_eq!(even.recv_text(), "\"and back\"");
    let _ = std::fs::remove_dir_all(&dir);
}
