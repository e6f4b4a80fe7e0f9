//! The SMTP mailer against a fake server that checks the pipelining, and
//! the TCP connection it opens.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{wire::connect_tcp, *};

/// A one-connection SMTP server that answers each command only once it
/// has read every command the client may pipeline: a client that waits
/// for an answer before its next command would stall it. Returns the
/// connections accepted and the messages received.
async fn fake_server(
    pipelining: bool,
    messages: usize,
) -> (u16, tokio::task::JoinHandle<(usize, usize)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
        let ehlo: &[u8] = if pipelining {
            b"250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        } else {
            b"250-fake\r\n250 8BITMIME\r\n"
        };
        let mut received = 0;
        while let Some(line) = lines.next_line().await.unwrap() {
            let command = line.to_ascii_uppercase();
            if command.starts_with("EHLO") {
                write.write_all(ehlo).await.unwrap();
            } else if command.starts_with("MAIL") {
                if pipelining {
                    // RCPT and DATA must come before MAIL's answer.
                    let rcpt = lines.next_line().await.unwrap().unwrap();
                    let data = lines.next_line().await.unwrap().unwrap();
                    assert!(rcpt.starts_with("RCPT TO:"), "{rcpt}");
                    assert_eq!(data, "DATA");
                    write
                        .write_all(b"250 ok\r\n250 ok\r\n354 go\r\n")
                        .await
                        .unwrap();
                } else {
                    write.write_all(b"250 ok\r\n").await.unwrap();
                    let rcpt = lines.next_line().await.unwrap().unwrap();
                    assert!(rcpt.starts_with("RCPT TO:"), "{rcpt}");
                    write.write_all(b"250 ok\r\n").await.unwrap();
                    assert_eq!(lines.next_line().await.unwrap().unwrap(), "DATA");
                    write.write_all(b"354 go\r\n").await.unwrap();
                }
                while lines.next_line().await.unwrap().unwrap() != "." {}
                received += 1;
                write.write_all(b"250 queued\r\n").await.unwrap();
                if received == messages {
                    break;
                }
            } else {
                write.write_all(b"250 ok\r\n").await.unwrap();
            }
        }
        // Only one connection is accepted: a second one would hang.
        (1, received)
    });
    (port, server)
}

fn settings(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "SMAP <no-reply@smap.test>".into(),
        timeout: Duration::from_secs(5),
    }
}

fn email(id: &str) -> OutgoingEmail {
    OutgoingEmail {
        message_id: id.into(),
        to: "someone@example.com".into(),
        subject: "Hello".into(),
        html: "<p>Hello</p>".into(),
        text: Some("Hello".into()),
        reply_to: None,
        cc: Vec::new(),
    }
}

async fn send_three(pipelining: bool) {
    let (port, server) = fake_server(pipelining, 3).await;
    let mailer = SmtpMailer::new(&settings(port)).unwrap();
    for id in ["evt_1", "evt_2", "evt_3"] {
        // Bounded so that a client that does not pipeline fails here
        // instead of hanging the test.
        tokio::time::timeout(Duration::from_secs(20), mailer.send(&email(id)))
            .await
            .expect("the server answers")
            .unwrap();
    }
    assert_eq!(server.await.unwrap(), (1, 3));
}

#[tokio::test]
async fn a_server_offering_pipelining_gets_mail_rcpt_and_data_in_one_go_on_one_connection() {
    send_three(true).await;
}

#[tokio::test]
async fn a_server_without_pipelining_gets_one_command_at_a_time_on_one_connection() {
    send_three(false).await;
}

#[tokio::test]
async fn smtp_connections_set_tcp_nodelay() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stream = connect_tcp("127.0.0.1", port, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(stream.nodelay().unwrap());
}

#[tokio::test]
async fn a_refused_connection_is_an_error_not_a_hang() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    assert!(
        connect_tcp("127.0.0.1", port, Duration::from_secs(5))
            .await
            .is_err()
    );
}
