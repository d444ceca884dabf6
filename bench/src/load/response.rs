//! A streaming reader of HTTP/1.1 responses (RFC 9112 §2.1, §6.3): finds
//! the end of the header block, the status and `Content-Length`, then
//! counts body bytes. No allocation: a small fixed header buffer.

use floodgate::table::Handle;
use floodgate::tcp::Endpoint;

const MAX_HEADER: usize = 1024;

/// Reads what connection `h` has through `feed` (a response parser's
/// `feed`) until a response is complete or malformed: `(complete, bad)`.
/// A malformed response's bytes are all consumed.
pub(crate) fn read_response(
    ep: &mut Endpoint,
    h: Handle,
    mut feed: impl FnMut(&[u8]) -> Result<(usize, bool), ()>,
) -> (bool, bool) {
    let (mut complete, mut bad) = (false, false);
    while ep.readable(h) > 0 && !complete && !bad {
        let _ = ep.recv(h, |data| match feed(data) {
            Ok((used, done)) => {
                complete = done;
                used
            }
            Err(()) => {
                bad = true;
                data.len()
            }
        });
    }
    (complete, bad)
}

#[derive(Clone, Copy)]
pub struct ResponseParser {
    header: [u8; MAX_HEADER],
    header_len: u16,
    /// Body bytes still expected, once the header is in.
    body_left: Option<u64>,
}

impl Default for ResponseParser {
    fn default() -> Self {
        ResponseParser { header: [0; MAX_HEADER], header_len: 0, body_left: None }
    }
}

impl ResponseParser {
    /// Feeds bytes; returns how many it used and whether a whole response
    /// is in. `Err` for anything but a 2xx with a Content-Length.
    pub fn feed(&mut self, data: &[u8]) -> Result<(usize, bool), ()> {
        let mut used = 0;
        if self.body_left.is_none() {
            for &b in data {
                if self.header_len as usize == MAX_HEADER {
                    return Err(());
                }
                self.header[self.header_len as usize] = b;
                self.header_len += 1;
                used += 1;
                if self.header[..self.header_len as usize].ends_with(b"\r\n\r\n") {
                    self.body_left = Some(self.parse_header()?);
                    break;
                }
            }
        }
        if let Some(left) = self.body_left {
            let take = (data.len() - used).min(left as usize);
            used += take;
            let left = left - take as u64;
            self.body_left = Some(left);
            return Ok((used, left == 0));
        }
        Ok((used, false))
    }

    fn parse_header(&self) -> Result<u64, ()> {
        let h = &self.header[..self.header_len as usize];
        if h.len() < 12 || !h.starts_with(b"HTTP/1.") || h[9] != b'2' {
            return Err(());
        }
        for line in h.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
                let v = std::str::from_utf8(&line[15..]).map_err(|_| ())?;
                return v.trim().parse().map_err(|_| ());
            }
        }
        Err(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 13\r\n\r\nHello, World!";

    #[test]
    fn whole_and_split_at_every_byte() {
        let mut p = ResponseParser::default();
        assert_eq!(p.feed(RESP), Ok((RESP.len(), true)));
        for cut in 1..RESP.len() {
            let mut p = ResponseParser::default();
            let (a, done) = p.feed(&RESP[..cut]).unwrap();
            assert_eq!(a, cut);
            assert!(!done);
            assert_eq!(p.feed(&RESP[cut..]), Ok((RESP.len() - cut, true)), "cut {cut}");
        }
    }

    #[test]
    fn pipelined_responses_stop_at_the_first_end() {
        let two = [RESP, RESP].concat();
        let mut p = ResponseParser::default();
        assert_eq!(p.feed(&two), Ok((RESP.len(), true)));
    }

    #[test]
    fn errors_and_oversize_are_rejected() {
        assert!(ResponseParser::default().feed(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").is_err());
        assert!(ResponseParser::default().feed(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(ResponseParser::default().feed(&[b'x'; 2000]).is_err());
    }
}
