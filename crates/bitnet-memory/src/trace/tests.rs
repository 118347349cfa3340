//! The reader on its own: line numbers as an editor shows them, whatever the line ends,
//! comments and blank lines; errors that name the line and the field.

use super::*;

fn lines_and_events(text: &str) -> Vec<(usize, Event)> {
    Reader::new(text.as_bytes())
        .map(|r| r.map(|e| (e.line, e.event)).expect("good trace"))
        .collect()
}

fn error_of(text: &str) -> TraceError {
    Reader::new(text.as_bytes())
        .find_map(Result::err)
        .expect("must be rejected")
}

#[test]
fn reads_header_events_and_skips_blank_lines() {
    let text = "op,id,size,align,thread,t_ns\na,1,472,16,0,4215\n\nf,1,0,0,0,5000\r\n";
    assert_eq!(
        lines_and_events(text),
        [
            (2, Event::alloc(1, 472, 16, 0, 4215)),
            (4, Event::free(1, 0, 5000))
        ]
    );
}

#[test]
fn line_numbers_count_every_line_whatever_its_end() {
    let expected = [(3, Event::alloc(1, 8, 8, 0, 1)), (7, Event::free(1, 2, 9))];
    for text in [
        "op,id,size,align,thread,t_ns\n# c\na,1,8,8,0,1\n\n#\n\nf,1,0,0,2,9\n",
        "op,id,size,align,thread,t_ns\n# c\na,1,8,8,0,1\n\n#\n\nf,1,0,0,2,9",
        "op,id,size,align,thread,t_ns\r\n# c\r\na,1,8,8,0,1\r\n\r\n#\r\n\r\nf,1,0,0,2,9\r\n",
        "op,id,size,align,thread,t_ns\r\n# c\r\na,1,8,8,0,1\r\n\r\n#\r\n\r\nf,1,0,0,2,9",
        "\n# c\na,1,8,8,0,1\n\n# f,1,0,0,0,0\n\nf,1,0,0,2,9\n\n\n",
        "# c\nop,id,size,align,thread,t_ns\na,1,8,8,0,1\n\n#\n\nf,1,0,0,2,9",
    ] {
        assert_eq!(lines_and_events(text), expected, "{text:?}");
    }
}

#[test]
fn line_numbers_hold_across_the_reader_buffer() {
    // Far more than one buffer of input: the line of the last event is still exact.
    let mut text = String::from("op,id,size,align,thread,t_ns\r\n");
    for i in 0..20_000u64 {
        text += &format!("a,{i},{},16,0,{i}\r\n# note\r\n\r\n", i % 977);
    }
    let events = lines_and_events(&text);
    assert_eq!(events.len(), 20_000);
    assert_eq!(events[19_999].0, 2 + 3 * 19_999);
    text += "f,5,0,0,0,x";
    let e = error_of(&text);
    assert_eq!(e.line, 2 + 3 * 20_000, "{e}");
}

#[test]
fn errors_name_the_line_and_the_field() {
    let cases = [
        ("a,1,472,16,0\n", 1, "found 5 (missing field `t_ns`)"),
        ("a,1,472,16,0,0,0\n", 1, "found 7 (more than 6 fields)"),
        (
            "op,id,size,align,thread,t_ns\na,1,x,16,0,1\n",
            2,
            "malformed field `size`: \"x\"",
        ),
        ("a,1,4,16,0,1\nm,2,4,16,0,2\n", 2, "unknown op \"m\""),
        ("a,1,4,3,0,1\n", 1, "power of two"),
        ("a,1,4,16,-1,1\n", 1, "malformed field `thread`: \"-1\""),
        ("a,1,4,16,0,1\r\na,2,4,16,0,\r\n", 2, "`t_ns`: \"\""),
        (
            "a,1,4,16,0,1\n\"a\",2,4,16,0,1\n",
            2,
            "unknown op \"\\\"a\\\"\"",
        ),
        ("a,1,4,16,0,1\nop,id,size,align,thread,t_ns\n", 2, "header"),
        ("a,1,4,16,0,1\na, 2,4,16,0,1", 2, "`id`: \" 2\""),
    ];
    for (text, line, words) in cases {
        let e = error_of(text);
        assert_eq!(e.line, line, "{text:?}: {e}");
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("line {line}: ")), "{msg}");
        assert!(msg.contains(words), "{text:?}: {msg}");
    }
}

#[test]
fn the_first_error_ends_the_reader() {
    let mut r = Reader::new("a,1,4,16,0,1\nx\na,2,4,16,0,1\n".as_bytes());
    assert!(r.next().unwrap().is_ok());
    assert!(r.next().unwrap().is_err());
    assert!(r.next().is_none());
}

#[test]
fn parse_line_checks_one_line() {
    assert_eq!(parse_line("f,3,0,0,1,7"), Ok(Event::free(3, 1, 7)));
    assert_eq!(
        parse_line("a,3,8,8,0"),
        Err(TraceErrorKind::FieldCount { found: 5 })
    );
    assert_eq!(
        parse_line("# c"),
        Err(TraceErrorKind::FieldCount { found: 1 })
    );
    assert_eq!(
        parse_line("a,3,8,8,0,+1"),
        Err(TraceErrorKind::Malformed {
            field: "t_ns",
            value: "+1".into()
        })
    );
}

#[test]
fn a_read_error_names_the_line_it_stopped_at() {
    struct Failing(&'static [u8]);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("disk gone"));
            }
            let n = self.0.len().min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let e = Trace::read(std::io::BufReader::new(Failing(b"a,1,8,8,0,0\na,2,8,8")))
        .expect_err("the input fails");
    assert_eq!(e.line, 2, "{e}");
    assert!(
        matches!(&e.kind, TraceErrorKind::Io(m) if m.contains("disk gone")),
        "{e}"
    );
}

#[test]
fn a_huge_field_is_cut_in_the_message_and_its_length_given() {
    let field = "9".repeat(10_000_000);
    let text = format!("op,id,size,align,thread,t_ns\na,1,{field},16,0,0\n");
    let msg = error_of(&text).to_string();
    assert!(msg.len() < 200, "{} bytes of message", msg.len());
    assert!(msg.starts_with("line 2: malformed field `size`"), "{msg}");
    assert!(msg.contains(&"9".repeat(32)), "{msg}");
    assert!(msg.contains("cut: 10000000 bytes in all"), "{msg}");
    let op = "x".repeat(1000);
    let msg = error_of(&format!("{op},1,8,8,0,0\n")).to_string();
    assert!(
        msg.contains("cut: 1000 bytes in all") && msg.len() < 200,
        "{msg}"
    );
    // Short fields are quoted whole, without a note.
    let msg = error_of("a,1,1x0,16,0,0\n").to_string();
    assert!(msg.contains("\"1x0\"") && !msg.contains("cut"), "{msg}");
    let exactly = "7".repeat(64) + "x";
    let msg = error_of(&format!("a,1,{exactly},16,0,0\n")).to_string();
    assert!(msg.contains("cut: 65 bytes"), "{msg}");
    let msg = error_of(&format!("a,1,{},16,0,0\n", "x".repeat(64))).to_string();
    assert!(
        !msg.contains("cut") && msg.contains(&"x".repeat(64)),
        "{msg}"
    );
}
