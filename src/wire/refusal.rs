//! The three answers actix-http's HTTP/1 dispatcher writes itself, before any service runs, and
//! their OpenAI shape. The dispatcher writes each as a bare head (`h1/dispatcher.rs`:
//! `poll_request`'s parse-error and `TooLarge` arms, `poll_head_timer`; encoded by
//! `h1/encoder.rs`), so [`shaped`] recognizes exactly those bytes and nothing else:
//!
//! ```text
//! HTTP/1.1 400 Bad Request                      status line: HTTP/1.0 or HTTP/1.1 (the
//! content-length: 0                               version of the connection's last request),
//! connection: close                               and one of the three statuses below; the
//! date: Sun, 06 Nov 1994 08:49:37 GMT             connection line only when the encoder adds
//!                                                 one (close / keep-alive); then the date
//! ```
//!
//! The shaped answer keeps that head, in the encoder's order, with the body's length and type:
//! `content-length: N`, the connection line, `content-type: application/json`, the date, then
//! `{"error":{"message","type":"invalid_request_error","param":null,"code"}}`.

/// A status the dispatcher answers itself, and the body it gets here.
struct Refusal {
    /// The status code and reason phrase, as the encoder writes them.
    status: &'static [u8],
    body: &'static str,
}

/// A malformed request head: request line, header syntax, `Content-Length` and
/// `Transfer-Encoding` framing (the refusal of a smuggling attempt).
const BAD_REQUEST: Refusal = Refusal {
    status: b"400 Bad Request",
    body: concat!(
        r#"{"error":{"message":"The request could not be read as HTTP/1.1: its request line, "#,
        r#"a header, or its Content-Length/Transfer-Encoding framing is malformed.","#,
        r#""type":"invalid_request_error","param":null,"code":"bad_request"}}"#
    ),
};

/// A head past actix-http's `MAX_BUFFER_SIZE` (128 KiB) or `MAX_HEADERS` (96 fields),
/// `h1/decoder.rs`; neither is configurable.
const TOO_LARGE: Refusal = Refusal {
    status: b"431 Request Header Fields Too Large",
    body: concat!(
        r#"{"error":{"message":"The request head is too large: at most 128 KiB and 96 header "#,
        r#"fields.","type":"invalid_request_error","param":null,"#,
        r#""code":"request_header_fields_too_large"}}"#
    ),
};

/// A first request head not complete within the client request timeout
/// ([`super::HEAD_TIMEOUT`]).
const TIMEOUT: Refusal = Refusal {
    status: b"408 Request Timeout",
    body: concat!(
        r#"{"error":{"message":"The request head did not arrive within 5 seconds.","#,
        r#""type":"invalid_request_error","param":null,"code":"request_timeout"}}"#
    ),
};

const REFUSALS: [Refusal; 3] = [BAD_REQUEST, TOO_LARGE, TIMEOUT];

const VERSIONS: [&[u8]; 2] = [b"HTTP/1.1 ", b"HTTP/1.0 "];
const EMPTY_LENGTH: &[u8] = b"\r\ncontent-length: 0\r\n";
const CONNECTIONS: [&[u8]; 2] = [b"connection: close\r\n", b"connection: keep-alive\r\n"];
const DATE_NAME: &[u8] = b"date: ";
/// An IMF-fixdate, as actix-http's date service writes it: `a` a letter, `0` a digit, anything
/// else itself.
const DATE_SHAPE: &[u8] = b"aaa, 00 aaa 0000 00:00:00 GMT";
const HEAD_END: &[u8] = b"\r\n\r\n";

/// The longest refusal head: an HTTP/1.0 431 with `connection: keep-alive`.
const LONGEST: usize = 9 + 35 + EMPTY_LENGTH.len() + 24 + DATE_NAME.len() + 29 + HEAD_END.len();

/// The OpenAI-shaped answer for `write` when it is exactly one of the dispatcher's refusal heads,
/// and nothing else; `None` for any other bytes.
pub fn shaped(write: &[u8]) -> Option<Vec<u8>> {
    if write.len() > LONGEST {
        return None;
    }
    let version = VERSIONS.iter().find(|v| write.starts_with(v))?;
    let after_version = &write[version.len()..];
    let refusal = REFUSALS
        .iter()
        .find(|r| after_version.starts_with(r.status))?;
    let status_line = &write[..version.len() + refusal.status.len()];
    let rest = write[status_line.len()..].strip_prefix(EMPTY_LENGTH)?;
    let connection = CONNECTIONS
        .iter()
        .find(|c| rest.starts_with(c))
        .map_or(&b""[..], |c| *c);
    let date_line = &rest[connection.len()..];
    let date = date_line.strip_prefix(DATE_NAME)?.strip_suffix(HEAD_END)?;
    if !is_http_date(date) {
        return None;
    }
    let date_line = &date_line[..date_line.len() - 2];
    Some(answer(status_line, connection, date_line, refusal.body))
}

/// The refusal's head with the body's length and type, then the body.
fn answer(status_line: &[u8], connection: &[u8], date_line: &[u8], body: &str) -> Vec<u8> {
    let length = format!("\r\ncontent-length: {}\r\n", body.len());
    let json = b"content-type: application/json\r\n";
    let mut out = Vec::with_capacity(LONGEST + json.len() + body.len() + 8);
    for part in [
        status_line,
        length.as_bytes(),
        connection,
        json,
        date_line,
        b"\r\n",
        body.as_bytes(),
    ] {
        out.extend_from_slice(part);
    }
    out
}

fn is_http_date(value: &[u8]) -> bool {
    value.len() == DATE_SHAPE.len()
        && value
            .iter()
            .zip(DATE_SHAPE)
            .all(|(&b, &shape)| match shape {
                b'a' => b.is_ascii_alphabetic(),
                b'0' => b.is_ascii_digit(),
                literal => b == literal,
            })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    const DATE: &str = "date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";

    fn head(status_line: &str, connection: &str) -> String {
        format!("{status_line}\r\ncontent-length: 0\r\n{connection}{DATE}\r\n")
    }

    /// The shaped answer's head lines and its JSON error object.
    fn read(answer: &[u8]) -> (Vec<String>, Value) {
        let text = std::str::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let lines: Vec<String> = head.split("\r\n").map(str::to_owned).collect();
        let length = format!("content-length: {}", body.len());
        assert!(lines.contains(&length), "{lines:?}");
        let body: Value = serde_json::from_str(body).unwrap();
        (lines, body["error"].clone())
    }

    #[test]
    fn each_refusal_gets_its_openai_error_and_keeps_its_head() {
        let cases = [
            ("HTTP/1.1 400 Bad Request", "bad_request"),
            (
                "HTTP/1.1 431 Request Header Fields Too Large",
                "request_header_fields_too_large",
            ),
            ("HTTP/1.1 408 Request Timeout", "request_timeout"),
        ];
        for (status_line, code) in cases {
            let write = head(status_line, "connection: close\r\n");
            let (lines, error) = read(&shaped(write.as_bytes()).unwrap());
            assert_eq!(lines[0], status_line);
            assert_eq!(
                lines[2..],
                [
                    "connection: close",
                    "content-type: application/json",
                    &DATE[..DATE.len() - 2]
                ]
            );
            assert_eq!(error.as_object().unwrap().len(), 4);
            assert_eq!(error["type"], "invalid_request_error");
            assert_eq!(error["param"], Value::Null);
            assert_eq!(error["code"], code);
            assert!(error["message"].as_str().unwrap().ends_with('.'));
        }
    }

    #[test]
    fn the_timeout_message_states_the_head_timeout() {
        let write = head("HTTP/1.1 408 Request Timeout", "connection: close\r\n");
        let (_, error) = read(&shaped(write.as_bytes()).unwrap());
        let secs = crate::wire::HEAD_TIMEOUT.as_secs();
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("within {secs} seconds")),
            "{message}"
        );
    }

    #[test]
    fn every_connection_line_the_encoder_writes_is_kept() {
        for (status_line, connection) in [
            ("HTTP/1.1 400 Bad Request", ""),
            ("HTTP/1.0 400 Bad Request", "connection: keep-alive\r\n"),
            ("HTTP/1.0 431 Request Header Fields Too Large", ""),
        ] {
            let (lines, _) = read(&shaped(head(status_line, connection).as_bytes()).unwrap());
            assert_eq!(lines[0], status_line);
            let kept = lines.iter().any(|l| l.starts_with("connection"));
            assert_eq!(kept, !connection.is_empty(), "{lines:?}");
        }
        let longest = head(
            "HTTP/1.0 431 Request Header Fields Too Large",
            "connection: keep-alive\r\n",
        );
        assert_eq!(longest.len(), LONGEST);
        assert!(shaped(longest.as_bytes()).is_some());
    }

    #[test]
    fn anything_but_a_bare_refusal_head_is_not_touched() {
        let close = "connection: close\r\n";
        let refusal = head("HTTP/1.1 400 Bad Request", close);
        let others = [
            // The relay's own answers: a body, and its request id.
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\nconnection: close\r\n\
             content-type: application/json\r\nx-relay-request-id: req_1\r\n\
             date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n{}"
                .to_owned(),
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-relay-request-id: req_1\r\n\
             date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
                .to_owned(),
            head("HTTP/1.1 404 Not Found", close),
            head("HTTP/1.1 413 Payload Too Large", close),
            head("HTTP/2.0 400 Bad Request", close),
            // Not the whole of one write: more bytes after it, or only a part of it.
            format!("{refusal}{{}}"),
            format!("{refusal}{refusal}"),
            refusal[..refusal.len() - 1].to_owned(),
            refusal[1..].to_owned(),
            // A body piece that merely looks like one: a chunk starts with its size.
            format!("{:x}\r\n{refusal}\r\n", refusal.len()),
            refusal.replace("GMT", "UTC"),
            refusal.replace("Sun, 06", "Sun, 6 "),
            String::new(),
        ];
        for other in others {
            assert_eq!(shaped(other.as_bytes()), None, "{other:?}");
        }
    }
}
