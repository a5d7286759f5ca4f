//! Newline framing of a byte stream, whatever chunks the bytes arrive in.
//!
//! [`LineSplitter`] is sans-I/O: feed it chunks with [`LineSplitter::push`] and take the
//! complete lines out.  A line ends at `\n`; a `\r` right before it is dropped, so `\r\n`
//! works too.  Blank lines are skipped.  A line longer than the limit is reported as
//! [`Line::TooLong`] (its bytes are dropped as they arrive, so memory stays bounded) and
//! framing resumes after its `\n`.

/// Default cap on one line: 16 MiB (a control message is at most 64 KiB).
pub const DEFAULT_MAX_LINE: usize = 16 * 1024 * 1024;

/// One framed item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its terminator (`\n` or `\r\n`).
    Complete(Vec<u8>),
    /// A line that exceeded the limit; `len` is how many bytes it had (terminator excluded).
    TooLong { len: usize },
}

/// Splits a byte stream into lines.  See the [module docs](self).
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max_line: usize,
    /// Bytes of the current over-long line seen so far, when discarding.
    discarding: Option<usize>,
}

impl Default for LineSplitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

impl LineSplitter {
    /// A splitter that reports lines longer than `max_line` bytes as [`Line::TooLong`].
    pub fn new(max_line: usize) -> Self {
        Self { buf: Vec::new(), max_line: max_line.max(1), discarding: None }
    }

    /// Bytes of an unfinished line held back, waiting for its terminator.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feed one chunk; returns the lines it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let (head, tail) = rest.split_at(nl);
                    rest = &tail[1..];
                    if let Some(seen) = self.discarding.take() {
                        out.push(Line::TooLong { len: seen + strip_cr_len(head) });
                        continue;
                    }
                    let line = if self.buf.is_empty() {
                        head.to_vec()
                    } else {
                        let mut line = std::mem::take(&mut self.buf);
                        line.extend_from_slice(head);
                        line
                    };
                    self.emit(line, &mut out);
                }
                None => {
                    if let Some(seen) = self.discarding.as_mut() {
                        *seen += rest.len();
                    } else if self.buf.len() + rest.len() > self.max_line + 1 {
                        self.discarding = Some(self.buf.len() + rest.len());
                        self.buf = Vec::new();
                    } else {
                        self.buf.extend_from_slice(rest);
                    }
                    rest = &[];
                }
            }
        }
        out
    }

    /// End of stream: the unterminated tail, if any, as a last line.
    pub fn finish(&mut self) -> Option<Line> {
        if let Some(seen) = self.discarding.take() {
            return Some(Line::TooLong { len: seen });
        }
        let line = std::mem::take(&mut self.buf);
        let mut out = Vec::new();
        self.emit(line, &mut out);
        out.pop()
    }

    fn emit(&self, mut line: Vec<u8>, out: &mut Vec<Line>) {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if line.len() > self.max_line {
            out.push(Line::TooLong { len: line.len() });
        } else {
            out.push(Line::Complete(line));
        }
    }
}

fn strip_cr_len(head: &[u8]) -> usize {
    if head.last() == Some(&b'\r') {
        head.len() - 1
    } else {
        head.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn complete(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| match l {
                Line::Complete(b) => String::from_utf8(b.clone()).unwrap(),
                Line::TooLong { len } => format!("<too long: {len}>"),
            })
            .collect()
    }

    fn feed(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(s.push(c));
        }
        out.extend(s.finish());
        complete(&out)
    }

    #[test]
    fn whole_lines_in_one_chunk() {
        assert_eq!(feed(&[b"{\"a\":1}\n{\"b\":2}\n"]), ["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn crlf_is_tolerated() {
        assert_eq!(feed(&[b"one\r\ntwo\r\n"]), ["one", "two"]);
    }

    #[test]
    fn cr_and_lf_in_different_chunks() {
        assert_eq!(feed(&[b"one\r", b"\ntwo\r", b"\n"]), ["one", "two"]);
    }

    #[test]
    fn one_byte_at_a_time() {
        let text = b"{\"jsonrpc\":\"2.0\",\"id\":1}\r\n\n{\"x\":\"\xc3\xa9\"}\n";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(feed(&chunks), ["{\"jsonrpc\":\"2.0\",\"id\":1}", "{\"x\":\"é\"}"]);
    }

    #[test]
    fn a_line_split_across_many_chunks_and_lines_sharing_a_chunk() {
        assert_eq!(feed(&[b"ab", b"c", b"d\nef", b"g\nh", b"", b"i\n"]), ["abcd", "efg", "hi"]);
    }

    #[test]
    fn blank_lines_are_skipped() {
        assert_eq!(feed(&[b"\n\r\n  \na\n\n"]), ["a"]);
    }

    #[test]
    fn unterminated_tail_comes_out_at_finish() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"partial").is_empty());
        assert_eq!(s.pending(), 7);
        assert_eq!(s.finish(), Some(Line::Complete(b"partial".to_vec())));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn over_long_line_is_reported_and_framing_resumes() {
        let mut s = LineSplitter::new(4);
        let mut out = s.push(b"12");
        out.extend(s.push(b"345678"));
        assert_eq!(s.pending(), 0, "bytes of an over-long line are not kept");
        out.extend(s.push(b"9\r\nok\n"));
        out.extend(s.push(b"1234\r\n12345\n"));
        assert_eq!(
            out,
            [
                Line::TooLong { len: 9 },
                Line::Complete(b"ok".to_vec()),
                Line::Complete(b"1234".to_vec()),
                Line::TooLong { len: 5 },
            ]
        );
    }

    #[test]
    fn over_long_tail_at_finish() {
        let mut s = LineSplitter::new(3);
        assert!(s.push(b"abcdef").is_empty());
        assert_eq!(s.finish(), Some(Line::TooLong { len: 6 }));
    }

    fn framed(lines: &[Vec<u8>], crlf: &[bool]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            bytes.extend_from_slice(l);
            if crlf[i % crlf.len()] {
                bytes.push(b'\r');
            }
            bytes.push(b'\n');
        }
        bytes
    }

    proptest! {
        /// Whatever the chunking, the same lines come out, in order.
        #[test]
        fn any_chunking_gives_the_same_lines(
            lines in prop::collection::vec(
                // any bytes but '\n'; no leading/trailing whitespace so none is blank
                prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40)
                    .prop_map(|mut v| { v.retain(|b| !b.is_ascii_whitespace()); v.insert(0, b'x'); v }),
                0..20,
            ),
            crlf in prop::collection::vec(any::<bool>(), 1..5),
            cuts in prop::collection::vec(0usize..2000, 0..30),
        ) {
            let bytes = framed(&lines, &crlf);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.push(0);
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut s = LineSplitter::default();
            let mut out = Vec::new();
            for w in cuts.windows(2) {
                out.extend(s.push(&bytes[w[0]..w[1]]));
            }
            prop_assert_eq!(s.finish(), None);
            let expected: Vec<Line> = lines.into_iter().map(Line::Complete).collect();
            prop_assert_eq!(out, expected);
        }
    }
}
