//! An aiosmtpd Maildir sink that the SMTP mailer can deliver to, for the
//! SMTP tests and the e-mail benchmark.

use std::{
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Starts aiosmtpd on `127.0.0.1:port`, writing every message as a file
/// under `dir` (a Maildir), without waiting for it to listen.
pub fn spawn_aiosmtpd(port: u16, dir: &Path) -> std::io::Result<Child> {
    Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Waits (up to `limit`) until something listens on `127.0.0.1:port`.
pub fn wait_listening(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// An aiosmtpd Maildir sink, listening once started; killed when dropped.
pub struct MaildirSink {
    child: Child,
}

impl MaildirSink {
    /// The sink on `port` writing to `dir`; `None` when aiosmtpd is not
    /// installed or does not listen within 10 s.
    pub fn start(port: u16, dir: &Path) -> Option<MaildirSink> {
        let mut child = spawn_aiosmtpd(port, dir).ok()?;
        if !wait_listening(port, Duration::from_secs(10)) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        Some(MaildirSink { child })
    }
}

impl Drop for MaildirSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
