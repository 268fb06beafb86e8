//! The daemon's API on the network as an attacker or a careless operator meets it:
//! TLS that only clients of the right CA accept, mutual TLS for peers, plain HTTP
//! refused off loopback, Host names checked, and idle connections that cannot lock
//! anyone out. Certificates come from a throwaway CA (the lab's, `drover_lab::pki`).

mod support;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use drover_lab::pki::LabCa;
use support::{PLAN, drover, plan_dir, run};

const TOKEN: &str = "tls-test-token-0123456789";

struct Daemon {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A CA in `dir/pki` and a certificate for 127.0.0.1 named `name`.
fn pki(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca = LabCa::create(&dir.join(format!("pki-{name}"))).unwrap();
    let issued = ca.issue(name, &["127.0.0.1".parse().unwrap()], &["localhost"]).unwrap();
    (ca.cert_file().to_path_buf(), issued.cert, issued.key)
}

/// `drover serve` on loopback over TLS with a certificate for 127.0.0.1 from its own CA
/// (`ca.pem` in its dir), with `extra` flags; waits until it answers.
fn start(vantage: &str, extra: &[&str]) -> Daemon {
    let dir = plan_dir(PLAN);
    let (ca, cert, key) = pki(dir.path(), vantage);
    std::fs::copy(&ca, dir.path().join("ca.pem")).unwrap();
    start_in(dir, vantage, &cert, &key, extra)
}

fn start_in(dir: tempfile::TempDir, vantage: &str, cert: &Path, key: &Path, extra: &[&str]) -> Daemon {
    // The operator's token, and one peer token per vantage: every daemon holds them all.
    let tokens = format!(
        "operator operator {TOKEN}\neast peer peer-token-of-east-000\nwest peer peer-token-of-west-000\nwitness peer peer-token-of-witness-0\n"
    );
    support::write_secret(dir.path().join("token"), tokens);
    // What the CLI's --token-file holds: the one token.
    support::write_secret(dir.path().join("cli-token"), TOKEN);
    let port = free_port();
    let child = drover()
        .args(["serve", "--vantage", vantage, "--listen", &format!("127.0.0.1:{port}"), "--token-file"])
        .arg(dir.path().join("token"))
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .arg("--plan")
        .arg(dir.path().join("plan.yaml"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
        .spawn()
        .expect("start drover serve");
    let daemon = Daemon { child, port, dir };
    // A TCP connect is enough to know it listens (a client certificate may be required).
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        let log = || std::fs::read_to_string(daemon.path("serve.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "the daemon did not listen within 60s:\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon
}

fn client(ca: Option<&Path>) -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10));
    if let Some(ca) = ca {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap());
    }
    builder.build().unwrap()
}

#[test]
fn plain_http_off_loopback_is_refused_for_the_daemon_and_its_clients() {
    let dir = plan_dir(PLAN);
    support::write_secret(dir.path().join("token"), TOKEN);
    let serve = run(drover()
        .args(["serve", "--listen", "0.0.0.0:0", "--token-file"])
        .arg(dir.path().join("token"))
        .arg("--plan")
        .arg(dir.path().join("plan.yaml")));
    assert_eq!(serve.code, 2, "{}", serve.stderr);
    assert!(serve.stderr.contains("give --tls-cert and --tls-key"), "{}", serve.stderr);

    let peer = run(drover()
        .args(["serve", "--vantage", "east", "--peer", "west=http://10.0.0.2:7070", "--plan"])
        .arg(dir.path().join("plan.yaml")));
    assert_eq!(peer.code, 2, "{}", peer.stderr);
    assert!(peer.stderr.contains("--peer http://10.0.0.2:7070: plain http:// is for loopback only"), "{}", peer.stderr);

    let runs =
        run(drover().args(["runs", "--server", "http://10.0.0.2:7070", "--token-file"]).arg(dir.path().join("token")));
    assert_eq!(runs.code, 2, "{}", runs.stderr);
    assert!(runs.stderr.contains("use https://"), "{}", runs.stderr);
    assert!(!runs.stderr.contains(TOKEN), "{}", runs.stderr);

    // A key that is not the certificate's, or a missing file, is named before anything starts.
    let (_, cert, _) = pki(dir.path(), "a");
    let (_, _, other_key) = pki(dir.path(), "b");
    let mismatched = run(drover()
        .args(["serve", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&other_key)
        .arg("--plan")
        .arg(dir.path().join("plan.yaml")));
    assert_eq!(mismatched.code, 2, "{}", mismatched.stderr);
    assert!(mismatched.stderr.contains("does not match"), "{}", mismatched.stderr);
    let missing = run(drover()
        .args(["serve", "--tls-cert", "/nonexistent/cert.pem", "--tls-key"])
        .arg(&other_key)
        .arg("--plan")
        .arg(dir.path().join("plan.yaml")));
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.stderr.contains("/nonexistent/cert.pem"), "{}", missing.stderr);
}

#[test]
fn the_api_over_tls_answers_clients_of_its_ca_only() {
    let d = start("east", &[]);
    let server = format!("https://127.0.0.1:{}", d.port);
    // The CLI through --server with the CA.
    let ok = run(drover()
        .args(["runs", "--server", &server, "--ca-file"])
        .arg(d.path("ca.pem"))
        .arg("--token-file")
        .arg(d.path("cli-token")));
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);

    // The CLI's token file holds one token: the token alone or one line of the daemon's file.
    support::write_secret(d.path("one-line"), format!("operator operator {TOKEN}\n"));
    let one_line = run(drover()
        .args(["runs", "--server", &server, "--ca-file"])
        .arg(d.path("ca.pem"))
        .arg("--token-file")
        .arg(d.path("one-line")));
    assert_eq!(one_line.code, 0, "{}", one_line.stderr);
    let whole = run(drover()
        .args(["runs", "--server", &server, "--ca-file"])
        .arg(d.path("ca.pem"))
        .arg("--token-file")
        .arg(d.path("token")));
    assert_eq!(whole.code, 2, "{}", whole.stderr);
    assert!(whole.stderr.contains("holds 4 entries"), "{}", whole.stderr);
    assert!(!whole.stderr.contains(TOKEN) && !whole.stderr.contains("peer-token"), "{}", whole.stderr);

    // Trusting another CA: refused, and the error says why.
    let (other_ca, _, _) = pki(d.dir.path(), "stranger");
    let wrong = run(drover()
        .args(["runs", "--server", &server, "--ca-file"])
        .arg(&other_ca)
        .arg("--token-file")
        .arg(d.path("cli-token")));
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("presented a certificate this command does not trust"), "{}", wrong.stderr);
    assert!(wrong.stderr.contains("give --ca-file"), "{}", wrong.stderr);
    // A --ca-file that holds no CA is refused before anything is sent.
    let not_a_ca = run(drover()
        .args(["runs", "--server", &server, "--ca-file"])
        .arg(d.path("cli-token"))
        .arg("--token-file")
        .arg(d.path("cli-token")));
    assert_eq!(not_a_ca.code, 2, "{}", not_a_ca.stderr);
    assert!(not_a_ca.stderr.contains("holds no certificate"), "{}", not_a_ca.stderr);
    assert!(!not_a_ca.stderr.contains(TOKEN), "{}", not_a_ca.stderr);

    // Plain HTTP to the TLS port gets no API.
    let plain = client(None).get(format!("http://127.0.0.1:{}/api/v1/runs", d.port)).bearer_auth(TOKEN).send();
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
}

/// Who votes for east being down at `d` (all checks of the test plan fail, so every
/// vantage heard votes), and the peers' errors.
fn heard(d: &Daemon) -> (String, String) {
    let get = |path: &str| -> serde_json::Value {
        client(Some(&d.path("ca.pem")))
            .get(format!("https://127.0.0.1:{}{path}", d.port))
            .bearer_auth(TOKEN)
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default()
    };
    let regions = get("/api/v1/regions");
    let east = regions["regions"].as_array().into_iter().flatten().find(|g| g["region"] == "east").cloned();
    let votes = east.map(|e| e["verdict"]["down_votes"].to_string()).unwrap_or_default();
    (votes, regions["peer_errors"].to_string())
}

#[test]
fn with_a_client_ca_only_peers_presenting_a_certificate_it_signed_are_heard() {
    // One CA for east and west; west wants client certificates it signed.
    let west_dir = plan_dir(&format!("{PLAN}policy:\n  quorum: 2\n"));
    let ca = LabCa::create(&west_dir.path().join("pki")).unwrap();
    std::fs::copy(ca.cert_file(), west_dir.path().join("ca.pem")).unwrap();
    let ip = ["127.0.0.1".parse().unwrap()];
    let (west_cert, east_cert) = (ca.issue("west", &ip, &[]).unwrap(), ca.issue("east", &ip, &[]).unwrap());
    let ca_file = ca.cert_file().to_str().unwrap().to_string();
    let west = start_in(west_dir, "west", &west_cert.cert, &west_cert.key, &["--client-ca", &ca_file]);

    // Without a client certificate the handshake fails, token or not.
    let anonymous = client(Some(&west.path("ca.pem"))).get(format!("https://127.0.0.1:{}/healthz", west.port)).send();
    assert!(anonymous.is_err(), "{anonymous:?}");

    // East presents its certificate to its peer west and trusts west's CA: west's vote counts.
    let east_dir = plan_dir(&format!("{PLAN}policy:\n  quorum: 2\n"));
    std::fs::copy(&ca_file, east_dir.path().join("ca.pem")).unwrap();
    let peer = format!("west=https://127.0.0.1:{}", west.port);
    let east = start_in(east_dir, "east", &east_cert.cert, &east_cert.key, &["--peer", &peer, "--ca-file", &ca_file]);
    // A stranger with a certificate from another CA peers with west too: not heard.
    let stranger = start("witness", &["--peer", &peer, "--ca-file", &ca_file]);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (east_heard, _) = heard(&east);
        let (stranger_heard, stranger_errors) = heard(&stranger);
        // Peer errors are keyed by URL.
        if east_heard.contains("west") && stranger_errors.contains(&format!("127.0.0.1:{}", west.port)) {
            assert!(!stranger_heard.contains("west"), "{stranger_heard}");
            // West ended the handshake: the stranger's certificate is not one its CA signed.
            assert!(stranger_errors.contains("alert"), "{stranger_errors}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "east heard {east_heard}; the stranger heard {stranger_heard}, errors {stranger_errors}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_request_by_a_name_that_is_not_the_daemons_is_refused() {
    let d = start("east", &["--name", "drover.example.com"]);
    let get = |host: &str| {
        client(Some(&d.path("ca.pem")))
            .get(format!("https://127.0.0.1:{}/healthz", d.port))
            .header("host", host)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get("attacker.example"), 421);
    assert_eq!(get("drover.example.com:7070"), 200);
    assert_eq!(get(&format!("127.0.0.1:{}", d.port)), 200);
}

/// A thousand connections that never send a byte, against a daemon capped at 64: the
/// API still answers at once, the cap is what /metrics shows, and the idle ones are gone.
#[test]
fn idle_connections_cannot_lock_anyone_out() {
    let d = start("east", &["--max-connections", "64", "--header-timeout", "30"]);
    let idle: Vec<TcpStream> = (0..1000).filter_map(|_| TcpStream::connect(("127.0.0.1", d.port)).ok()).collect();
    assert!(idle.len() > 900, "could open only {} connections", idle.len());
    let c = client(Some(&d.path("ca.pem")));
    for _ in 0..5 {
        let health = c.get(format!("https://127.0.0.1:{}/healthz", d.port)).send().unwrap();
        assert_eq!(health.status(), 200);
    }
    let metrics = c.get(format!("https://127.0.0.1:{}/metrics", d.port)).send().unwrap().text().unwrap();
    let open: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("drover_api_connections_open ")?.parse().ok())
        .unwrap_or_else(|| panic!("/metrics lacks drover_api_connections_open:\n{metrics}"));
    assert!(open <= 65.0, "{open} connections open with a cap of 64");
    // Most of the idle ones were closed by the daemon to make room: reading them ends.
    let closed = idle
        .into_iter()
        .take(100)
        .filter(|s| {
            let mut s = s;
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            match s.read(&mut [0u8; 1]) {
                Ok(0) => true,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
                Ok(_) => false,
            }
        })
        .count();
    assert!(closed >= 90, "only {closed} of the 100 oldest idle connections were closed");
}

/// A certificate renewed in place is served from the next connection on, with no restart;
/// a broken rotation (a key that is not the certificate's) keeps the previous one in force.
#[test]
fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let dir = plan_dir(PLAN);
    let (old_ca, cert, key) = pki(dir.path(), "east");
    std::fs::copy(&old_ca, dir.path().join("ca.pem")).unwrap();
    let d = start_in(dir, "east", &cert, &key, &[]);
    let healthz = format!("https://127.0.0.1:{}/healthz", d.port);
    assert!(client(Some(&old_ca)).get(&healthz).send().is_ok());

    // A broken rotation: the new certificate lands, its key does not match.
    let (new_ca, new_cert, new_key) = pki(d.dir.path(), "renewed");
    let (_, _, stray_key) = pki(d.dir.path(), "stray");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&stray_key, &key).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(client(Some(&old_ca)).get(&healthz).send().is_ok(), "a broken rotation must keep the old certificate");

    // The key follows: the renewed certificate is served, the old CA's clients refuse it.
    std::fs::copy(&new_key, &key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client(Some(&new_ca)).get(&healthz).send().is_err() {
        let log = std::fs::read_to_string(d.path("serve.log")).unwrap_or_default();
        let e = client(Some(&new_ca)).get(&healthz).send().unwrap_err();
        assert!(Instant::now() < deadline, "the renewed certificate was not served within 30s: {e:?}\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(client(Some(&old_ca)).get(&healthz).send().is_err());
    let log = std::fs::read_to_string(d.path("serve.log")).unwrap();
    assert!(log.contains("still serving the previous certificate"), "{log}");
}
