//! A streaming reader of HTTP/1.1 responses (RFC 9112 §2.1, §6.3): finds
//! the end of the header block, the status and `Content-Length`, then
//! counts body bytes. No allocation and no header buffer: [`Compact`] reads
//! byte by byte in 12 bytes of state.

use floodgate::table::Handle;
use floodgate::tcp::Endpoint;

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

/// A streaming HTTP/1.1 response reader in 12 bytes (no header buffer):
/// the status must be 2xx and a `Content-Length` must be present (the first
/// one counts); the header block ends at CRLF CRLF and may be 1,024 bytes
/// at most. Same verdicts as the buffered reader the tests keep as a model
/// (`tests::Buffered`) on the responses a server sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compact {
    /// The Content-Length as it is read, then the body bytes still expected.
    body_left: u32,
    header_len: u16,
    /// Position in the current header line (saturating: only the first 16 matter).
    line_pos: u8,
    /// Progress through "\r\n\r\n".
    crlf: u8,
    flags: u8,
}

const IN_BODY: u8 = 1;
const HAVE_CL: u8 = 2;
/// The current line still matches "content-length:" (or is past it, being read).
const LINE_CL: u8 = 4;
const CL_DIGITS: u8 = 8;
/// Whitespace after the digits: only more whitespace may follow.
const CL_END: u8 = 16;
const PAST_FIRST_LINE: u8 = 32;

const MAX_HEADER: u16 = 1024;
const CL_NAME: &[u8; 15] = b"content-length:";
/// Where the first line's status code ends ("HTTP/1.x 2xx"): no byte after
/// it matters but the line end.
const STATUS_END: u8 = 10;

impl Compact {
    /// Feeds bytes; returns how many it used and whether a whole response
    /// is in. `Err` for anything but a 2xx with a Content-Length.
    pub fn feed(&mut self, data: &[u8]) -> Result<(usize, bool), ()> {
        let mut used = 0;
        if self.flags & IN_BODY == 0 {
            while let Some(&b) = data.get(used) {
                // Bytes that only move the position are taken as a run
                // (byte by byte, the reader was a fifth of the load
                // generator's core under `rps`).
                let run = self.quiet_run(&data[used..]);
                if run > 0 {
                    if run > usize::from(MAX_HEADER - self.header_len) {
                        return Err(());
                    }
                    self.header_len += run as u16;
                    self.line_pos = self.line_pos.saturating_add(run.min(255) as u8);
                    self.crlf = 0;
                    used += run;
                    continue;
                }
                if self.header_len == MAX_HEADER {
                    return Err(());
                }
                self.header_len += 1;
                used += 1;
                self.header_byte(b)?;
                self.crlf = match (self.crlf, b) {
                    (0 | 2, b'\r') => self.crlf + 1,
                    (1 | 3, b'\n') => self.crlf + 1,
                    (_, b'\r') => 1,
                    _ => 0,
                };
                if self.crlf == 4 {
                    if self.flags & HAVE_CL == 0 {
                        return Err(());
                    }
                    self.flags |= IN_BODY;
                    break;
                }
            }
        }
        if self.flags & IN_BODY != 0 {
            let take = (data.len() - used).min(self.body_left as usize);
            used += take;
            self.body_left -= take as u32;
            return Ok((used, self.body_left == 0));
        }
        Ok((used, false))
    }

    /// How many of the bytes at the start of `rest` would only move the
    /// position (`header_byte` changes nothing else for them, and, being
    /// neither CR nor LF, they restart the CRLF CRLF progress): up to the
    /// next CR or LF past the status code of the first line, or in a header
    /// line that is not the first `Content-Length`; and the bytes that go
    /// on matching "content-length:" at the start of a line.
    #[inline]
    fn quiet_run(&self, rest: &[u8]) -> usize {
        let to_line_end = || rest.iter().position(|&c| c == b'\r' || c == b'\n').unwrap_or(rest.len());
        if self.flags & PAST_FIRST_LINE == 0 {
            return if self.line_pos >= STATUS_END { to_line_end() } else { 0 };
        }
        if !self.reading_cl() {
            return to_line_end();
        }
        let p = self.line_pos as usize;
        if p >= CL_NAME.len() {
            return 0;
        }
        rest.iter().zip(&CL_NAME[p..]).take_while(|&(&b, &n)| b.to_ascii_lowercase() == n).count()
    }

    /// The current header line is (so far) the first `Content-Length`.
    #[inline]
    fn reading_cl(&self) -> bool {
        self.flags & LINE_CL != 0 && self.flags & HAVE_CL == 0
    }

    fn header_byte(&mut self, b: u8) -> Result<(), ()> {
        let p = self.line_pos as usize;
        if b == b'\n' {
            if self.flags & PAST_FIRST_LINE == 0 && p < STATUS_END as usize {
                return Err(());
            }
            self.end_cl_line()?;
            self.flags |= PAST_FIRST_LINE | LINE_CL;
            self.flags &= !(CL_DIGITS | CL_END);
            self.line_pos = 0;
            return Ok(());
        }
        self.line_pos = self.line_pos.saturating_add(1);
        if self.flags & PAST_FIRST_LINE == 0 {
            const START: &[u8; 7] = b"HTTP/1.";
            if (p < 7 && b != START[p]) || (p == 9 && b != b'2') {
                return Err(());
            }
            return Ok(());
        }
        if !self.reading_cl() {
            return Ok(());
        }
        if p < CL_NAME.len() {
            if b.to_ascii_lowercase() != CL_NAME[p] {
                self.flags &= !LINE_CL;
            }
            return Ok(());
        }
        match b {
            b' ' | b'\t' | b'\r' => {
                if self.flags & CL_DIGITS != 0 {
                    self.flags |= CL_END;
                }
            }
            b'0'..=b'9' if self.flags & CL_END == 0 => {
                self.body_left =
                    self.body_left.checked_mul(10).and_then(|v| v.checked_add((b - b'0') as u32)).ok_or(())?;
                self.flags |= CL_DIGITS;
            }
            _ => return Err(()),
        }
        Ok(())
    }

    /// At the end of a line that was a Content-Length field: it needs digits.
    fn end_cl_line(&mut self) -> Result<(), ()> {
        if self.flags & PAST_FIRST_LINE == 0 || !self.reading_cl() {
            return Ok(());
        }
        let p = self.line_pos;
        // "content-length:" followed by nothing but a CR is not a field value.
        if p < 16 || (p == 16 && self.flags & CL_DIGITS == 0) {
            return Ok(());
        }
        if self.flags & CL_DIGITS == 0 {
            return Err(());
        }
        self.flags |= HAVE_CL;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model: buffers the header block, then parses it.
    struct Buffered {
        header: [u8; MAX_HEADER as usize],
        header_len: u16,
        /// Body bytes still expected, once the header is in.
        body_left: Option<u64>,
    }

    impl Default for Buffered {
        fn default() -> Self {
            Buffered { header: [0; MAX_HEADER as usize], header_len: 0, body_left: None }
        }
    }

    impl Buffered {
        /// Feeds bytes; returns how many it used and whether a whole response
        /// is in. `Err` for anything but a 2xx with a Content-Length.
        fn feed(&mut self, data: &[u8]) -> Result<(usize, bool), ()> {
            let mut used = 0;
            if self.body_left.is_none() {
                for &b in data {
                    if self.header_len as usize == MAX_HEADER as usize {
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

    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 13\r\n\r\nHello, World!";

    #[test]
    fn whole_and_split_at_every_byte() {
        let mut p = Buffered::default();
        assert_eq!(p.feed(RESP), Ok((RESP.len(), true)));
        for cut in 1..RESP.len() {
            let mut p = Buffered::default();
            let (a, done) = p.feed(&RESP[..cut]).unwrap();
            assert_eq!(a, cut);
            assert!(!done);
            assert_eq!(p.feed(&RESP[cut..]), Ok((RESP.len() - cut, true)), "cut {cut}");
        }
    }

    #[test]
    fn pipelined_responses_stop_at_the_first_end() {
        let two = [RESP, RESP].concat();
        let mut p = Buffered::default();
        assert_eq!(p.feed(&two), Ok((RESP.len(), true)));
    }

    #[test]
    fn errors_and_oversize_are_rejected() {
        assert!(Buffered::default().feed(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").is_err());
        assert!(Buffered::default().feed(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(Buffered::default().feed(&[b'x'; 2000]).is_err());
    }

    /// What a reader says of a whole input: bytes used and done, or bad.
    type Verdict = Result<(usize, bool), ()>;

    fn both(input: &[u8]) -> (Verdict, Verdict) {
        (Compact::default().feed(input), Buffered::default().feed(input))
    }

    #[test]
    fn compact_reader_agrees_with_the_buffered_one() {
        let cases: &[&[u8]] = &[
            RESP,
            b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nCONTENT-LENGTH:   7  \r\n\r\nabcdefgXYZ",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 9\r\n\r\n12345",
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 20",
            b"HTTP/1.1 200 OK\r\nX-Content-Length: 3\r\nContent-Length: 2\r\n\r\nab",
        ];
        for c in cases {
            let (a, b) = both(c);
            assert_eq!(a, b, "{:?}", String::from_utf8_lossy(c));
        }
        let big = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; 2000]].concat();
        assert_eq!(both(&big).0, Err(()));
    }

    #[test]
    fn compact_reader_split_at_every_byte_and_pipelined() {
        for cut in 1..RESP.len() {
            let mut p = Compact::default();
            let (a, done) = p.feed(&RESP[..cut]).unwrap();
            assert_eq!((a, done), (cut, false));
            assert_eq!(p.feed(&RESP[cut..]), Ok((RESP.len() - cut, true)), "cut {cut}");
        }
        let two = [RESP, RESP].concat();
        assert_eq!(Compact::default().feed(&two), Ok((RESP.len(), true)));
        let mut p = Compact::default();
        for (k, b) in RESP.iter().enumerate() {
            assert_eq!(p.feed(std::slice::from_ref(b)), Ok((1, k == RESP.len() - 1)));
        }
    }

    /// Inputs built from the pieces a header is made of, fed whole and in
    /// random cuts: the compact reader (with its skip over inert runs)
    /// reaches the buffered model's verdict once the header block is whole,
    /// and the same verdict whatever the cuts.
    #[test]
    fn compact_reader_agrees_with_the_model_on_random_headers() {
        const PIECES: &[&[u8]] = &[
            b"HTTP/1.1 200 OK",
            b"HTTP/1.0 204",
            b"HTTP/1.1 404 N",
            b"HTTP/2 200",
            b"\r\n",
            b"\r",
            b"\n",
            b"Content-Length:",
            b"content-length: 5",
            b"CONTENT-LENGTH:  12  ",
            b" ",
            b"\t",
            b"7",
            b"x",
            b"X-Content-Length: 3",
            b"Server: floodgate",
            b"abcdefghijklmnopqrstuvwxyz0123456789",
            // Near misses of the name, and the name in pieces.
            b"Content-Lengt",
            b"h:",
            b"content-",
            b"length",
            b":",
            b"xontent-length: 4",
            b"Content-Lengtx: 8",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for case in 0..20_000 {
            let mut input = Vec::new();
            if case % 2 == 0 {
                input.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            }
            for _ in 0..next(24) {
                input.extend_from_slice(PIECES[next(PIECES.len())]);
            }
            if case % 3 == 0 {
                input.extend_from_slice(b"\r\n\r\nbody bytes");
            }
            if case % 97 == 0 {
                input.extend(std::iter::repeat_n(b'a', 900 + next(300)));
                input.extend_from_slice(b"\r\n\r\n");
            }
            let model = Buffered::default().feed(&input);
            let whole = Compact::default().feed(&input);
            if model == Ok((input.len(), false)) {
                // No end of header yet: the model has not looked; the
                // compact reader may already have rejected the status line
                // or a Content-Length.
                assert!(whole == model || whole.is_err(), "{:?}", String::from_utf8_lossy(&input));
            } else {
                assert_eq!(whole, model, "{:?}", String::from_utf8_lossy(&input));
            }
            // The same bytes in pieces: what was used adds up to the whole
            // input's, and the verdict is the same.
            let mut p = Compact::default();
            let (mut used, mut verdict) = (0, Ok((0, false)));
            while used < input.len() {
                let piece = &input[used..(used + 1 + next(40)).min(input.len())];
                match p.feed(piece) {
                    Ok((n, done)) => {
                        used += n;
                        verdict = Ok((used, done));
                        if done || n < piece.len() {
                            break;
                        }
                    }
                    Err(()) => {
                        verdict = Err(());
                        break;
                    }
                }
            }
            assert_eq!(verdict, whole, "in pieces: {:?}", String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn compact_reader_is_12_bytes() {
        assert_eq!(std::mem::size_of::<Compact>(), 12);
    }
}
