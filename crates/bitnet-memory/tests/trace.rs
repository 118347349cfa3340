//! The trace format: good files kept whole, bad lines rejected with line and reason.

use bitnet_memory::trace::{Event, Op, Peak, Trace, TraceErrorKind, HEADER};

const GOOD: &str = "op,id,size,align,thread,t_ns
a,1,472,16,0,4215
a,2,4096,16,0,12482
a,3,1600,16,1,17273
f,2,0,0,0,22014
a,4,1024,64,0,23633
f,1,0,0,1,25756
a,5,100000,4096,2,20000
f,5,100000,4096,2,30000
";

#[test]
fn a_good_file_is_kept_event_for_event_and_written_back_identically() {
    let t = Trace::parse_str(GOOD).unwrap();
    assert_eq!(t.len(), 8);
    assert_eq!(t.events()[0], Event::alloc(1, 472, 16, 0, 4215));
    assert_eq!(t.events()[3], Event::free(2, 0, 22014));
    assert_eq!(t.events()[5].thread, 1);
    // A free that states the block's size and alignment keeps them.
    assert_eq!(t.events()[7].size, 100_000);
    assert_eq!(t.events()[7].align, 4096);
    assert_eq!(t.to_csv(), GOOD);
}

#[test]
fn header_blank_lines_comments_and_crlf_are_accepted() {
    let text = "# recorded by hand\r\na,1,10,8,0,0\r\n\r\nf,1,0,0,0,1\r\n";
    let t = Trace::parse_str(text).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t.to_csv(), format!("{HEADER}\na,1,10,8,0,0\nf,1,0,0,0,1\n"));
    assert!(Trace::parse_str("").unwrap().is_empty());
    assert!(Trace::parse_str(&format!("{HEADER}\n")).unwrap().is_empty());
}

fn error_of(text: &str) -> (usize, TraceErrorKind) {
    let e = Trace::parse_str(text).expect_err("must be rejected");
    (e.line, e.kind)
}

#[test]
fn bad_lines_are_rejected_with_line_and_reason() {
    let h = format!("{HEADER}\na,1,10,8,0,0\n");
    let cases: Vec<(String, usize, TraceErrorKind)> = vec![
        (
            format!("{h}x,2,10,8,0,0\n"),
            3,
            TraceErrorKind::UnknownOp("x".into()),
        ),
        (
            format!("{h}A,2,10,8,0,0\n"),
            3,
            TraceErrorKind::UnknownOp("A".into()),
        ),
        (format!("{h}f,7,0,0,0,5\n"), 3, TraceErrorKind::UnknownId(7)),
        (
            format!("{h}f,1,0,0,0,5\nf,1,0,0,0,6\n"),
            4,
            TraceErrorKind::DoubleFree { id: 1, freed_at: 3 },
        ),
        (format!("{h}a,2,10,3,0,0\n"), 3, TraceErrorKind::BadAlign(3)),
        (format!("{h}a,2,10,0,0,0\n"), 3, TraceErrorKind::BadAlign(0)),
        (
            format!("{h}a,2,10,2147483648,0,0\n"),
            3,
            TraceErrorKind::BadAlign(1 << 31),
        ),
        (
            format!("{h}a,2,1x0,8,0,0\n"),
            3,
            TraceErrorKind::Malformed {
                field: "size",
                value: "1x0".into(),
            },
        ),
        (
            format!("{h}a,2,+10,8,0,0\n"),
            3,
            TraceErrorKind::Malformed {
                field: "size",
                value: "+10".into(),
            },
        ),
        (
            format!("{h}a,-2,10,8,0,0\n"),
            3,
            TraceErrorKind::Malformed {
                field: "id",
                value: "-2".into(),
            },
        ),
        (
            format!("{h}a,2,10,8,0,99999999999999999999\n"),
            3,
            TraceErrorKind::Malformed {
                field: "t_ns",
                value: "99999999999999999999".into(),
            },
        ),
        (
            format!("{h}a,2,10,8,4294967296,0\n"),
            3,
            TraceErrorKind::Malformed {
                field: "thread",
                value: "4294967296".into(),
            },
        ),
        (
            format!("{h}a,2,10,8,0,\n"),
            3,
            TraceErrorKind::Malformed {
                field: "t_ns",
                value: "".into(),
            },
        ),
        (
            format!("{h}a,2,10,8,0\n"),
            3,
            TraceErrorKind::FieldCount { found: 5 },
        ),
        (
            format!("{h}a,2,10,8,0,0,0\n"),
            3,
            TraceErrorKind::FieldCount { found: 7 },
        ),
        (
            format!("{h} a,2,10,8,0,0\n"),
            3,
            TraceErrorKind::UnknownOp(" a".into()),
        ),
        (
            format!("{h}a,1,10,8,0,0\n"),
            3,
            TraceErrorKind::IdLive {
                id: 1,
                allocated_at: 2,
            },
        ),
        (
            format!("{h}f,1,0,0,0,1\na,1,10,8,0,2\n"),
            4,
            TraceErrorKind::IdReused { id: 1, freed_at: 3 },
        ),
        (
            format!("{h}f,1,11,0,0,1\n"),
            3,
            TraceErrorKind::FreeMismatch {
                id: 1,
                field: "size",
                allocated: 10,
                found: 11,
            },
        ),
        (
            format!("{h}a,2,9223372036854775808,8,0,0\n"),
            3,
            TraceErrorKind::BadSize(1 << 63),
        ),
        // The header is only skipped as the first line.
        (
            format!("{h}{HEADER}\n"),
            3,
            TraceErrorKind::UnknownOp("op".into()),
        ),
    ];
    for (text, line, kind) in cases {
        assert_eq!(error_of(&text), (line, kind.clone()), "input:\n{text}");
        let msg = Trace::parse_str(&text).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("line {line}: ")),
            "message {msg:?}"
        );
    }
}

#[test]
fn error_messages_name_the_problem() {
    let e = Trace::parse_str("a,1,10,8,0,0\nf,1,0,0,0,1\nf,1,0,0,0,2\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 3: double free of id 1 (first freed at line 2)"
    );
    let e = Trace::parse_str("a,1,10,6,0,0\n").unwrap_err();
    assert!(e.to_string().contains("bad alignment 6"), "{e}");
    let e = Trace::parse_str("q,1,10,8,0,0\n").unwrap_err();
    assert!(e.to_string().contains("unknown op"), "{e}");
}

#[test]
fn live_bytes_peak_and_lifetimes_are_exact() {
    let t = Trace::parse_str(GOOD).unwrap();
    let live: Vec<u64> = t.live_bytes().collect();
    assert_eq!(live, vec![472, 4568, 6168, 2072, 3096, 2624, 102_624, 2624]);
    assert_eq!(
        t.peak(),
        Peak {
            live_bytes: 102_624,
            live_blocks: 3,
            event_index: 6
        }
    );
    let l = t.lifetimes();
    assert_eq!(l.len(), 5);
    assert_eq!(
        (l[0].alloc_index, l[0].free_index, l[0].free_thread),
        (0, Some(5), Some(1))
    );
    assert_eq!(l[2].free_index, None);
    let s = t.summary();
    assert_eq!((s.allocs, s.frees, s.threads), (5, 3, 3));
    assert_eq!(s.cross_thread_frees, 1);
    assert_eq!((s.live_blocks_at_end, s.live_bytes_at_end), (2, 2624));
    assert_eq!(s.largest, 100_000);
    assert_eq!(s.duration_ns, 30_000);
}

#[test]
fn push_checks_like_the_parser() {
    let mut t = Trace::new();
    t.push(Event::alloc(9, 64, 8, 0, 0)).unwrap();
    assert_eq!(
        t.push(Event::free(8, 0, 1)),
        Err(TraceErrorKind::UnknownId(8))
    );
    t.push(Event::free(9, 0, 1)).unwrap();
    assert_eq!(
        t.push(Event::free(9, 0, 2)),
        Err(TraceErrorKind::DoubleFree { id: 9, freed_at: 2 })
    );
    assert_eq!(t.len(), 2, "rejected events are not kept");
    assert_eq!(t.events()[1].op, Op::Free);
    let back = Trace::parse_str(&t.to_csv()).unwrap();
    assert_eq!(back.events(), t.events());
}

#[test]
fn a_generated_trace_round_trips() {
    let mut t = Trace::new();
    let mut live = Vec::new();
    let mut x = 12345u64;
    for i in 0..5000u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if live.is_empty() || !x.is_multiple_of(3) {
            t.push(Event::alloc(
                i,
                x >> 50,
                1 << (x % 13),
                (x % 4) as u32,
                i * 10,
            ))
            .unwrap();
            live.push(i);
        } else {
            let id = live.swap_remove((x as usize >> 7) % live.len());
            t.push(Event::free(id, (x % 4) as u32, i * 10)).unwrap();
        }
    }
    let text = t.to_csv();
    let back = Trace::parse_str(&text).unwrap();
    assert_eq!(back.events(), t.events());
    assert_eq!(back.to_csv(), text);
}
