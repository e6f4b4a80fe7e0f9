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

use crate::servers::free_port;

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

impl Service {
    /// Starts `smap-identity all` with `env` and waits until `/live` answers.
    pub async fn start(env: &[(&str, &str)]) -> Service {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_smap-identity"))
            .arg("all")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HTTP_PORT", port.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the smap-identity binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            keep_lines(child.stdout.take().unwrap(), lines.clone()),
            keep_lines(child.stderr.take().unwrap(), lines.clone()),
        ];
        let service = Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
            lines,
            readers,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let live = client.get(format!("{}/live", service.base)).send().await;
            if live.is_ok_and(|r| r.status().is_success()) {
                return service;
            }
            assert!(
                Instant::now() < deadline,
                "smap-identity did not start:\n{}",
                service.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
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
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "still running 30 s after SIGTERM"
            );
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
