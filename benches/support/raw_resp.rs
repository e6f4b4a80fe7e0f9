//! A RESP writer and reader of our own, one connection per caller, no task
//! between the caller and its socket: what a client written for the
//! finish line's one call could reach (the question issue 15 left open).

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// One connection, owned by its caller: the command is written from the
/// caller's task and the reply read there, like redis-benchmark's loop.
pub struct RawConnection {
    stream: TcpStream,
    out: Vec<u8>,
    input: Vec<u8>,
}

impl RawConnection {
    pub async fn connect(addr: &str, password: Option<&str>, db: u8) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut conn = Self {
            stream,
            out: Vec::with_capacity(512),
            input: Vec::with_capacity(512),
        };
        if let Some(password) = password {
            conn.call(&[b"AUTH", password.as_bytes()]).await;
        }
        conn.call(&[b"SELECT", db.to_string().as_bytes()]).await;
        conn
    }

    /// Sends one command and reads its whole reply; returns the reply's
    /// bytes (the caller reads what it needs from them).
    pub async fn call(&mut self, parts: &[&[u8]]) -> &[u8] {
        self.out.clear();
        encode(&mut self.out, parts);
        self.stream.write_all(&self.out).await.unwrap();
        self.input.clear();
        loop {
            if let Some(len) = reply_len(&self.input) {
                let reply = &self.input[..len];
                assert!(
                    reply.first() != Some(&b'-'),
                    "{}",
                    String::from_utf8_lossy(reply)
                );
                return reply;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server closed the connection");
            self.input.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A command as a RESP array of bulk strings.
pub fn encode(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(parts.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for part in parts {
        out.push(b'$');
        out.extend_from_slice(part.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
}

/// The length of the first complete reply in `buf`, if it holds one.
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let after_line = line_end + 2;
    let number = || -> Option<i64> { std::str::from_utf8(&buf[1..line_end]).ok()?.parse().ok() };
    match buf.first()? {
        b'+' | b'-' | b':' => Some(after_line),
        b'$' => {
            let n = number()?;
            if n < 0 {
                return Some(after_line);
            }
            let end = after_line + usize::try_from(n).ok()? + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' => {
            let n = number()?;
            let mut at = after_line;
            for _ in 0..n.max(0) {
                at += reply_len(&buf[at..])?;
            }
            Some(at)
        }
        _ => None,
    }
}
