//! The real `smap-identity` binary as a child process, configured only by
//! its environment (nothing inherited), with its stdout and stderr lines
//! kept: for what only a whole process shows — telemetry set up from the
//! environment, log lines as written, flushing on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

pub struct Service {
    child: Child,
    pub base: String,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

fn keep_lines(
    stream: impl std::io::Read + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    })
}

/// The port of an "HTTP API listening" line, text (`port=8080`) or JSON
/// (`"port":8080`).
fn listening_port(line: &str) -> Option<u16> {
    if !line.contains("HTTP API listening") {
        return None;
    }
    // Text lines may carry ANSI colours between the key and the value.
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    let at = plain
        .find("port=")
        .map(|i| i + 5)
        .or_else(|| plain.find("\"port\":").map(|i| i + 7))?;
    let digits: String = plain[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn command(subcommand: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smap-identity"));
    command
        .arg(subcommand)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HTTP_PORT", "0")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `smap-identity all` with `env`, expecting it to stop by itself
/// (within 20 s, else it is killed and the test fails): its exit code and
/// what it wrote.
pub async fn exit_of(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = command("all", env)
        .spawn()
        .expect("the smap-identity binary starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "still running after 20 s:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

impl Service {
    /// Starts `smap-identity all` with `env` on a port the OS picks (read
    /// back from its "HTTP API listening" log line, so two services started
    /// at once cannot mix up their ports) and waits until `/live` answers.
    pub async fn start(env: &[(&str, &str)]) -> Service {
        Self::start_command("all", env).await
    }

    /// Starts `smap-identity <subcommand>` (`all` or `serve`) the same way.
    pub async fn start_command(subcommand: &str, env: &[(&str, &str)]) -> Service {
        let service = Self::listening_command(subcommand, env).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            let live = client.get(format!("{}/live", service.base)).send().await;
            if live.is_ok_and(|r| r.status().is_success()) {
                return service;
            }
            assert!(
                Instant::now() < deadline,
                "smap-identity did not answer:\n{}",
                service.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts `smap-identity all` with `env` and returns once it logged
    /// "HTTP API listening", before any request: a fresh process.
    pub async fn listening(env: &[(&str, &str)]) -> Service {
        Self::listening_command("all", env).await
    }

    async fn listening_command(subcommand: &str, env: &[(&str, &str)]) -> Service {
        let mut child = command(subcommand, env)
            .spawn()
            .expect("the smap-identity binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            keep_lines(child.stdout.take().unwrap(), lines.clone()),
            keep_lines(child.stderr.take().unwrap(), lines.clone()),
        ];
        let mut service = Service {
            child,
            base: String::new(),
            lines,
            readers,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = service.lines().iter().find_map(|l| listening_port(l)) {
                break port;
            }
            assert!(
                Instant::now() < deadline && service.child.try_wait().unwrap().is_none(),
                "smap-identity did not start:\n{}",
                service.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        service.base = format!("http://127.0.0.1:{port}");
        service
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The verification code the log mailer printed last, from the text or the
    /// HTML of the e-mail (waits up to 20 s).
    pub async fn code_from_log(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // The text part says "Your verification code is: 123456"; a
            // legacy copy (HTML only) shows it in its own paragraph.
            let code = self.lines().iter().rev().find_map(|l| {
                let after = l
                    .split_once("Your verification code is: ")
                    .map(|(_, after)| after)
                    .or_else(|| {
                        l.split_once("letter-spacing: 6px;\">")
                            .map(|(_, after)| after)
                    })?;
                Some(after.chars().take(6).collect::<String>())
            });
            if let Some(code) = code {
                assert!(
                    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
                    "{code}"
                );
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "no verification code in the log:\n{}",
                self.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the exit; how long it took and every line
    /// the process wrote.
    pub async fn stop(mut self) -> (Duration, Vec<String>) {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status}");
                break;
            }
            if started.elapsed() >= Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!(
                    "still running 30 s after SIGTERM; its output:\n{}",
                    self.lines().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        (took, self.lines())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
