//! The server behind a TLS-terminating proxy: agents and the CLI over `wss://` and `https://`.

use super::*;

/// Behind a TLS-terminating proxy, as a reverse proxy in front of the server would be: an
/// agent connects over `wss://` and the CLI over `https://`, trusting the proxy's CA through
/// `SSL_CERT_FILE`; with no CA to trust, both refuse the connection.
#[actix_rt::test]
async fn remote_agent_and_cli_work_through_a_tls_terminating_proxy() {
    use coflux_tests::tls::TlsProxy;
    use coflux_tests::{Proc, bin, log_level};
    use std::process::Command;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    server.setup(P, "production", None).await;
    let proxy = TlsProxy::start(server.port, dir.path());
    let url = format!("https://localhost:{}", proxy.port);
    let _agent = Proc::spawn(
        "coflux-agent",
        Command::new(bin("coflux-agent"))
            .args([
                "--server",
                &url,
                "--project",
                P,
                "--environment",
                "production",
            ])
            .arg("--adapter")
            .arg(bin("coflux-example-repo"))
            .arg("--directory")
            .arg(workspace_root())
            .args(["--register", "examples.repo"])
            .env("SSL_CERT_FILE", &proxy.ca_file)
            .env("COFLUX_LOG", log_level()),
    );
    server
        .wait_registered(P, "production", "sum_of_squares")
        .await;
    let cli = |ca: Option<&std::path::Path>| {
        let mut command = Command::new(bin("coflux"));
        command
            .args([
                "--server",
                &url,
                "-p",
                P,
                "-e",
                "production",
                "submit",
                "examples.repo/sum_of_squares",
                "3",
            ])
            .env_remove("SSL_CERT_FILE");
        if let Some(ca) = ca {
            command.env("SSL_CERT_FILE", ca);
        } else {
            // A CA store without the proxy's CA.
            command.env("SSL_CERT_FILE", dir.path().join("leaf.csr"));
        }
        command.output().expect("run coflux")
    };
    let output = cli(Some(&proxy.ca_file));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("14"), "{stdout}");
    let untrusted = cli(None);
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr).to_lowercase();
    assert!(
        stderr.contains("certificate") || stderr.contains("tls") || stderr.contains("ssl"),
        "{stderr}"
    );
}
