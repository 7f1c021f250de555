//! A blocking HTTP/1.1 client that keeps its connection across requests (the status rows):
//! write a GET, read the whole response (`Content-Length` or chunked), say when each end
//! happened. One connection per caller thread; it reconnects when the server closed it.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::Dechunker;
use super::oneshot::{connect, parse_head};
use voyandz_bench::clock::now_ns;

/// Read size: a status page of 1000 clients is a few hundred KB.
const READ_BUF_BYTES: usize = 64 * 1024;

/// One complete response.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    /// Its status code.
    pub status: u16,
    /// Body bytes (de-chunked).
    pub body_bytes: usize,
    /// CLOCK_MONOTONIC ns just before the request's `write(2)`.
    pub written_at: u64,
    /// CLOCK_MONOTONIC ns right after the read that returned the body's last byte.
    pub done_at: u64,
}

/// A keep-alive connection to one server.
pub struct KeepAlive {
    addr: SocketAddr,
    timeout: Duration,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Connections opened: more than one when the server closed one between requests.
    pub connects: u64,
}

impl KeepAlive {
    /// A client of `addr` whose connect and reads give up after `timeout`; it connects at its
    /// first request.
    pub fn new(addr: SocketAddr, timeout: Duration) -> KeepAlive {
        KeepAlive {
            addr,
            timeout,
            stream: None,
            buf: vec![0; READ_BUF_BYTES],
            connects: 0,
        }
    }

    /// `GET path` on the kept connection (a new one if there is none), read to the body's end.
    /// A connection the server closed between two requests is reopened once.
    pub fn get(&mut self, path: &str) -> Result<Response, String> {
        let reused = self.stream.is_some();
        match self.try_get(path) {
            Err(Retry::Stale(_)) if reused => self.try_get(path).map_err(Retry::into_text),
            result => result.map_err(Retry::into_text),
        }
    }

    fn try_get(&mut self, path: &str) -> Result<Response, Retry> {
        if self.stream.is_none() {
            self.stream = Some(connect(self.addr, self.timeout).map_err(Retry::Fatal)?);
            self.connects += 1;
        }
        let s = self.stream.as_mut().expect("connected above");
        let written_at = now_ns();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: voyandz-bench\r\n\r\n");
        let result = s
            .write_all(request.as_bytes())
            .map_err(|e| Retry::Stale(format!("write: {e}")))
            .and_then(|()| read_response(s, &mut self.buf, written_at));
        match &result {
            Ok((_, keep)) if *keep => {}
            _ => self.stream = None,
        }
        result.map(|(response, _)| response)
    }
}

/// Why a request failed; a connection that closed before any byte of the answer is stale
/// (the server ended an idle keep-alive) and worth one retry on a new one.
enum Retry {
    Stale(String),
    Fatal(String),
}

impl Retry {
    fn into_text(self) -> String {
        match self {
            Retry::Stale(e) | Retry::Fatal(e) => e,
        }
    }
}

/// Reads one response; also says whether the connection can carry the next request.
fn read_response(
    s: &mut TcpStream,
    buf: &mut [u8],
    written_at: u64,
) -> Result<(Response, bool), Retry> {
    let mut raw = Vec::new();
    let (status, chunked, length, mut body) = loop {
        let n = s
            .read(buf)
            .map_err(|e| Retry::Fatal(format!("read: {e}")))?;
        if n == 0 {
            let why = format!("closed after {} bytes of the response head", raw.len());
            return Err(if raw.is_empty() {
                Retry::Stale(why)
            } else {
                Retry::Fatal(why)
            });
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let (status, _, chunked, length) = parse_head(&raw[..end]);
            break (status, chunked, length, raw.split_off(end + 4));
        }
    };
    let respond = |body_bytes, done_at| Response {
        status,
        body_bytes,
        written_at,
        done_at,
    };
    let mut dechunk = Dechunker::default();
    let mut body_bytes = 0;
    let mut done_at = now_ns();
    loop {
        // Whether the body is complete with what has arrived so far.
        let complete = if chunked {
            dechunk
                .feed(&body, |b| body_bytes += b.len())
                .map_err(Retry::Fatal)?;
            dechunk.done()
        } else {
            body_bytes += body.len();
            length.is_some_and(|l| body_bytes >= l)
        };
        if complete {
            return Ok((respond(body_bytes, done_at), true));
        }
        let n = s
            .read(buf)
            .map_err(|e| Retry::Fatal(format!("read: {e}")))?;
        done_at = now_ns();
        if n == 0 {
            if chunked || length.is_some() {
                return Err(Retry::Fatal(format!(
                    "closed after {body_bytes} body bytes"
                )));
            }
            // Close-delimited: the end of the connection is the end of the body.
            return Ok((respond(body_bytes, done_at), false));
        }
        body.clear();
        body.extend_from_slice(&buf[..n]);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::{BufRead as _, BufReader};
    use std::net::TcpListener;

    /// Serves `answers` in order, one per request, reading each request head first; a `None`
    /// closes the connection (as a server ending an idle keep-alive does) and takes the next
    /// connection.
    pub(in crate::client) fn serve(answers: Vec<Option<&'static str>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut answers = answers.into_iter();
            'connections: for conn in listener.incoming() {
                let mut conn = BufReader::new(conn.unwrap());
                loop {
                    let mut line = String::new();
                    while line != "\r\n" {
                        line.clear();
                        if conn.read_line(&mut line).unwrap() == 0 {
                            continue 'connections;
                        }
                    }
                    match answers.next() {
                        Some(Some(answer)) => conn.get_mut().write_all(answer.as_bytes()).unwrap(),
                        Some(None) => continue 'connections,
                        None => return,
                    }
                }
            }
        });
        addr
    }

    #[test]
    fn reads_whole_bodies_and_reopens_a_closed_connection() {
        let addr = serve(vec![
            Some("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            Some(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            ),
            None,
            Some("HTTP/1.1 501 Not Implemented\r\nContent-Length: 4\r\n\r\nnope"),
        ]);
        let mut client = KeepAlive::new(addr, Duration::from_secs(5));
        let got: Vec<(u16, usize)> = (0..3)
            .map(|_| client.get("/x").map(|r| (r.status, r.body_bytes)).unwrap())
            .collect();
        assert_eq!(got, [(200, 5), (200, 5), (501, 4)]);
        assert_eq!(client.connects, 2);
    }
}
